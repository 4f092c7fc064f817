/**
 * What the benchmarks send and the set-up they do before measuring: request
 * targets for each protocol, a token made with the CLI, a key.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { envelope } from "../src/transport/rpc/envelope.js";
import { ROOT } from "./kmsd-process.js";
import { luaString, type Target } from "./load.js";

export const PROJECT = "bench";

export function grpcTarget(
  port: number,
  method: string,
  message: Uint8Array,
  headers: Record<string, string>,
): Target {
  return {
    url: `http://127.0.0.1:${port}/kms.v1.KmsService/${method}`,
    headers: { "content-type": "application/grpc", te: "trailers", ...headers },
    body: envelope(message),
  };
}

export function connectTarget(port: number, method: string, body: object, token: string): Target {
  return {
    url: `http://127.0.0.1:${port}/kms.v1.KmsService/${method}`,
    headers: { "content-type": "application/json", "x-auth-token": token },
    body: JSON.stringify(body),
  };
}

export function restTarget(port: number, operation: string, body: object, token: string): Target {
  return {
    url: `http://127.0.0.1:${port}/v1.0/${PROJECT}/kms/${operation}`,
    headers: { "content-type": "application/json", "x-auth-token": token },
    body: JSON.stringify(body),
  };
}

/** An admin token for the benchmark's project, made with the CLI as a user would. */
export async function projectToken(
  dataDir: string,
  rootKey: string,
  settings: readonly string[] = [],
  /** The checkout whose CLI makes it: the one serving `dataDir`, whose schema it must not migrate. */
  root: string = ROOT,
): Promise<string> {
  const output = execFileSync(
    process.execPath,
    [
      path.join(root, "bin/kmsd.js"),
      "tokens",
      "create",
      "--project",
      PROJECT,
      "--role",
      "admin",
      "--ttl",
      "1d",
      "--data-dir",
      dataDir,
      ...settings,
    ],
    { env: { ...process.env, KMSD_ROOT_KEY: rootKey } },
  );
  return (JSON.parse(output.toString()) as { token: string }).token;
}

export async function post(
  url: string,
  token: string,
  body: object,
): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-auth-token": token },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`${url}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

export async function createKey(port: number, token: string): Promise<string> {
  const created = await post(`http://127.0.0.1:${port}/v1.0/${PROJECT}/kms/create-key`, token, {
    key_alias: `bench-${Date.now()}`,
  });
  return String((created.key_info as { key_id: string }).key_id);
}

export async function encryptOnce(
  port: number,
  token: string,
  keyId: string,
  plain: string,
): Promise<string> {
  const encrypted = await post(`http://127.0.0.1:${port}/v1.0/${PROJECT}/kms/encrypt-data`, token, {
    key_id: keyId,
    plain_text: plain,
  });
  return String(encrypted.cipher_text);
}

/** A wrk script: REST EncryptData, each request under a key drawn at random from `keyIds`. */
export function spreadScript(keyIds: readonly string[], token: string): string {
  return [
    `local keys = {${keyIds.map((id) => `"${id}"`).join(",")}}`,
    `local headers = { ["Content-Type"] = "application/json", ["X-Auth-Token"] = ${luaString(token)} }`,
    "math.randomseed(os.time())",
    "request = function()",
    '  local body = \'{"key_id":"\' .. keys[math.random(#keys)] .. \'","plain_text":"xxxxxxxx"}\'',
    `  return wrk.format("POST", nil, headers, body)`,
    "end",
  ].join("\n");
}
