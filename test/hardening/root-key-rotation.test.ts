import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  credentialSecretBinding,
  unwrapKeyMaterial,
  unwrapSecret,
} from "../../src/crypto/key-wrap.js";
import { type RootKey, rootKeyOf } from "../../src/keys/root-key.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { killIfRunning, runCli, type ServeProcess, spawnServe } from "../audit/cli-helpers.js";
import { spawnKmsd } from "../support/cli.js";
import { removeDir, tempDataDir } from "../support/kmsd.js";
import {
  decryptSigned,
  newRootKey,
  OLD,
  OLD_ROOT_KEY,
  rest,
  rootKeyEnv,
  type Sealed,
  type Seeded,
  seedUnderOldKey,
} from "./root-key-helpers.js";

/**
 * `kmsd root-key rotate` (docs/root-key.md) against real processes: while
 * a server holding both keys serves, and when killed at random moments.
 */

const dirs: string[] = [];
const servers: ServeProcess[] = [];

afterAll(async () => {
  for (const server of servers) killIfRunning(server);
  for (const dir of dirs) await removeDir(dir);
});

async function newDataDir(): Promise<string> {
  const dir = await tempDataDir();
  dirs.push(dir);
  return dir;
}

async function serve(dataDir: string, env: Record<string, string>): Promise<ServeProcess> {
  const server = await spawnServe(dataDir, env);
  servers.push(server);
  return server;
}

async function stop(server: ServeProcess): Promise<void> {
  server.proc.kill("SIGTERM");
  expect((await server.exited).code).toBe(0);
}

interface RootKeyStatusJson {
  store_root_key_id: string;
  previous_root_key_ids: string[];
  key_versions_not_under_primary: Record<string, number>;
  credentials_not_under_primary: Record<string, number>;
  audit_key_root_key_id: string | null;
  complete: boolean;
}

async function status(dataDir: string, env: Record<string, string>): Promise<RootKeyStatusJson> {
  const result = await runCli(["root-key", "status"], dataDir, env);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as RootKeyStatusJson;
}

/** Every old ciphertext decrypts to its plaintext, every old access key authenticates. */
async function expectEverythingReadable(
  server: ServeProcess,
  seeded: Seeded,
  sealed: readonly Sealed[],
): Promise<void> {
  for (const { cipherText, plainText } of sealed) {
    const decrypted = await rest(server, seeded, "decrypt-data", { cipher_text: cipherText });
    expect(decrypted.plain_text).toBe(plainText);
  }
  const first = sealed[0];
  if (first === undefined) throw new Error("nothing sealed");
  for (const credential of [seeded.bootstrap, ...seeded.credentials]) {
    expect(await decryptSigned(server, seeded.project, credential, first.cipherText)).toEqual({
      status: 200,
      plainText: first.plainText,
    });
  }
}

