import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CredentialRecord } from "../../src/keystore/access-types.js";
import type { KeyRecord, KeyVersionRecord, Store } from "../../src/keystore/types.js";
import { makeCredential, makeKey, makeNextVersion, makeVersion, P1 } from "./fixtures.js";

const OLD = "root-fingerprint-1";
const NEW = "root-fingerprint-2";
const OTHER = "root-fingerprint-0";

function sortedVersions(versions: readonly KeyVersionRecord[]): string[] {
  return versions.map((v) => `${v.keyId} v${v.version}`).sort();
}

/**
 * The store methods root key rotation uses (docs/root-key.md): finding what
 * is wrapped under another root key and replacing it by compare-and-set.
 * `open` must return an empty store; `cleanup` runs after it is closed.
 * Every backend's test file runs these, as it runs describeStoreContract.
 */
export function describeRewrapContract(
  name: string,
  open: () => Promise<Store>,
  cleanup?: () => Promise<void>,
): void {
  describe(`Store contract, root key rotation: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await open();
    });

    afterEach(async () => {
      await store.close();
      await cleanup?.();
    });

    /** A key with versions 1..versions, version v wrapped under rootKeyIds[v - 1] (else OLD). */
    async function keyWithVersions(
      versions: number,
      rootKeyIds: string[] = [],
    ): Promise<KeyRecord> {
      const key = makeKey();
      await store.createKey(key, { ...makeVersion(key, 1), rootKeyId: rootKeyIds[0] ?? OLD });
      for (let v = 2; v <= versions; v++) {
        const rootKeyId = rootKeyIds[v - 1] ?? OLD;
        await store.rotateKey(P1, key.keyId, 1000 + v, (keyId, version, now) => ({
          ...makeNextVersion(keyId, version, now),
          rootKeyId,
        }));
      }
      return key;
    }

    describe("replaceMeta", () => {
      it("replaces the value while it holds the expected one, and only then", async () => {
        await store.setMeta("root_key_id", "a");

        expect(await store.replaceMeta("root_key_id", "b", "c")).toBe(false);
        expect(await store.getMeta("root_key_id")).toBe("a");
        expect(await store.replaceMeta("root_key_id", "a", "b")).toBe(true);
        expect(await store.getMeta("root_key_id")).toBe("b");
        expect(await store.replaceMeta("root_key_id", "a", "c")).toBe(false);
        expect(await store.getMeta("root_key_id")).toBe("b");
      });

      it("never creates a value and touches no other name", async () => {
        await store.setMeta("other", "a");

        expect(await store.replaceMeta("missing", "a", "b")).toBe(false);
        expect(await store.getMeta("missing")).toBeUndefined();
        expect(await store.replaceMeta("other", "a", "z")).toBe(true);
        expect(await store.getMeta("other")).toBe("z");
      });

      it("lets exactly one of racing replacements of the same value win", async () => {
        await store.setMeta("race", "start");

        const won = await Promise.all(
          ["x", "y", "z"].map((value) => store.replaceMeta("race", "start", value)),
        );

        expect(won.filter(Boolean)).toHaveLength(1);
        const winner = ["x", "y", "z"][won.indexOf(true)];
        expect(await store.getMeta("race")).toBe(winner);
      });
    });

    describe("listVersionsNotWrappedBy / rewrapKeyVersion", () => {
      it("lists exactly the versions wrapped under another root key, whole", async () => {
        const mixed = await keyWithVersions(3, [OLD, NEW, OTHER]);
        const old = await keyWithVersions(2);
        await keyWithVersions(2, [NEW, NEW]);

        const listed = await store.listVersionsNotWrappedBy(NEW, 100);

        expect(sortedVersions(listed)).toEqual(
          [`${mixed.keyId} v1`, `${mixed.keyId} v3`, `${old.keyId} v1`, `${old.keyId} v2`].sort(),
        );
        for (const version of listed) {
          expect(version).toEqual(await store.getKeyVersion(version.keyId, version.version));
          expect(version.wrappedMaterial).toBeInstanceOf(Uint8Array);
        }
        expect(await store.listVersionsNotWrappedBy(OLD, 100)).toHaveLength(4);
        expect(await store.listVersionsNotWrappedBy("root-unused", 100)).toHaveLength(7);
      });

      it("lists at most `limit` versions, and none when everything is under the key", async () => {
        await keyWithVersions(3);
        await keyWithVersions(3);

        const page = await store.listVersionsNotWrappedBy(NEW, 4);

        expect(page).toHaveLength(4);
        expect(new Set(sortedVersions(page)).size).toBe(4);
        expect(await store.listVersionsNotWrappedBy(OLD, 4)).toEqual([]);
      });

      it("replaces the material and root key id while the expected key still wraps it", async () => {
        const key = await keyWithVersions(2);
        const before = await store.getKeyVersion(key.keyId, 1);
        const rewrapped = new Uint8Array([9, 8, 7, 6, 5]);

        expect(await store.rewrapKeyVersion(key.keyId, 1, OLD, rewrapped, NEW)).toBe(true);

        expect(await store.getKeyVersion(key.keyId, 1)).toEqual({
          ...before,
          wrappedMaterial: rewrapped,
          rootKeyId: NEW,
        });
        // The key and its other version are untouched.
        expect(await store.getKey(P1, key.keyId)).toMatchObject({ primaryVersion: 2 });
        expect((await store.getKeyVersion(key.keyId, 2))?.rootKeyId).toBe(OLD);
        expect(sortedVersions(await store.listVersionsNotWrappedBy(NEW, 10))).toEqual([
          `${key.keyId} v2`,
        ]);
      });

      it("refuses (false, nothing changed) when the version is under another key or gone", async () => {
        const key = await keyWithVersions(1);
        const stored = await store.getKeyVersion(key.keyId, 1);
        const bytes = new Uint8Array([1, 1, 1]);

        expect(await store.rewrapKeyVersion(key.keyId, 1, NEW, bytes, OTHER)).toBe(false);
        expect(await store.rewrapKeyVersion(key.keyId, 2, OLD, bytes, NEW)).toBe(false);
        expect(await store.rewrapKeyVersion("no-such-key", 1, OLD, bytes, NEW)).toBe(false);
        expect(await store.getKeyVersion(key.keyId, 1)).toEqual(stored);
        expect(await store.getKeyVersion(key.keyId, 2)).toBeUndefined();
      });

      it("lets exactly one of two racing rewraps of a version win", async () => {
        const key = await keyWithVersions(1);
        const a = new Uint8Array([0xa]);
        const b = new Uint8Array([0xb]);

        const won = await Promise.all([
          store.rewrapKeyVersion(key.keyId, 1, OLD, a, NEW),
          store.rewrapKeyVersion(key.keyId, 1, OLD, b, NEW),
        ]);

        expect(won.filter(Boolean)).toHaveLength(1);
        const stored = await store.getKeyVersion(key.keyId, 1);
        expect([...(stored?.wrappedMaterial ?? [])]).toEqual(won[0] ? [0xa] : [0xb]);
      });

      it("appends nothing to the change feed (the material inside is the same)", async () => {
        const key = await keyWithVersions(2);
        const seq = await store.latestChangeSeq();

        await store.rewrapKeyVersion(key.keyId, 1, OLD, new Uint8Array([1]), NEW);
        await store.rewrapKeyVersion(key.keyId, 2, OLD, new Uint8Array([2]), NEW);

        expect(await store.latestChangeSeq()).toBe(seq);
        expect(await store.changesSince(seq)).toEqual([]);
      });

      it("do not list or bring back a destroyed key's versions", async () => {
        const key = await keyWithVersions(2);
        await store.updateKey(P1, key.keyId, () => ({ state: "4", deletionAt: 5 }));
        await store.destroyDueKeys(10);

        expect(await store.listVersionsNotWrappedBy(NEW, 10)).toEqual([]);
        expect(await store.rewrapKeyVersion(key.keyId, 1, OLD, new Uint8Array([1]), NEW)).toBe(
          false,
        );
        expect(await store.getKeyVersion(key.keyId, 1)).toBeUndefined();
      });
    });

    describe("listCredentialsNotWrappedBy / rewrapCredential", () => {
      async function credential(rootKeyId: string): Promise<CredentialRecord> {
        const made = makeCredential({ rootKeyId });
        await store.createCredential(made);
        return made;
      }

      it("lists exactly the credentials wrapped under another root key, whole, up to `limit`", async () => {
        const old = [await credential(OLD), await credential(OLD), await credential(OTHER)];
        await credential(NEW);

        const listed = await store.listCredentialsNotWrappedBy(NEW, 100);

        expect(listed.map((c) => c.accessKey).sort()).toEqual(old.map((c) => c.accessKey).sort());
        for (const record of listed) {
          expect(record).toEqual(await store.getCredential(record.accessKey));
        }
        expect(await store.listCredentialsNotWrappedBy(NEW, 2)).toHaveLength(2);
        expect(await store.listCredentialsNotWrappedBy("root-unused", 100)).toHaveLength(4);
      });

      it("replaces the wrapped secret and root key id only while the expected key wraps it", async () => {
        const original = await credential(OLD);
        const seq = await store.latestChangeSeq();
        const rewrapped = new Uint8Array([4, 5, 6]);

        expect(await store.rewrapCredential(original.accessKey, NEW, rewrapped, OTHER)).toBe(false);
        expect(await store.getCredential(original.accessKey)).toEqual(original);
        expect(await store.rewrapCredential(original.accessKey, OLD, rewrapped, NEW)).toBe(true);
        expect(await store.rewrapCredential(original.accessKey, OLD, rewrapped, NEW)).toBe(false);
        expect(await store.rewrapCredential("AK-unknown", OLD, rewrapped, NEW)).toBe(false);

        expect(await store.getCredential(original.accessKey)).toEqual({
          ...original,
          wrappedSecret: rewrapped,
          rootKeyId: NEW,
        });
        expect(await store.listCredentialsNotWrappedBy(NEW, 10)).toEqual([]);
        expect(await store.latestChangeSeq()).toBe(seq);
      });

      it("keeps a credential's state and description through a rewrap", async () => {
        const original = await credential(OLD);
        await store.setCredentialState(original.accessKey, "disabled");

        await store.rewrapCredential(original.accessKey, OLD, new Uint8Array([1]), NEW);

        expect(await store.getCredential(original.accessKey)).toMatchObject({
          state: "disabled",
          description: original.description,
          role: original.role,
          rootKeyId: NEW,
        });
      });
    });
  });
}
