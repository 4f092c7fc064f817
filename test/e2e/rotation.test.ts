/**
 * Rotation over time and across processes: every version keeps decrypting
 * after rotations and a restart, the server runs due rotations itself, and
 * two servers sharing one store run each due rotation exactly once.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { KmsdConfig } from "../../src/config/settings.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { type RunningKmsd, removeDir, startKmsd, tempDataDir } from "../support/kmsd.js";
import { versionOf } from "./case-helpers.js";
import { createKeyRest, encrypt, expectOk, kms, str } from "./rest-helpers.js";

const PROJECT = "rotating";
const running: RunningKmsd[] = [];
const dirs: string[] = [];

afterAll(async () => {
  for (const kmsd of running) await kmsd.stop();
  for (const dir of dirs) await removeDir(dir);
});

async function start(overrides: Partial<KmsdConfig> = {}): Promise<RunningKmsd> {
  const kmsd = await startKmsd(overrides);
  running.push(kmsd);
  if (!dirs.includes(kmsd.config.dataDir)) dirs.push(kmsd.config.dataDir);
  return kmsd;
}

async function stop(kmsd: RunningKmsd): Promise<void> {
  await kmsd.stop();
  running.splice(running.indexOf(kmsd), 1);
}

/** Makes the keys' next automatic rotation due now, straight in the store (as time passing would). */
async function makeDue(dataDir: string, keyIds: readonly string[]): Promise<void> {
  const store = await openSqliteStore({ dataDir });
  try {
    for (const keyId of keyIds) {
      await store.updateKey(PROJECT, keyId, () => ({ nextRotationAt: Date.now() - 1 }));
    }
  } finally {
    await store.close();
  }
}

/** The versions the store holds for a key, 1, 2, 3, ... */
async function storedVersions(dataDir: string, keyId: string): Promise<number[]> {
  const store = await openSqliteStore({ dataDir });
  try {
    const versions: number[] = [];
    for (let v = 1; (await store.getKeyVersion(keyId, v)) !== undefined; v++) versions.push(v);
    return versions;
  } finally {
    await store.close();
  }
}

async function rotationStatus(kmsd: RunningKmsd, keyId: string) {
  return expectOk(await kms(kmsd, PROJECT, "get-key-rotation-status", { key_id: keyId })) as {
    key_rotation_enabled: boolean;
    rotation_interval: number;
    last_rotation_time: string;
    number_of_rotations: number;
  };
}