describe("root key rotation while serving", () => {
  it("rewraps everything while a server holding both keys serves without an error; afterwards the new key alone reads it all", async () => {
    const dataDir = await newDataDir();
    const seeded = await seedUnderOldKey(dataDir, { keys: 12, versions: 3, credentials: 3 });
    const fresh = newRootKey();
    const both = rootKeyEnv(fresh.base64, [OLD_ROOT_KEY]);

    // The procedure's rolling restart: the new key as primary, the old as previous.
    const server = await serve(dataDir, both);
    expect(await status(dataDir, both)).toMatchObject({
      store_root_key_id: OLD.id,
      key_versions_not_under_primary: { [OLD.id]: 36 },
      credentials_not_under_primary: { [OLD.id]: 4 },
      audit_key_root_key_id: OLD.id,
      complete: false,
    });

    // Load: decrypt old ciphertexts, encrypt under old keys and decrypt that,
    // authenticate with old access keys, create keys under the new root key.
    const failures: string[] = [];
    const madeDuring: Sealed[] = [];
    let rotating = true;
    let requests = 0;
    const worker = async (n: number) => {
      for (let i = 0; rotating; i++) {
        const pick = seeded.sealed[(n * 7 + i) % seeded.sealed.length];
        const keyId = seeded.keyIds[(n + i) % seeded.keyIds.length];
        if (pick === undefined || keyId === undefined) throw new Error("no seed");
        try {
          const decrypted = await rest(server, seeded, "decrypt-data", {
            cipher_text: pick.cipherText,
          });
          if (decrypted.plain_text !== pick.plainText) failures.push("wrong plaintext");
          const plainText = `during rotation ${n} ${i}`;
          const encrypted = await rest(server, seeded, "encrypt-data", {
            key_id: keyId,
            plain_text: plainText,
          });
          madeDuring.push({ cipherText: String(encrypted.cipher_text), plainText });
          const credential = seeded.credentials[i % seeded.credentials.length];
          if (credential !== undefined && i % 5 === 0) {
            const signed = await decryptSigned(server, seeded.project, credential, pick.cipherText);
            if (signed.status !== 200) failures.push(`signed decrypt ${signed.status}`);
          }
          if (i % 10 === 0) {
            await rest(server, seeded, "create-key", { key_alias: `during-${n}-${i}` });
          }
          requests += 3;
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    };
    const load = Promise.all([0, 1, 2].map(worker));
    // Small batches, so that the rotation and the load overlap for a while.
    const rotate = await runCli(["root-key", "rotate", "--batch-size", "2"], dataDir, both);
    rotating = false;
    await load;

    expect(rotate.code, rotate.stderr).toBe(0);
    expect(JSON.parse(rotate.stdout)).toMatchObject({
      root_key_id: fresh.id,
      previous_store_root_key_id: OLD.id,
      key_versions_rewrapped: 36,
      credentials_rewrapped: 4,
      audit_key_rewrapped: true,
      retired_root_key_ids: [OLD.id],
    });
    // Progress on stderr: counts only.
    expect(rotate.stderr).toMatch(/rewrapped \d+ key versions, \d+ credentials/);
    expect(rotate.stderr).not.toContain(OLD_ROOT_KEY);
    expect(rotate.stderr + rotate.stdout).not.toContain(fresh.base64);
    expect(failures).toEqual([]);
    // Unless the load ran alongside the rotation, the test proved nothing.
    expect(requests).toBeGreaterThan(30);
    await stop(server);
    expect(server.stderr()).not.toContain(fresh.base64);

    // The old key can go: the new key alone reads everything, old and new.
    const onlyNew = rootKeyEnv(fresh.base64);
    expect(await status(dataDir, onlyNew)).toEqual({
      store_root_key_id: fresh.id,
      primary_root_key_id: fresh.id,
      previous_root_key_ids: [],
      retired_root_key_ids: [OLD.id],
      key_versions_not_under_primary: {},
      credentials_not_under_primary: {},
      audit_key_root_key_id: fresh.id,
      counts_truncated: false,
      complete: true,
    });
    const after = await serve(dataDir, onlyNew);
    await expectEverythingReadable(after, seeded, [...seeded.sealed, ...madeDuring]);
    await stop(after);

    const verified = await runCli(["audit", "verify"], dataDir, onlyNew);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true });
    const exported = await runCli(["audit", "export"], dataDir, onlyNew);
    const rotations = exported.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((record) => record.operation === "RotateRootKey");
    expect(rotations).toMatchObject([{ protocol: "cli", key_id: fresh.id, outcome: "OK" }]);

    // The old key alone is refused, and so is the old key as primary again.
    for (const env of [rootKeyEnv(OLD_ROOT_KEY), rootKeyEnv(OLD_ROOT_KEY, [fresh.base64])]) {
      const refused = spawnKmsd(["serve", "--port", "0", "--data-dir", dataDir], env);
      const finished = await refused.finished;
      expect(finished.code, finished.stderr).toBe(2);
    }
  }, 120_000);
});

/** Every wrapped record, read straight from the store and unwrapped with whichever key it names. */
async function unwrapEverything(
  dataDir: string,
  keys: readonly RootKey[],
): Promise<{ rootKeyIds: string[]; secrets: Map<string, string>; storeRootKeyId: string }> {
  const store = await openSqliteStore({ dataDir });
  try {
    const byId = new Map(keys.map((key) => [key.id, key]));
    const secrets = new Map<string, string>();
    const rootKeyIds: string[] = [];
    const keyFor = (id: string) => {
      const key = byId.get(id);
      if (key === undefined) throw new Error(`a record names root key ${id}`);
      rootKeyIds.push(id);
      return key.bytes;
    };
    // No record is wrapped under "-": these list every record.
    for (const version of await store.listVersionsNotWrappedBy("-", 1_000_000)) {
      const binding = { keyId: version.keyId, version: version.version };
      const material = unwrapKeyMaterial(
        keyFor(version.rootKeyId),
        binding,
        version.wrappedMaterial,
      );
      secrets.set(`${version.keyId} v${version.version}`, material.toString("hex"));
    }
    for (const credential of await store.listCredentialsNotWrappedBy("-", 1_000_000)) {
      const secret = unwrapSecret(
        keyFor(credential.rootKeyId),
        credentialSecretBinding(credential.accessKey),
        credential.wrappedSecret,
      );
      secrets.set(credential.accessKey, secret.toString("hex"));
    }
    const storeRootKeyId = (await store.getMeta("root_key_id")) ?? "";
    return { rootKeyIds, secrets, storeRootKeyId };
  } finally {
    await store.close();
  }
}

