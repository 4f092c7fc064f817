import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AliasTakenError,
  type KeyRecord,
  KeyState,
  type MakeKeyVersion,
  type Store,
} from "../../src/keystore/types.js";
import { describeAccessContract } from "./access-contract.js";
import { describeAuditContract } from "./audit-contract.js";
import {
  makeAuditEntry,
  makeCredential,
  makeKey,
  makeNextVersion,
  makeToken,
  makeVersion,
  P1,
  P2,
  testAppend,
} from "./fixtures.js";
import { describeTransferContract } from "./transfer-contract.js";

/**
 * The behaviour every Store backend must have: keys, access credentials and
 * the audit trail. `open` must return an empty store; `cleanup` runs after
 * the store is closed.
 */
export function describeStoreContract(
  name: string,
  open: () => Promise<Store>,
  cleanup?: () => Promise<void>,
): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await open();
    });

    afterEach(async () => {
      await store.close();
      await cleanup?.();
    });

    async function create(overrides: Partial<KeyRecord> = {}): Promise<KeyRecord> {
      const key = makeKey(overrides);
      await store.createKey(key, makeVersion(key));
      return key;
    }

    describe("createKey / getKey / getKeyVersion", () => {
      it("round-trips the key and its first version exactly", async () => {
        const key = await create({ description: "naïve 🔑", enterpriseProjectId: "ep-7" });
        expect(await store.getKey(P1, key.keyId)).toEqual(key);

        const version = await store.getKeyVersion(key.keyId, 1);
        expect(version).toEqual(makeVersion(key));
        expect(version?.wrappedMaterial).toBeInstanceOf(Uint8Array);
        expect([...(version?.wrappedMaterial ?? [])]).toEqual([
          ...makeVersion(key).wrappedMaterial,
        ]);
      });

      it("keeps a pending deletion date", async () => {
        const key = await create({
          state: KeyState.PendingDeletion,
          deletionAt: 1_800_000_000_123,
        });
        expect(await store.getKey(P1, key.keyId)).toEqual(key);
      });

      it("answers undefined for a missing key or version", async () => {
        const key = await create();
        expect(await store.getKey(P1, "no-such-key")).toBeUndefined();
        expect(await store.getKeyVersion(key.keyId, 2)).toBeUndefined();
        expect(await store.getKeyVersion("no-such-key", 1)).toBeUndefined();
      });

      it("never shows a key to another project", async () => {
        const key = await create({ projectId: P2 });
        expect(await store.getKey(P1, key.keyId)).toBeUndefined();
        expect(await store.getKey(P2, key.keyId)).toEqual(key);
      });

      it("rejects an alias already used in the project and writes nothing", async () => {
        await create({ alias: "payments" });
        const seq = await store.latestChangeSeq();
        const duplicate = makeKey({ alias: "payments" });

        const error = await store.createKey(duplicate, makeVersion(duplicate)).catch((e) => e);

        expect(error).toBeInstanceOf(AliasTakenError);
        expect((error as AliasTakenError).alias).toBe("payments");
        expect(await store.getKey(P1, duplicate.keyId)).toBeUndefined();
        expect(await store.getKeyVersion(duplicate.keyId, 1)).toBeUndefined();
        expect(await store.latestChangeSeq()).toBe(seq);
      });

      it("lets another project reuse an alias", async () => {
        await create({ alias: "payments" });
        const other = await create({ alias: "payments", projectId: P2 });
        expect(await store.getKey(P2, other.keyId)).toEqual(other);
      });

      it("does not report a duplicate key id as a taken alias", async () => {
        const key = await create();
        const clash = makeKey({ keyId: key.keyId, projectId: P2 });

        const error = await store.createKey(clash, makeVersion(clash)).catch((e) => e);

        expect(error).toBeInstanceOf(Error);
        expect(error).not.toBeInstanceOf(AliasTakenError);
        expect(await store.getKey(P1, key.keyId)).toEqual(key);
        expect(await store.getKey(P2, key.keyId)).toBeUndefined();
      });
    });

    describe("listKeys", () => {
      /** 25 keys in P1, inserted out of order, some sharing a creation time. */
      async function seed(): Promise<KeyRecord[]> {
        const keys: KeyRecord[] = [];
        for (let i = 0; i < 25; i++) {
          keys.push(
            makeKey({
              createdAt: 1_000 + Math.floor(i / 3),
              state: i % 5 === 0 ? KeyState.Disabled : KeyState.Enabled,
              keySpec: i % 2 === 0 ? "AES_256" : "SM4",
            }),
          );
        }
        const shuffled = keys.map((k, i) => ({ k, r: (i * 7) % 25 })).sort((a, b) => a.r - b.r);
        for (const { k } of shuffled) await store.createKey(k, makeVersion(k));
        await create({ projectId: P2, createdAt: 1_005 });
        return [...keys].sort((a, b) => a.createdAt - b.createdAt || (a.keyId < b.keyId ? -1 : 1));
      }

      async function listAll(query: { state?: KeyState; keySpec?: string; limit: number }) {
        const pages = [];
        let marker: string | undefined;
        do {
          const page = await store.listKeys({ projectId: P1, ...query, marker });
          pages.push(page);
          marker = page.nextMarker;
        } while (marker !== undefined && pages.length < 100);
        return pages;
      }

      it("pages through every key exactly once, in (createdAt, keyId) order", async () => {
        const expected = await seed();
        const pages = await listAll({ limit: 10 });

        expect(pages.map((p) => p.keys.length)).toEqual([10, 10, 5]);
        expect(pages.map((p) => p.total)).toEqual([25, 25, 25]);
        expect(pages.map((p) => p.nextMarker === undefined)).toEqual([false, false, true]);
        expect(pages.flatMap((p) => p.keys)).toEqual(expected);
      });

      it("sets no marker when the last page is exactly full", async () => {
        const expected = await seed();
        const pages = await listAll({ limit: 5 });
        expect(pages).toHaveLength(5);
        expect(pages.at(-1)?.nextMarker).toBeUndefined();
        expect(pages.flatMap((p) => p.keys)).toEqual(expected);
      });

      it("filters by state and key spec, and counts only matches", async () => {
        const all = await seed();

        const disabled = await listAll({ limit: 2, state: KeyState.Disabled });
        expect(disabled.flatMap((p) => p.keys)).toEqual(
          all.filter((k) => k.state === KeyState.Disabled),
        );
        expect(disabled[0]?.total).toBe(5);

        const sm4 = await listAll({ limit: 10, keySpec: "SM4" });
        expect(sm4.flatMap((p) => p.keys)).toEqual(all.filter((k) => k.keySpec === "SM4"));
        expect(sm4[0]?.total).toBe(12);

        const both = await store.listKeys({
          projectId: P1,
          limit: 1000,
          state: KeyState.Enabled,
          keySpec: "AES_256",
        });
        expect(both.keys).toEqual(
          all.filter((k) => k.state === KeyState.Enabled && k.keySpec === "AES_256"),
        );
        expect(both.total).toBe(10);
      });

      it("lists only the asked project", async () => {
        await seed();
        const page = await store.listKeys({ projectId: P2, limit: 10 });
        expect(page.keys.map((k) => k.projectId)).toEqual([P2]);
        expect(page.total).toBe(1);
        expect(await store.listKeys({ projectId: "empty", limit: 10 })).toEqual({
          keys: [],
          total: 0,
        });
      });

      it("continues after the marker's key has been destroyed", async () => {
        const expected = await seed();
        const first = await store.listKeys({ projectId: P1, limit: 10 });
        const lastShown = first.keys.at(-1);
        if (lastShown === undefined) throw new Error("empty first page");
        await store.updateKey(P1, lastShown.keyId, () => ({
          state: KeyState.PendingDeletion,
          deletionAt: 1,
        }));
        expect(await store.destroyDueKeys(1)).toEqual([lastShown.keyId]);

        const second = await store.listKeys({ projectId: P1, limit: 10, marker: first.nextMarker });
        expect(second.keys).toEqual(expected.slice(10, 20));
        expect(second.total).toBe(24);
      });

      it("rejects an invalid marker with a RangeError", async () => {
        await seed();
        const bad = [
          "",
          "not a marker!",
          "Zm9v", // "foo": no separator
          Buffer.from("abc:key").toString("base64url"),
          Buffer.from("1000:").toString("base64url"),
          `${Buffer.from("1000:key").toString("base64url")}=`,
        ];
        for (const marker of bad) {
          await expect(store.listKeys({ projectId: P1, limit: 10, marker })).rejects.toThrow(
            RangeError,
          );
        }
      });

      it("rejects a limit outside 1..1000 with a RangeError", async () => {
        for (const limit of [0, -1, 1001, 2.5]) {
          await expect(store.listKeys({ projectId: P1, limit })).rejects.toThrow(RangeError);
        }
      });
    });

    describe("updateKey", () => {
      it("applies only the patched fields, records a change and returns the key", async () => {
        const key = await create();
        const seq = await store.latestChangeSeq();
        let seen: KeyRecord | undefined;

        const updated = await store.updateKey(P1, key.keyId, (current) => {
          seen = current;
          return { state: KeyState.PendingDeletion, deletionAt: 1_900_000_000_000 };
        });

        const expected = { ...key, state: KeyState.PendingDeletion, deletionAt: 1_900_000_000_000 };
        expect(seen).toEqual(key);
        expect(updated).toEqual(expected);
        expect(await store.getKey(P1, key.keyId)).toEqual(expected);
        expect(await store.changesSince(seq)).toEqual([
          { seq: expect.any(Number), kind: "key", projectId: P1, keyId: key.keyId },
        ]);
      });

      it("clears a deletion date with null and changes alias and description", async () => {
        const key = await create({ state: KeyState.PendingDeletion, deletionAt: 5 });
        const updated = await store.updateKey(P1, key.keyId, () => ({
          state: KeyState.Disabled,
          deletionAt: null,
          alias: "renamed",
          description: "",
        }));
        const expected = {
          ...key,
          state: KeyState.Disabled,
          deletionAt: null,
          alias: "renamed",
          description: "",
        };
        expect(updated).toEqual(expected);
        expect(await store.getKey(P1, key.keyId)).toEqual(expected);
      });

      it("answers undefined without calling decide for a missing or foreign key", async () => {
        const foreign = await create({ projectId: P2 });
        const seq = await store.latestChangeSeq();
        let calls = 0;
        const decide = () => {
          calls += 1;
          return { description: "hijacked" };
        };

        expect(await store.updateKey(P1, foreign.keyId, decide)).toBeUndefined();
        expect(await store.updateKey(P1, "no-such-key", decide)).toBeUndefined();
        expect(calls).toBe(0);
        expect(await store.getKey(P2, foreign.keyId)).toEqual(foreign);
        expect(await store.latestChangeSeq()).toBe(seq);
      });

      it("rolls back and rethrows the same error when decide throws", async () => {
        const key = await create();
        const seq = await store.latestChangeSeq();
        const thrown = new Error("key is not enabled");

        const error = await store
          .updateKey(P1, key.keyId, () => {
            throw thrown;
          })
          .catch((e) => e);

        expect(error).toBe(thrown);
        expect(await store.getKey(P1, key.keyId)).toEqual(key);
        expect(await store.latestChangeSeq()).toBe(seq);
      });

      it("changes nothing and records nothing for an empty patch", async () => {
        const key = await create();
        const seq = await store.latestChangeSeq();
        expect(await store.updateKey(P1, key.keyId, () => ({}))).toEqual(key);
        expect(await store.getKey(P1, key.keyId)).toEqual(key);
        expect(await store.latestChangeSeq()).toBe(seq);
      });

      it("rejects renaming to a taken alias and frees the old alias on rename", async () => {
        const a = await create({ alias: "a" });
        await create({ alias: "b" });
        const seq = await store.latestChangeSeq();

        const error = await store.updateKey(P1, a.keyId, () => ({ alias: "b" })).catch((e) => e);
        expect(error).toBeInstanceOf(AliasTakenError);
        expect(await store.getKey(P1, a.keyId)).toEqual(a);
        expect(await store.latestChangeSeq()).toBe(seq);

        await store.updateKey(P1, a.keyId, () => ({ alias: "a2" }));
        const reuse = await create({ alias: "a" });
        expect(await store.getKey(P1, reuse.keyId)).toEqual(reuse);
      });
    });

    describe("destroyDueKeys", () => {
      it("destroys only pending keys whose date has come, versions included", async () => {
        const now = 2_000_000;
        const due = await create({ state: KeyState.PendingDeletion, deletionAt: now - 1 });
        const dueNow = await create({
          projectId: P2,
          state: KeyState.PendingDeletion,
          deletionAt: now,
        });
        const later = await create({ state: KeyState.PendingDeletion, deletionAt: now + 1 });
        const enabled = await create();
        const seq = await store.latestChangeSeq();

        const destroyed = await store.destroyDueKeys(now);

        expect([...destroyed].sort()).toEqual([due.keyId, dueNow.keyId].sort());
        expect(await store.getKey(P1, due.keyId)).toBeUndefined();
        expect(await store.getKey(P2, dueNow.keyId)).toBeUndefined();
        expect(await store.getKeyVersion(due.keyId, 1)).toBeUndefined();
        expect(await store.getKeyVersion(dueNow.keyId, 1)).toBeUndefined();
        expect(await store.getKey(P1, later.keyId)).toEqual(later);
        expect(await store.getKeyVersion(later.keyId, 1)).toEqual(makeVersion(later));
        expect(await store.getKey(P1, enabled.keyId)).toEqual(enabled);

        const changes = await store.changesSince(seq);
        expect(changes.map((c) => [c.kind, c.projectId, c.keyId]).sort()).toEqual(
          [
            ["key", P1, due.keyId],
            ["key", P2, dueNow.keyId],
          ].sort(),
        );
        expect(await store.destroyDueKeys(now)).toEqual([]);
      });

      it("ignores a deletion date on a key that is not pending deletion", async () => {
        const key = await create({ state: KeyState.Disabled, deletionAt: 1 });
        expect(await store.destroyDueKeys(10)).toEqual([]);
        expect(await store.getKey(P1, key.keyId)).toEqual(key);
      });

      it("frees the alias of a destroyed key", async () => {
        await create({ alias: "gone", state: KeyState.PendingDeletion, deletionAt: 1 });
        await store.destroyDueKeys(1);
        const again = await create({ alias: "gone" });
        expect(await store.getKey(P1, again.keyId)).toEqual(again);
      });
    });

    describe("rotation", () => {
      const DAY = 24 * 60 * 60 * 1000;
      const NOW = 1_800_000_000_000;

      /** makeNextVersion, remembering each call. */
      function recordingMaker() {
        const calls: [string, number, number][] = [];
        const make: MakeKeyVersion = (keyId, version, now) => {
          calls.push([keyId, version, now]);
          return makeNextVersion(keyId, version, now);
        };
        return { make, calls };
      }

      it("round-trips the rotation fields of a created key", async () => {
        const key = await create({
          rotationEnabled: true,
          rotationIntervalDays: 30,
          lastRotationAt: 1_700_000_000_999,
          rotationCount: 4,
          nextRotationAt: 1_700_000_000_999 + 30 * DAY,
          primaryVersion: 5,
        });
        expect(await store.getKey(P1, key.keyId)).toEqual(key);
      });

      it("updateKey changes the rotation settings and records a change", async () => {
        const key = await create();
        const seq = await store.latestChangeSeq();
        const updated = await store.updateKey(P1, key.keyId, () => ({
          rotationEnabled: true,
          rotationIntervalDays: 90,
          nextRotationAt: NOW,
        }));
        const expected = {
          ...key,
          rotationEnabled: true,
          rotationIntervalDays: 90,
          nextRotationAt: NOW,
        };
        expect(updated).toEqual(expected);
        expect(await store.getKey(P1, key.keyId)).toEqual(expected);
        expect((await store.changesSince(seq)).map((c) => [c.kind, c.keyId])).toEqual([
          ["key", key.keyId],
        ]);

        const off = await store.updateKey(P1, key.keyId, () => ({
          rotationEnabled: false,
          nextRotationAt: null,
        }));
        expect(off).toEqual({ ...expected, rotationEnabled: false, nextRotationAt: null });
        expect(await store.getKey(P1, key.keyId)).toEqual(off);
      });

      describe("rotateKey", () => {
        it("adds the next version, makes it primary and records when and how often", async () => {
          const key = await create({
            rotationEnabled: true,
            rotationIntervalDays: 30,
            nextRotationAt: 1,
          });
          const seq = await store.latestChangeSeq();
          const { make, calls } = recordingMaker();
          let seen: KeyRecord | undefined;

          const rotated = await store.rotateKey(P1, key.keyId, NOW, make, (current) => {
            seen = current;
          });

          const expected: KeyRecord = {
            ...key,
            primaryVersion: 2,
            lastRotationAt: NOW,
            rotationCount: 1,
            nextRotationAt: NOW + 30 * DAY,
          };
          expect(seen).toEqual(key);
          expect(calls).toEqual([[key.keyId, 2, NOW]]);
          expect(rotated).toEqual(expected);
          expect(await store.getKey(P1, key.keyId)).toEqual(expected);
          expect(await store.getKeyVersion(key.keyId, 2)).toEqual(
            makeNextVersion(key.keyId, 2, NOW),
          );
          // The old version stays: its ciphertexts must keep decrypting.
          expect(await store.getKeyVersion(key.keyId, 1)).toEqual(makeVersion(key));
          expect(
            (await store.changesSince(seq)).map((c) => [c.kind, c.projectId, c.keyId]),
          ).toEqual([["key", P1, key.keyId]]);
        });

        it("leaves nextRotationAt null when automatic rotation is off", async () => {
          const key = await create();
          const rotated = await store.rotateKey(P1, key.keyId, NOW, makeNextVersion);
          expect(rotated).toMatchObject({
            primaryVersion: 2,
            rotationCount: 1,
            nextRotationAt: null,
          });
        });

        it("keeps every version through successive rotations", async () => {
          const key = await create();
          for (let i = 1; i <= 4; i++) {
            await store.rotateKey(P1, key.keyId, NOW + i, makeNextVersion);
          }
          expect(await store.getKey(P1, key.keyId)).toMatchObject({
            primaryVersion: 5,
            rotationCount: 4,
            lastRotationAt: NOW + 4,
          });
          for (let version = 2; version <= 5; version++) {
            expect(await store.getKeyVersion(key.keyId, version)).toEqual(
              makeNextVersion(key.keyId, version, NOW + version - 1),
            );
          }
          expect(await store.getKeyVersion(key.keyId, 6)).toBeUndefined();
        });

        it("answers undefined without calling check or makeVersion for a missing or foreign key", async () => {
          const foreign = await create({ projectId: P2 });
          const seq = await store.latestChangeSeq();
          const { make, calls } = recordingMaker();
          let checks = 0;
          const check = () => {
            checks += 1;
          };
          expect(await store.rotateKey(P1, foreign.keyId, NOW, make, check)).toBeUndefined();
          expect(await store.rotateKey(P1, "no-such-key", NOW, make, check)).toBeUndefined();
          expect({ checks, calls }).toEqual({ checks: 0, calls: [] });
          expect(await store.getKey(P2, foreign.keyId)).toEqual(foreign);
          expect(await store.getKeyVersion(foreign.keyId, 2)).toBeUndefined();
          expect(await store.latestChangeSeq()).toBe(seq);
        });

        it("rolls back and rethrows the same error when check throws", async () => {
          const key = await create();
          const seq = await store.latestChangeSeq();
          const refused = new Error("key is disabled");
          const { make, calls } = recordingMaker();

          const error = await store
            .rotateKey(P1, key.keyId, NOW, make, () => {
              throw refused;
            })
            .catch((e) => e);

          expect(error).toBe(refused);
          expect(calls).toEqual([]);
          expect(await store.getKey(P1, key.keyId)).toEqual(key);
          expect(await store.getKeyVersion(key.keyId, 2)).toBeUndefined();
          expect(await store.latestChangeSeq()).toBe(seq);
        });
      });

      describe("rotateDueKeys", () => {
        it("rotates only enabled keys whose rotation is on and due, and advances their schedule", async () => {
          const due = await create({
            rotationEnabled: true,
            rotationIntervalDays: 30,
            nextRotationAt: NOW - DAY,
          });
          const dueNow = await create({
            projectId: P2,
            rotationEnabled: true,
            rotationIntervalDays: 365,
            nextRotationAt: NOW,
          });
          const later = await create({ rotationEnabled: true, nextRotationAt: NOW + 1 });
          const off = await create();
          const disabled = await create({
            state: KeyState.Disabled,
            rotationEnabled: true,
            nextRotationAt: NOW - DAY,
          });
          const pending = await create({
            state: KeyState.PendingDeletion,
            deletionAt: NOW + DAY,
            rotationEnabled: true,
            nextRotationAt: NOW - DAY,
          });
          const seq = await store.latestChangeSeq();

          const rotated = await store.rotateDueKeys(NOW, makeNextVersion, 100);

          // Most overdue first; the schedule restarts from this rotation, not the missed date.
          expect(rotated).toEqual([
            {
              ...due,
              primaryVersion: 2,
              lastRotationAt: NOW,
              rotationCount: 1,
              nextRotationAt: NOW + 30 * DAY,
            },
            {
              ...dueNow,
              primaryVersion: 2,
              lastRotationAt: NOW,
              rotationCount: 1,
              nextRotationAt: NOW + 365 * DAY,
            },
          ]);
          for (const key of rotated) {
            expect(await store.getKey(key.projectId, key.keyId)).toEqual(key);
            expect(await store.getKeyVersion(key.keyId, 2)).toEqual(
              makeNextVersion(key.keyId, 2, NOW),
            );
          }
          for (const untouched of [later, off, disabled, pending]) {
            expect(await store.getKey(untouched.projectId, untouched.keyId)).toEqual(untouched);
            expect(await store.getKeyVersion(untouched.keyId, 2)).toBeUndefined();
          }
          expect((await store.changesSince(seq)).map((c) => [c.projectId, c.keyId])).toEqual([
            [P1, due.keyId],
            [P2, dueNow.keyId],
          ]);
          expect(await store.rotateDueKeys(NOW, makeNextVersion, 100)).toEqual([]);
        });

        it("rotates at most `limit` keys per call, most overdue first", async () => {
          const keys: KeyRecord[] = [];
          for (let i = 0; i < 5; i++) {
            keys.push(await create({ rotationEnabled: true, nextRotationAt: NOW - (5 - i) * DAY }));
          }
          const first = await store.rotateDueKeys(NOW, makeNextVersion, 2);
          const second = await store.rotateDueKeys(NOW, makeNextVersion, 2);
          const third = await store.rotateDueKeys(NOW, makeNextVersion, 2);
          expect([first, second, third].map((batch) => batch.map((k) => k.keyId))).toEqual([
            [keys[0]?.keyId, keys[1]?.keyId],
            [keys[2]?.keyId, keys[3]?.keyId],
            [keys[4]?.keyId],
          ]);
          expect(await store.rotateDueKeys(NOW, makeNextVersion, 2)).toEqual([]);
        });

        it("rotates nothing when making a version fails", async () => {
          const a = await create({ rotationEnabled: true, nextRotationAt: NOW - 2 });
          const b = await create({ rotationEnabled: true, nextRotationAt: NOW - 1 });
          const seq = await store.latestChangeSeq();
          const failure = new Error("root key unavailable");
          let made = 0;
          const flaky: MakeKeyVersion = (keyId, version, now) => {
            made += 1;
            if (made === 2) throw failure;
            return makeNextVersion(keyId, version, now);
          };

          await expect(store.rotateDueKeys(NOW, flaky, 100)).rejects.toBe(failure);

          expect(await store.getKey(P1, a.keyId)).toEqual(a);
          expect(await store.getKey(P1, b.keyId)).toEqual(b);
          expect(await store.getKeyVersion(a.keyId, 2)).toBeUndefined();
          expect(await store.latestChangeSeq()).toBe(seq);
        });
      });
    });

    describe("change feed", () => {
      it("starts at 0 and lists changes oldest first", async () => {
        expect(await store.latestChangeSeq()).toBe(0);
        expect(await store.changesSince(0)).toEqual([]);

        const a = await create();
        const b = await create({ projectId: P2 });
        await store.updateKey(P1, a.keyId, () => ({ description: "x" }));

        const changes = await store.changesSince(0);
        expect(changes.map((c) => [c.kind, c.projectId, c.keyId])).toEqual([
          ["key", P1, a.keyId],
          ["key", P2, b.keyId],
          ["key", P1, a.keyId],
        ]);
        const seqs = changes.map((c) => c.seq);
        expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
        expect(new Set(seqs).size).toBe(3);

        const [first, second, third] = changes;
        expect(await store.changesSince(first?.seq ?? -1)).toEqual([second, third]);
        expect(await store.latestChangeSeq()).toBe(third?.seq);
        expect(await store.changesSince(third?.seq ?? -1)).toEqual([]);
      });

      it("interleaves key, credential and token changes, each with its kind", async () => {
        const key = await create();
        const credential = makeCredential({ projectId: P2 });
        await store.createCredential(credential);
        const token = makeToken();
        await store.createToken(token);
        await store.setCredentialState(credential.accessKey, "disabled");
        await store.updateKey(P1, key.keyId, () => ({ state: KeyState.Disabled }));
        await store.revokeToken(token.tokenId, 1);
        await store.deleteCredential(credential.accessKey);

        const changes = await store.changesSince(0);

        expect(changes.map((c) => [c.kind, c.projectId, c.keyId])).toEqual([
          ["key", P1, key.keyId],
          ["credential", P2, credential.accessKey],
          ["token", P1, token.tokenId],
          ["credential", P2, credential.accessKey],
          ["key", P1, key.keyId],
          ["token", P1, token.tokenId],
          ["credential", P2, credential.accessKey],
        ]);
        expect(await store.latestChangeSeq()).toBe(changes.at(-1)?.seq);
      });

      it("does not record audit appends", async () => {
        await store.appendAudit(testAppend([makeAuditEntry()]));
        expect(await store.latestChangeSeq()).toBe(0);
      });
    });

    describe("meta", () => {
      it("stores, overwrites and separates values by name", async () => {
        expect(await store.getMeta("root_check")).toBeUndefined();
        await store.setMeta("root_check", "v1");
        await store.setMeta("other", "o");
        expect(await store.getMeta("root_check")).toBe("v1");
        await store.setMeta("root_check", "v2");
        expect(await store.getMeta("root_check")).toBe("v2");
        expect(await store.getMeta("other")).toBe("o");
      });

      it("initialises a value once and answers the value kept", async () => {
        expect(await store.initMeta("chain_key", "first")).toBe("first");
        expect(await store.initMeta("chain_key", "second")).toBe("first");
        expect(await store.getMeta("chain_key")).toBe("first");

        await store.setMeta("set", "kept");
        expect(await store.initMeta("set", "ignored")).toBe("kept");
      });

      it("agrees on one value when initialisations race", async () => {
        const kept = await Promise.all(["a", "b", "c"].map((v) => store.initMeta("race", v)));
        const stored = await store.getMeta("race");
        expect(["a", "b", "c"]).toContain(stored);
        expect(kept).toEqual([stored, stored, stored]);
      });
    });

    describe("ping / close", () => {
      it("pings while open, fails once closed, and closes twice", async () => {
        await expect(store.ping()).resolves.toBeUndefined();
        await store.close();
        await expect(store.ping()).rejects.toThrow();
        await expect(store.getCredential("AK")).rejects.toThrow();
        await expect(store.auditHead()).rejects.toThrow();
        await expect(store.close()).resolves.toBeUndefined();
      });
    });

    describeAccessContract(() => store);
    describeAuditContract(() => store);
    describeTransferContract(() => store);
  });
}
