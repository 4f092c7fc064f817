import { describe, expect, it } from "vitest";
import {
  CredentialExistsError,
  type CredentialRecord,
  type CredentialState,
  type Role,
  type TokenRecord,
} from "../../src/keystore/access-types.js";
import type { Store } from "../../src/keystore/types.js";
import { makeCredential, makeToken, P1, P2 } from "./fixtures.js";

/** Records inserted out of order, some sharing a creation time, in two projects. */
function shuffledSeed<T extends { createdAt: number }>(make: (i: number) => T): T[] {
  const records = Array.from({ length: 9 }, (_, i) => make(i));
  return records
    .map((r, i) => ({ r, k: (i * 4) % 9 }))
    .sort((a, b) => a.k - b.k)
    .map((x) => x.r);
}

function byCreation<T extends { createdAt: number }>(id: (r: T) => string): (a: T, b: T) => number {
  return (a, b) => a.createdAt - b.createdAt || (id(a) < id(b) ? -1 : 1);
}

/** AccessStore cases of the store contract; `store` is the open, initially empty store. */
export function describeAccessContract(store: () => Store): void {
  describe("credentials", () => {
    async function create(overrides: Partial<CredentialRecord> = {}): Promise<CredentialRecord> {
      const credential = makeCredential(overrides);
      await store().createCredential(credential);
      return credential;
    }

    it("round-trip exactly, the secret as a plain Uint8Array the caller owns", async () => {
      const credential = await create({ role: "admin", description: "naïve 🔑" });

      const got = await store().getCredential(credential.accessKey);

      expect(got).toEqual(credential);
      const secret = got?.wrappedSecret ?? new Uint8Array();
      expect(Object.getPrototypeOf(secret)).toBe(Uint8Array.prototype);
      expect([...secret]).toEqual([...credential.wrappedSecret]);
      secret.fill(0);
      expect(await store().getCredential(credential.accessKey)).toEqual(credential);
    });

    it("answer undefined for an unknown access key", async () => {
      await create();
      expect(await store().getCredential("AK-unknown")).toBeUndefined();
    });

    it("refuse a taken access key, in any project, with CredentialExistsError", async () => {
      const original = await create();
      const seq = await store().latestChangeSeq();
      const clash = makeCredential({ accessKey: original.accessKey, projectId: P2, role: "admin" });

      const error = await store()
        .createCredential(clash)
        .catch((e) => e);

      expect(error).toBeInstanceOf(CredentialExistsError);
      expect((error as CredentialExistsError).accessKey).toBe(original.accessKey);
      expect(await store().getCredential(original.accessKey)).toEqual(original);
      expect(await store().listCredentials(P2)).toEqual([]);
      expect(await store().latestChangeSeq()).toBe(seq);
    });

    it("refuse a role or state outside the enumeration, not as a taken access key", async () => {
      const seq = await store().latestChangeSeq();
      const badRole = makeCredential({ role: "root" as Role });
      const badState = makeCredential({ state: "2" as CredentialState });

      for (const bad of [badRole, badState]) {
        const error = await store()
          .createCredential(bad)
          .catch((e) => e);
        expect(error).toBeInstanceOf(Error);
        expect(error).not.toBeInstanceOf(CredentialExistsError);
        expect(await store().getCredential(bad.accessKey)).toBeUndefined();
      }
      expect(await store().latestChangeSeq()).toBe(seq);
    });

    it("list oldest first (ties by access key), all or one project's", async () => {
      const seeded = shuffledSeed((i) =>
        makeCredential({
          accessKey: `AK-${String.fromCharCode(105 - i)}`,
          projectId: i % 3 === 0 ? P2 : P1,
          createdAt: 1_000 + Math.floor(i / 2),
        }),
      );
      for (const credential of seeded) await store().createCredential(credential);
      const sorted = [...seeded].sort(byCreation((c) => c.accessKey));

      expect(await store().listCredentials()).toEqual(sorted);
      expect(await store().listCredentials(P1)).toEqual(sorted.filter((c) => c.projectId === P1));
      expect(await store().listCredentials(P2)).toEqual(sorted.filter((c) => c.projectId === P2));
      expect(await store().listCredentials("no-such-project")).toEqual([]);
    });

    it("change state, recording a credential change", async () => {
      const credential = await create({ projectId: P2 });
      const seq = await store().latestChangeSeq();

      expect(await store().setCredentialState(credential.accessKey, "disabled")).toBe(true);

      expect(await store().getCredential(credential.accessKey)).toEqual({
        ...credential,
        state: "disabled",
      });
      expect(await store().changesSince(seq)).toEqual([
        { seq: expect.any(Number), kind: "credential", projectId: P2, keyId: credential.accessKey },
      ]);
      expect(await store().setCredentialState(credential.accessKey, "enabled")).toBe(true);
      expect((await store().getCredential(credential.accessKey))?.state).toBe("enabled");
    });

    it("answer false and record nothing when changing an unknown credential", async () => {
      await create();
      const seq = await store().latestChangeSeq();
      expect(await store().setCredentialState("AK-unknown", "disabled")).toBe(false);
      expect(await store().deleteCredential("AK-unknown")).toBe(false);
      expect(await store().latestChangeSeq()).toBe(seq);
    });

    it("delete, recording a credential change, and free the access key", async () => {
      const credential = await create({ projectId: P2 });
      const kept = await create();
      const seq = await store().latestChangeSeq();

      expect(await store().deleteCredential(credential.accessKey)).toBe(true);

      expect(await store().getCredential(credential.accessKey)).toBeUndefined();
      expect(await store().listCredentials()).toEqual([kept]);
      expect(await store().changesSince(seq)).toEqual([
        { seq: expect.any(Number), kind: "credential", projectId: P2, keyId: credential.accessKey },
      ]);
      expect(await store().deleteCredential(credential.accessKey)).toBe(false);

      const reused = await create({ accessKey: credential.accessKey });
      expect(await store().getCredential(credential.accessKey)).toEqual(reused);
    });
  });

  describe("tokens", () => {
    async function create(overrides: Partial<TokenRecord> = {}): Promise<TokenRecord> {
      const token = makeToken(overrides);
      await store().createToken(token);
      return token;
    }

    it("round-trip exactly, found by hash only", async () => {
      const token = await create({ role: "admin", description: "ci 🔑" });
      const revoked = await create({ revokedAt: 1_750_000_000_000 });

      expect(await store().getTokenByHash(token.tokenHash)).toEqual(token);
      expect(await store().getTokenByHash(revoked.tokenHash)).toEqual(revoked);
      expect(await store().getTokenByHash(token.tokenId)).toBeUndefined();
      expect(await store().getTokenByHash("0".repeat(64))).toBeUndefined();
    });

    it("record a token change on creation", async () => {
      const seq = await store().latestChangeSeq();
      const token = await create({ projectId: P2 });
      expect(await store().changesSince(seq)).toEqual([
        { seq: expect.any(Number), kind: "token", projectId: P2, keyId: token.tokenId },
      ]);
    });

    it("refuse a taken token id or hash and write nothing", async () => {
      const original = await create();
      const seq = await store().latestChangeSeq();
      const sameId = makeToken({ tokenId: original.tokenId });
      const sameHash = makeToken({ tokenHash: original.tokenHash });

      await expect(store().createToken(sameId)).rejects.toThrow();
      await expect(store().createToken(sameHash)).rejects.toThrow();

      expect(await store().listTokens()).toEqual([original]);
      expect(await store().getTokenByHash(sameId.tokenHash)).toBeUndefined();
      expect(await store().latestChangeSeq()).toBe(seq);
    });

    it("refuse a role outside the enumeration", async () => {
      const bad = makeToken({ role: "root" as Role });
      await expect(store().createToken(bad)).rejects.toThrow();
      expect(await store().getTokenByHash(bad.tokenHash)).toBeUndefined();
    });

    it("list oldest first (ties by token id), all or one project's", async () => {
      const seeded = shuffledSeed((i) =>
        makeToken({
          tokenId: `tok-${String.fromCharCode(105 - i)}`,
          projectId: i % 3 === 0 ? P2 : P1,
          createdAt: 1_000 + Math.floor(i / 2),
        }),
      );
      for (const token of seeded) await store().createToken(token);
      const sorted = [...seeded].sort(byCreation((t) => t.tokenId));

      expect(await store().listTokens()).toEqual(sorted);
      expect(await store().listTokens(P1)).toEqual(sorted.filter((t) => t.projectId === P1));
      expect(await store().listTokens(P2)).toEqual(sorted.filter((t) => t.projectId === P2));
      expect(await store().listTokens("no-such-project")).toEqual([]);
    });

    it("revoke once: the first revocation time is kept, and a change is recorded", async () => {
      const token = await create({ projectId: P2 });
      const other = await create({ projectId: P2 });
      const seq = await store().latestChangeSeq();

      expect(await store().revokeToken(token.tokenId, 5_000)).toBe(true);

      const revoked = { ...token, revokedAt: 5_000 };
      expect(await store().getTokenByHash(token.tokenHash)).toEqual(revoked);
      expect(await store().getTokenByHash(other.tokenHash)).toEqual(other);
      expect(await store().changesSince(seq)).toEqual([
        { seq: expect.any(Number), kind: "token", projectId: P2, keyId: token.tokenId },
      ]);

      expect(await store().revokeToken(token.tokenId, 9_000)).toBe(true);
      expect(await store().getTokenByHash(token.tokenHash)).toEqual(revoked);
    });

    it("answer false and record nothing when revoking an unknown token", async () => {
      const token = await create();
      const seq = await store().latestChangeSeq();
      expect(await store().revokeToken("tok-unknown", 5_000)).toBe(false);
      expect(await store().revokeToken(token.tokenHash, 5_000)).toBe(false);
      expect(await store().latestChangeSeq()).toBe(seq);
      expect(await store().getTokenByHash(token.tokenHash)).toEqual(token);
    });
  });
}
