import { unwrapKeyMaterial } from "../crypto/key-wrap.js";
import type { KeyChange, KeyRecord, KeyState, KeyStore } from "../keystore/types.js";
import type { RootKeySet } from "./root-key.js";
import { VersionMaterial } from "./version-material.js";

/**
 * A key as the hot path needs it: the fields encrypting and decrypting
 * check, not the whole record (alias, description, rotation settings...),
 * which would more than double what each cached key costs
 * (docs/benchmarks.md), and the versions unwrapped so far.
 */
export class RingKey {
  readonly keyId: string;
  readonly projectId: string;
  readonly state: KeyState;
  readonly keySpec: string;
  /** The version new ciphertexts are made with. */
  readonly primaryVersion: number;
  /** The primary version's material, once unwrapped: what almost every request uses. */
  #primary: VersionMaterial | undefined;
  /** Older versions (decrypting old ciphertexts), made only when one is asked for. */
  #older: Map<number, VersionMaterial> | undefined;
  /** Set by the key ring on each use; cleared when its eviction pass spares the key. */
  recentlyUsed = false;

  /** `from`: the key's earlier entry, whose unwrapped versions are still valid. */
  constructor(record: KeyRecord, from?: RingKey) {
    this.keyId = record.keyId;
    this.projectId = record.projectId;
    this.state = record.state;
    this.keySpec = record.keySpec;
    this.primaryVersion = record.primaryVersion;
    if (from === undefined) return;
    // A version's material never changes: what was unwrapped stays valid.
    this.#older = from.#older;
    if (from.#primary !== undefined) this.keep(from.primaryVersion, from.#primary);
  }

  /** The version's material if it was unwrapped already. */
  material(version: number): VersionMaterial | undefined {
    // An older entry may have unwrapped today's primary as a version it did not know yet.
    return (
      (version === this.primaryVersion ? this.#primary : undefined) ?? this.#older?.get(version)
    );
  }

  keep(version: number, material: VersionMaterial): void {
    if (version === this.primaryVersion) {
      this.#primary = material;
      return;
    }
    this.#older ??= new Map();
    this.#older.set(version, material);
  }
}

export interface KeyRingOptions {
  /** Most keys kept in memory (those not used for longest leave first, about). */
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
    private readonly rootKeys: RootKeySet,
    private readonly options: KeyRingOptions,
  ) {}

  /** The key if it exists in that project, else undefined. */
  async get(projectId: string, keyId: string): Promise<RingKey | undefined> {
    let entry = this.entries.get(keyId);
    if (entry !== undefined) {
      this.lookupHits++;
      // Marked, not moved. Moving a key to the back of the Map (delete, then
      // set) on every hit left a deleted slot per hit in the key's hash
      // chain, which V8 only compacts when the table fills up: every lookup
      // of a hot key walked them all, and one hot key in a cache of 100,000
      // cost twice the CPU per request of the same load over every key.
      entry.recentlyUsed = true;
    } else {
      this.lookupMisses++;
      const generation = this.generation;
      const record = await this.store.getKey(projectId, keyId);
      if (record === undefined) return undefined;
      entry = new RingKey(record);
      if (generation === this.generation) this.remember(entry);
    }
    return entry.projectId === projectId ? entry : undefined;
  }

  /** The version's material, or undefined when the key has no such version. */
  async versionKey(entry: RingKey, version: number): Promise<VersionMaterial | undefined> {
    const cached = entry.material(version);
    if (cached !== undefined) return cached;
    const stored = await this.store.getKeyVersion(entry.keyId, version);
    if (stored === undefined) return undefined;
    // During a root key rotation a version may be under the new or the old
    // root key: the record names which.
    const rootKey = this.rootKeys.forRecord(
      stored.rootKeyId,
      `key material of ${stored.keyId} v${stored.version}`,
    );
    const material = unwrapKeyMaterial(
      rootKey.bytes,
      { keyId: stored.keyId, version: stored.version },
      stored.wrappedMaterial,
    );
    const unwrapped = new VersionMaterial(material);
    material.fill(0);
    entry.keep(version, unwrapped);
    return unwrapped;
  }

  /** Records a change this process made, so its own next request sees it at once. */
  update(record: KeyRecord): void {
    const entry = this.entries.get(record.keyId);
    this.invalidate(record.keyId);
    if (entry !== undefined) this.remember(new RingKey(record, entry));
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

  /**
   * Caches a key, evicting by "second chance" (the clock algorithm, an
   * approximation of least recently used): the oldest key goes, unless it
   * was used since it was last passed over, in which case it moves to the
   * back, unmarked, and the next oldest is considered. Each pass either
   * evicts or unmarks one key, so it ends.
   */
  private remember(entry: RingKey): void {
    this.entries.set(entry.keyId, entry);
    while (this.entries.size > this.options.maxKeys) {
      const oldest = this.entries.entries().next();
      if (oldest.done) return;
      const [keyId, candidate] = oldest.value;
      this.entries.delete(keyId);
      if (candidate.recentlyUsed && candidate !== entry) {
        candidate.recentlyUsed = false;
        this.entries.set(keyId, candidate);
      }
    }
  }
}
