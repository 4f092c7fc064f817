import { createSecretKey, type KeyObject } from "node:crypto";
import { unwrapKeyMaterial } from "../crypto/key-wrap.js";
import type { KeyChange, KeyRecord, KeyStore } from "../keystore/types.js";
import type { RootKey } from "./root-key.js";

/** A key as the hot path needs it: its record and its unwrapped versions. */
export interface RingKey {
  readonly record: KeyRecord;
  /** Version number -> the version's material as a key object. */
  readonly versions: Map<number, KeyObject>;
}

export interface KeyRingOptions {
  /** Most keys kept in memory (least recently used leave first). */
  readonly maxKeys: number;
}

/**
 * An in-memory cache of keys and their unwrapped material in front of the
 * store, so that encrypting needs no store round trip and no unwrap. It stays
 * coherent with changes made elsewhere (the CLI, other server processes)
 * through the change feed (ChangeWatcher calls onChange).
 */
export class KeyRing {
  private readonly entries = new Map<string, RingKey>();
  /** Bumped on every invalidation, so a load that raced one is not cached. */
  private generation = 0;
  // Plain counts, read by the metrics at scrape time (nothing else on the hot path).
  private lookupHits = 0;
  private lookupMisses = 0;

  constructor(
    private readonly store: KeyStore,
    private readonly rootKey: RootKey,
    private readonly options: KeyRingOptions,
  ) {}

  /** The key if it exists in that project, else undefined. */
  async get(projectId: string, keyId: string): Promise<RingKey | undefined> {
    let entry = this.entries.get(keyId);
    if (entry !== undefined) {
      this.lookupHits++;
      // Map keeps insertion order: re-inserting marks the key most recently used.
      this.entries.delete(keyId);
      this.entries.set(keyId, entry);
    } else {
      this.lookupMisses++;
      const generation = this.generation;
      const record = await this.store.getKey(projectId, keyId);
      if (record === undefined) return undefined;
      entry = { record, versions: new Map() };
      if (generation === this.generation) this.remember(entry);
    }
    return entry.record.projectId === projectId ? entry : undefined;
  }

  /** The version's material, or undefined when the key has no such version. */
  async versionKey(entry: RingKey, version: number): Promise<KeyObject | undefined> {
    const cached = entry.versions.get(version);
    if (cached !== undefined) return cached;
    const stored = await this.store.getKeyVersion(entry.record.keyId, version);
    if (stored === undefined) return undefined;
    const material = unwrapKeyMaterial(
      this.rootKey.bytes,
      { keyId: stored.keyId, version: stored.version },
      stored.wrappedMaterial,
    );
    const key = createSecretKey(material);
    material.fill(0);
    entry.versions.set(version, key);
    return key;
  }

  /** Records a change this process made, so its own next request sees it at once. */
  update(record: KeyRecord): void {
    const entry = this.entries.get(record.keyId);
    this.invalidate(record.keyId);
    if (entry !== undefined) this.remember({ record, versions: entry.versions });
  }

  /** Drops a key another process changed (fed by the change feed). */
  onChange(change: KeyChange): void {
    if (change.kind === "key") this.invalidate(change.keyId);
  }

  /** Drops every key (the change feed could not be followed: any of them may be stale). */
  clear(): void {
    this.generation++;
    this.entries.clear();
  }

  invalidate(keyId: string): void {
    this.generation++;
    this.entries.delete(keyId);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Lookups get() answered from memory. */
  get hits(): number {
    return this.lookupHits;
  }

  /** Lookups get() had to take to the store. */
  get misses(): number {
    return this.lookupMisses;
  }

  private remember(entry: RingKey): void {
    this.entries.set(entry.record.keyId, entry);
    if (this.entries.size > this.options.maxKeys) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }
}
