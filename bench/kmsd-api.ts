/**
 * What a benchmark asks of a running kmsd before it loads it: a token made
 * with the CLI (as a user would), a key, a ciphertext.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { ROOT } from "./kmsd-process.js";

/** An admin token for the project, made with `kmsd tokens create`. */
export function projectToken(dataDir: string, rootKey: string, project: string): string {
  const output = execFileSync(
    process.execPath,
    [
      path.join(ROOT, "bin/kmsd.js"),
      "tokens",
      "create",
      "--project",
      project,
      "--role",
      "admin",
      "--ttl",
      "1d",
      "--data-dir",
      dataDir,
    ],
    { env: { ...process.env, KMSD_ROOT_KEY: rootKey } },
  );
  return (JSON.parse(output.toString()) as { token: string }).token;
}

async function post(url: string, token: string, body: object): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-auth-token": token },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`${url}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

export async function createKey(port: number, token: string, project: string): Promise<string> {
  const created = await post(`http://127.0.0.1:${port}/v1.0/${project}/kms/create-key`, token, {
    key_alias: `bench-${Date.now()}`,
  });
  return String((created.key_info as { key_id: string }).key_id);
}

export async function encryptOnce(
  port: number,
  token: string,
  project: string,
  keyId: string,
  plain: string,
): Promise<string> {
  const encrypted = await post(`http://127.0.0.1:${port}/v1.0/${project}/kms/encrypt-data`, token, {
    key_id: keyId,
    plain_text: plain,
  });
  return String(encrypted.cipher_text);
}