describe("previous root key settings", () => {
  it("take a file of keys (comments and blank lines allowed) besides the environment, and name a malformed key", async () => {
    const dataDir = await newDataDir();
    const created = await runCli(["keys", "create", "--project", "p", "--alias", "a"], dataDir);
    expect(created.code, created.stderr).toBe(0);
    const fresh = newRootKey();
    const other = newRootKey();
    const file = path.join(dataDir, "previous-root-keys");
    await writeFile(file, `# retired 2026-11-27\n${OLD_ROOT_KEY}\n\n${other.base64}\n`, {
      mode: 0o600,
    });

    // The old key given twice and the primary given as previous count once.
    const fromFile = await status(dataDir, {
      KMSD_ROOT_KEY: fresh.base64,
      KMSD_PREVIOUS_ROOT_KEYS: `${OLD_ROOT_KEY},${fresh.base64}`,
      KMSD_PREVIOUS_ROOT_KEYS_FILE: file,
    });
    expect(fromFile.previous_root_key_ids).toEqual([OLD.id, other.id]);
    expect(fromFile).toMatchObject({
      key_versions_not_under_primary: { [OLD.id]: 1 },
      complete: false,
    });

    const malformed = await runCli(["root-key", "status"], dataDir, {
      KMSD_ROOT_KEY: fresh.base64,
      KMSD_PREVIOUS_ROOT_KEYS: `${OLD_ROOT_KEY},not-a-key`,
    });
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain("KMSD_PREVIOUS_ROOT_KEYS (key 2)");
    expect(malformed.stderr).not.toContain(OLD_ROOT_KEY);

    // Without the old key, the store (still under it) refuses the new one alone.
    const alone = await runCli(["root-key", "status"], dataDir, rootKeyEnv(fresh.base64));
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain(OLD.id);
  }, 60_000);
});

describe("root key rotation and crashes", () => {
  it("killed (SIGKILL) at random moments, every record stays readable with {old, new}; rerun, it finishes", async () => {
    const dataDir = await newDataDir();
    const seeded = await seedUnderOldKey(dataDir, { keys: 40, versions: 3, credentials: 4 });
    const fresh = newRootKey();
    const freshKey = rootKeyOf(fresh.base64, "the new root key");
    const both = rootKeyEnv(fresh.base64, [OLD_ROOT_KEY]);
    const before = await unwrapEverything(dataDir, [OLD]);
    expect(before.secrets.size).toBe(40 * 3 + 5);

    let killedMidway = 0;
    for (let cycle = 0; cycle < 5; cycle++) {
      const rotate = spawnKmsd(
        ["root-key", "rotate", "--batch-size", "1", "--data-dir", dataDir],
        both,
      );
      // Wait for a random number of batches, then a random moment more. Seen
      // as each line arrives, not polled: on a fast machine tens of batches
      // go by in a few milliseconds, and the rotation would finish within
      // three cycles, leaving too few kills that land midway.
      const batches = 1 + Math.floor(Math.random() * 12);
      await new Promise<void>((resolve) => {
        const check = () => {
          const done = rotate.stderr().split("rewrapped").length - 1;
          if (done < batches && rotate.child.exitCode === null) return;
          rotate.child.stderr?.off("data", check);
          rotate.child.off("exit", check);
          resolve();
        };
        rotate.child.stderr?.on("data", check);
        rotate.child.on("exit", check);
      });
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
      rotate.child.kill("SIGKILL");
      const finished = await rotate.finished;

      const now = await unwrapEverything(dataDir, [OLD, freshKey]);
      // Same secrets, each under one of the two keys; the store names one of them.
      expect(now.secrets).toEqual(before.secrets);
      expect([OLD.id, fresh.id]).toContain(now.storeRootKeyId);
      if (finished.signal === "SIGKILL" && now.rootKeyIds.includes(OLD.id)) killedMidway++;
    }
    // Unless some kills landed mid-rotation, the test proved nothing.
    expect(killedMidway).toBeGreaterThanOrEqual(2);

    const rerun = await runCli(["root-key", "rotate"], dataDir, both);
    expect(rerun.code, rerun.stderr).toBe(0);
    const done = await unwrapEverything(dataDir, [freshKey]);
    expect(done.secrets).toEqual(before.secrets);
    expect(done.storeRootKeyId).toBe(fresh.id);
    expect(await status(dataDir, rootKeyEnv(fresh.base64))).toMatchObject({ complete: true });

    const after = await serve(dataDir, rootKeyEnv(fresh.base64));
    await expectEverythingReadable(after, seeded, seeded.sealed);
    await stop(after);
    const verified = await runCli(["audit", "verify"], dataDir, rootKeyEnv(fresh.base64));
    expect(verified.code, verified.stderr).toBe(0);
  }, 120_000);
});
