import { afterAll, describe, expect, it } from "vitest";
import {
  createKey,
  type RunningKmsd,
  removeDir,
  startKmsd,
  TEST_ROOT_KEY,
  tempDataDir,
} from "../support/kmsd.js";
import { createKeyRest, encrypt, expectError, expectOk, kms, str } from "./rest-helpers.js";

describe("restart on the same data directory and root key", () => {
  const running: RunningKmsd[] = [];
  const dirs: string[] = [];

  afterAll(async () => {
    for (const kmsd of running) await kmsd.stop();
    for (const dir of dirs) await removeDir(dir);
  });

  async function start(dataDir: string, rootKey = TEST_ROOT_KEY): Promise<RunningKmsd> {
    const kmsd = await startKmsd({ dataDir, rootKey });
    running.push(kmsd);
    return kmsd;
  }

  async function stop(kmsd: RunningKmsd): Promise<void> {
    await kmsd.stop();
    running.splice(running.indexOf(kmsd), 1);
  }

  it("decrypts ciphertexts made before the restart and still lists the old keys", async () => {
    const dataDir = await tempDataDir();
    dirs.push(dataDir);

    const first = await start(dataDir);
    const restKey = await createKeyRest(first, "prestart", "made-over-rest");
    const storeKey = await createKey(first.config, "prestart", "made-in-store");
    const disabledKey = await createKeyRest(first, "prestart", "disabled-before");
    const plain = await encrypt(first, "prestart", restKey, "12345678");
    const withContext = await encrypt(first, "prestart", storeKey, "héllo", {
      encryption_context: { tenant: "t1" },
    });
    const ofDisabled = await encrypt(first, "prestart", disabledKey, "later");
    expectOk(await kms(first, "prestart", "disable-key", { key_id: disabledKey }));
    const listedBefore = expectOk(await kms(first, "prestart", "list-keys", {}));
    await stop(first);

    // The old server is really gone.
    await expect(
      fetch(`${first.url}/v1.0/prestart/kms/list-keys`, { method: "POST" }),
    ).rejects.toThrow();

    const second = await start(dataDir);

    const decrypted = await kms(second, "prestart", "decrypt-data", { cipher_text: plain });
    expect(expectOk(decrypted)).toEqual({
      key_id: restKey,
      plain_text: "12345678",
      plain_text_base64: "MTIzNDU2Nzg=",
    });
    const decryptedContext = await kms(second, "prestart", "decrypt-data", {
      cipher_text: withContext,
      encryption_context: { tenant: "t1" },
    });
    expect(expectOk(decryptedContext)).toEqual({
      key_id: storeKey,
      plain_text: "héllo",
      plain_text_base64: Buffer.from("héllo").toString("base64"),
    });

    const listed = expectOk(await kms(second, "prestart", "list-keys", {})) as {
      keys: string[];
      total: number;
      key_details: { key_id: string; key_alias: string; key_state: string }[];
    };
    expect(listed).toEqual(listedBefore);
    expect(new Set(listed.keys)).toEqual(new Set([restKey, storeKey, disabledKey]));
    expect(listed.total).toBe(3);
    const states = Object.fromEntries(
      listed.key_details.map((info) => [info.key_alias, info.key_state]),
    );
    expect(states).toEqual({ "made-over-rest": "2", "made-in-store": "2", "disabled-before": "3" });

    // State survives too: the disabled key still refuses, until enabled.
    expectError(
      await kms(second, "prestart", "decrypt-data", { cipher_text: ofDisabled }),
      400,
      "KMS.0209",
    );
    expectOk(await kms(second, "prestart", "enable-key", { key_id: disabledKey }));
    const enabled = await kms(second, "prestart", "decrypt-data", { cipher_text: ofDisabled });
    expect(str(expectOk(enabled), "plain_text")).toBe("later");

    // An old alias is still taken, and new keys work after the restart.
    expectError(
      await kms(second, "prestart", "create-key", { key_alias: "made-over-rest" }),
      400,
      "KMS.0308",
    );
    const newKey = await createKeyRest(second, "prestart", "made-after");
    const fresh = await encrypt(second, "prestart", newKey, "new");
    const freshDecrypted = await kms(second, "prestart", "decrypt-data", {
      cipher_text: fresh,
    });
    expect(str(expectOk(freshDecrypted), "plain_text")).toBe("new");
  });

  it("refuses to start on the data directory with a different root key, harmlessly", async () => {
    const dataDir = await tempDataDir();
    dirs.push(dataDir);
    const first = await start(dataDir);
    const keyId = await createKeyRest(first, "prestart", "guarded");
    const cipherText = await encrypt(first, "prestart", keyId, "guarded");
    await stop(first);

    const otherRootKey = Buffer.alloc(32, 9).toString("base64");
    await expect(startKmsd({ dataDir, rootKey: otherRootKey })).rejects.toThrow(
      /not the one this store was created with/,
    );

    const again = await start(dataDir);
    const decrypted = await kms(again, "prestart", "decrypt-data", { cipher_text: cipherText });
    expect(str(expectOk(decrypted), "plain_text")).toBe("guarded");
  });
});
