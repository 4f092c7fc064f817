import { describe, expect, it } from "vitest";
import { AliasTakenError, KeyState, type Store } from "../../src/keystore/types.js";
import { makeKey, makeVersion, P1, P2 } from "./fixtures.js";

/** TransferStore cases of the store contract; `store` is the open, initially empty store. */
export function describeTransferContract(store: () => Store): void {
  describe("transfer (store copy)", () => {
    it("importKey stores the key with every version exactly, and records one change", async () => {
      const key = makeKey({
        state: KeyState.PendingDeletion,
        deletionAt: 1_800_000_000_000,
        primaryVersion: 3,
        rotationEnabled: true,
        rotationIntervalDays: 90,
        lastRotationAt: 1_750_000_000_000,
        rotationCount: 2,
        nextRotationAt: 1_757_776_000_000,
      });
      const versions = [1, 2, 3].map((v) => makeVersion(key, v));
      const before = await store().latestChangeSeq();
      await store().importKey(key, versions);
      expect(await store().getKey(P1, key.keyId)).toEqual(key);
      expect(await store().listKeyVersions(key.keyId)).toEqual(versions);
      const changes = await store().changesSince(before);
      expect(changes.map((c) => [c.kind, c.projectId, c.keyId])).toEqual([["key", P1, key.keyId]]);
    });

    it("importKey refuses a taken alias and leaves nothing of the key behind", async () => {
      const first = makeKey({ alias: "shared" });
      await store().importKey(first, [makeVersion(first)]);
      const second = makeKey({ alias: "shared" });
      await expect(store().importKey(second, [makeVersion(second)])).rejects.toBeInstanceOf(
        AliasTakenError,
      );
      expect(await store().getKey(P1, second.keyId)).toBeUndefined();
      expect(await store().listKeyVersions(second.keyId)).toEqual([]);
    });

    it("scanKeys pages through every project's keys in key id order", async () => {
      const keys = ["c", "a", "e", "b", "d"].map((c, i) =>
        makeKey({
          keyId: `${c}0000000-0000-4000-8000-00000000000${i}`,
          projectId: i % 2 ? P1 : P2,
        }),
      );
      for (const key of keys) await store().createKey(key, makeVersion(key));
      const sorted = keys.map((k) => k.keyId).sort();
      const first = await store().scanKeys("", 2);
      expect(first.map((k) => k.keyId)).toEqual(sorted.slice(0, 2));
      const rest = await store().scanKeys(first[1]?.keyId ?? "", 10);
      expect(rest.map((k) => k.keyId)).toEqual(sorted.slice(2));
      expect(rest.find((k) => k.keyId === keys[0]?.keyId)).toEqual(keys[0]);
      expect(await store().scanKeys(sorted[4] ?? "", 10)).toEqual([]);
    });

    it("listMeta lists every entry by name", async () => {
      await store().setMeta("zeta", "1");
      await store().setMeta("alpha", "2");
      await store().initMeta("mid", "3");
      expect(await store().listMeta()).toEqual([
        { name: "alpha", value: "2" },
        { name: "mid", value: "3" },
        { name: "zeta", value: "1" },
      ]);
    });
  });
}