async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("rotation over time", () => {
  it("ciphertexts and data keys of every version decrypt after several rotations and a restart", async () => {
    const dataDir = await tempDataDir();
    const first = await start({ dataDir });
    const keyId = await createKeyRest(first, PROJECT, "long-lived");
    const made: {
      version: number;
      cipherText: string;
      dataKey: { plain: string; cipher: string };
    }[] = [];
    for (let version = 1; version <= 5; version++) {
      const cipherText = await encrypt(first, PROJECT, keyId, `secret of v${version}`, {
        encryption_context: { v: String(version) },
      });
      const created = expectOk(await kms(first, PROJECT, "create-datakey", { key_id: keyId }));
      made.push({
        version,
        cipherText,
        dataKey: { plain: str(created, "plain_text"), cipher: str(created, "cipher_text") },
      });
      expectOk(await kms(first, PROJECT, "rotate-on-demand", { key_id: keyId }));
    }
    expect(made.map((m) => versionOf(m.cipherText))).toEqual([1, 2, 3, 4, 5]);
    await stop(first);

    const second = await start({ dataDir });
    expect(versionOf(await encrypt(second, PROJECT, keyId, "after restart"))).toBe(6);
    for (const { version, cipherText, dataKey } of made) {
      const decrypted = await kms(second, PROJECT, "decrypt-data", {
        cipher_text: cipherText,
        encryption_context: { v: String(version) },
      });
      expect(str(expectOk(decrypted), "plain_text")).toBe(`secret of v${version}`);
      const opened = await kms(second, PROJECT, "decrypt-datakey", {
        key_id: keyId,
        cipher_text: dataKey.cipher,
        datakey_cipher_length: "32",
      });
      expect(str(expectOk(opened), "data_key")).toBe(dataKey.plain);
    }
    expect(await rotationStatus(second, keyId)).toMatchObject({ number_of_rotations: 5 });
    expect(await storedVersions(dataDir, keyId)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("the server rotates a key whose interval has passed, once, and schedules the next rotation", async () => {
    const kmsd = await start({ rotationSweepMs: 100 });
    const keyId = await createKeyRest(kmsd, PROJECT, "auto");
    const before = await encrypt(kmsd, PROJECT, keyId, "before");
    expectOk(await kms(kmsd, PROJECT, "enable-key-rotation", { key_id: keyId }));
    expectOk(
      await kms(kmsd, PROJECT, "update-key-rotation-interval", {
        key_id: keyId,
        rotation_interval: 30,
      }),
    );
    // Not due for 30 days: sweeps leave it alone.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect((await rotationStatus(kmsd, keyId)).number_of_rotations).toBe(0);

    const dueAt = Date.now();
    await makeDue(kmsd.config.dataDir, [keyId]);
    await waitFor(
      async () => (await rotationStatus(kmsd, keyId)).number_of_rotations > 0,
      "the sweep",
    );
    // Several more sweeps: the next rotation is 30 days away.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const status = await rotationStatus(kmsd, keyId);
    expect(status).toMatchObject({
      key_rotation_enabled: true,
      rotation_interval: 30,
      number_of_rotations: 1,
    });
    expect(Number(status.last_rotation_time)).toBeGreaterThanOrEqual(dueAt);
    expect(await storedVersions(kmsd.config.dataDir, keyId)).toEqual([1, 2]);

    expect(versionOf(await encrypt(kmsd, PROJECT, keyId, "after"))).toBe(2);
    const decrypted = await kms(kmsd, PROJECT, "decrypt-data", { cipher_text: before });
    expect(str(expectOk(decrypted), "plain_text")).toBe("before");
  });

  it("a disabled key is not rotated while due; it is once enabled again", async () => {
    const kmsd = await start({ rotationSweepMs: 100 });
    const keyId = await createKeyRest(kmsd, PROJECT, "sleeping");
    expectOk(await kms(kmsd, PROJECT, "enable-key-rotation", { key_id: keyId }));
    expectOk(await kms(kmsd, PROJECT, "disable-key", { key_id: keyId }));
    await makeDue(kmsd.config.dataDir, [keyId]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect((await rotationStatus(kmsd, keyId)).number_of_rotations).toBe(0);
    expectOk(await kms(kmsd, PROJECT, "enable-key", { key_id: keyId }));
    await waitFor(
      async () => (await rotationStatus(kmsd, keyId)).number_of_rotations === 1,
      "the sweep",
    );
  });

  it("two servers sharing a store rotate each due key exactly once", async () => {
    const dataDir = await tempDataDir();
    const a = await start({ dataDir, rotationSweepMs: 100, changePollMs: 50 });
    const b = await start({ dataDir, rotationSweepMs: 100, changePollMs: 50 });
    const keyIds: string[] = [];
    for (let i = 0; i < 40; i++) {
      const keyId = await createKeyRest(a, PROJECT, `shared-${i}`);
      expectOk(await kms(i % 2 === 0 ? a : b, PROJECT, "enable-key-rotation", { key_id: keyId }));
      keyIds.push(keyId);
    }
    await makeDue(dataDir, keyIds);
    await waitFor(async () => {
      for (const keyId of keyIds) {
        if ((await rotationStatus(a, keyId)).number_of_rotations === 0) return false;
      }
      return true;
    }, "both servers' sweeps");
    // Give both servers several more sweeps in which to rotate anything twice.
    await new Promise((resolve) => setTimeout(resolve, 500));

    for (const keyId of keyIds) {
      expect(await storedVersions(dataDir, keyId), keyId).toEqual([1, 2]);
      expect((await rotationStatus(b, keyId)).number_of_rotations, keyId).toBe(1);
    }
    // Each server encrypts under the new version, whichever of them rotated it.
    await waitFor(
      async () => versionOf(await encrypt(b, PROJECT, keyIds[0] ?? "", "b")) === 2,
      "b to see the rotation",
    );
    expect(versionOf(await encrypt(a, PROJECT, keyIds[0] ?? "", "a"))).toBe(2);
  });
});
