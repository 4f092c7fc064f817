import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey, type RunningKmsd, startKmsd, testToken } from "../support/kmsd.js";

describe("seed request over REST", () => {
  let kmsd: RunningKmsd;
  let keyId: string;
  let token: string;

  beforeAll(async () => {
    kmsd = await startKmsd();
    keyId = await createKey(kmsd.config, "p1", "seed");
    token = await testToken(kmsd.config, "p1");
  });
  afterAll(() => kmsd.stop());

  it("encrypts 12345678 and decrypts it back", async () => {
    const encrypted = await fetch(`${kmsd.url}/v1.0/p1/kms/encrypt-data`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-auth-token": token },
      body: JSON.stringify({ key_id: keyId, plain_text: "12345678" }),
    });
    expect(encrypted.status).toBe(200);
    expect(encrypted.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const { key_id, cipher_text } = (await encrypted.json()) as Record<string, string>;
    expect(key_id).toBe(keyId);
    const decrypted = await fetch(`${kmsd.url}/v1.0/p1/kms/decrypt-data`, {
      method: "POST",
      headers: { "x-auth-token": token },
      body: JSON.stringify({ cipher_text }),
    });
    expect(await decrypted.json()).toEqual({
      key_id: keyId,
      plain_text: "12345678",
      plain_text_base64: Buffer.from("12345678").toString("base64"),
    });
  });
});
