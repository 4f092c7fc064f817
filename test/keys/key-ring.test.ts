import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeyRing } from "../../src/keys/key-ring.js";
import { RootKeySet } from "../../src/keys/root-key.js";
import { openSqliteStore, type SqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { makeKey, makeVersion, P1 } from "../keystore/fixtures.js";

describe("the key ring's eviction", () => {
  let dataDir: string;
  let store: SqliteStore;
  const ids: string[] = [];

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), "kmsd-ring-"));
    store = await openSqliteStore({ dataDir });
    ids.length = 0;
    for (let index = 0; index < 5; index++) {
      const key = makeKey({ projectId: P1 });
      await store.createKey(key, makeVersion(key));
      ids.push(key.keyId);
    }
  });

  afterEach(async () => {
    await store.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const ringOf = (maxKeys: number) =>
    new KeyRing(store, new RootKeySet({ id: "unused", bytes: randomBytes(32) }), { maxKeys });

  /** Looks the key up; true when the store had to be read (a miss). */
  async function missed(ring: KeyRing, keyId: string): Promise<boolean> {
    const before = ring.misses;
    expect(await ring.get(P1, keyId)).toBeDefined();
    return ring.misses > before;
  }

  it("keeps a key used since the last eviction pass, and evicts the oldest unused one", async () => {
    const ring = ringOf(3);
    const [a = "", b = "", c = "", d = ""] = ids;
    for (const id of [a, b, c]) expect(await missed(ring, id)).toBe(true);
    expect(await missed(ring, a)).toBe(false);
    // d evicts b (a was used since it was cached, and moves to the back).
    expect(await missed(ring, d)).toBe(true);
    expect(ring.size).toBe(3);
    expect(await missed(ring, a)).toBe(false);
    expect(await missed(ring, c)).toBe(false);
    expect(await missed(ring, b)).toBe(true);
  });

  it("never holds more keys than it may, however they are used", async () => {
    const ring = ringOf(2);
    for (let round = 0; round < 20; round++) {
      const id = ids[(round * 3) % ids.length] ?? "";
      await ring.get(P1, id);
      if (round % 2 === 0) await ring.get(P1, ids[0] ?? "");
      expect(ring.size).toBeLessThanOrEqual(2);
    }
  });
});
