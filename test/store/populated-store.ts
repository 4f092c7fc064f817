import { tmpdir } from "node:os";
import { expect } from "vitest";
import {
  type BootstrapFile,
  postJson,
  readBootstrap,
  runCli,
  type ServeProcess,
  signedHeaders,
  spawnServe,
} from "../audit/cli-helpers.js";
import { removeDir, tempDataDir } from "../support/kmsd.js";

/**
 * A store with a bit of everything in it, made by a real `kmsd serve` and
 * the CLI, and the checks that a kmsd served from a copy of it behaves as
 * the original did: old ciphertexts decrypt, old credentials authenticate,
 * revoked and disabled ones stay refused, keys keep their state and versions.
 */

export const PROJECT = "default";

/** Temporary data directories a test file makes, removed together in its afterAll. */
export class TempDirs {
  readonly #dirs: string[] = [];

  async create(): Promise<string> {
    const dir = await tempDataDir();
    this.#dirs.push(dir);
    return dir;
  }

  async removeAll(): Promise<void> {
    for (const dir of this.#dirs.splice(0)) await removeDir(dir);
  }
}

/** What `kmsd store copy` prints (the parts tests read). */
export interface CopyReport {
  readonly ok: boolean;
  readonly from: string;
  readonly to: string;
  readonly tables: Record<
    string,
    { source: { count: number }; target: { count: number }; match: boolean }
  >;
  readonly audit_chain: { ok: boolean; verified: number };
}

/**
 * Runs `kmsd store copy --from --to` (no data directory setting: the flags
 * name both stores) with the test root key, or the settings in `env`.
 */
export async function runStoreCopy(from: string, to: string, env: Record<string, string> = {}) {
  // The data directory setting is irrelevant here, but with a database URL
  // kmsd creates it: an existing directory keeps the test from adding one.
  const result = await runCli(["store", "copy", "--from", from, "--to", to], tmpdir(), env);
  const report = result.stdout === "" ? undefined : (JSON.parse(result.stdout) as CopyReport);
  return { ...result, report };
}

export interface Sealed {
  readonly keyId: string;
  readonly cipherText: string;
  readonly plainText: string;
  readonly context: Record<string, string>;
}

export interface PopulatedStore {
  readonly boot: BootstrapFile;
  readonly sealed: readonly Sealed[];
  /** Rotated once: version 2 is primary. */
  readonly rotatedKeyId: string;
  readonly disabledKeyId: string;
  readonly pendingKeyId: string;
  readonly revokedToken: string;
  readonly disabledCredential: { access_key: string; secret_key: string };
}

/** Runs a CLI command that must succeed and print JSON, with extra settings. */
async function cliJson<T>(
  args: readonly string[],
  dataDir: string,
  extra: Record<string, string>,
): Promise<T> {
  const result = await runCli(args, dataDir, extra);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

export function rest(serve: { url: string }, action: string): string {
  return `${serve.url}/v1.0/${PROJECT}/kms/${action}`;
}

/** POST as the token; must answer 200; returns the JSON body. */
export async function call(
  serve: { url: string },
  token: string,
  action: string,
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const answer = await postJson(rest(serve, action), body, { "x-auth-token": token });
  expect(answer.status, `${action}: ${answer.text}`).toBe(200);
  return answer.json as Record<string, unknown>;
}

export async function createKeyRest(
  serve: { url: string },
  token: string,
  alias: string,
): Promise<string> {
  const created = await call(serve, token, "create-key", { key_alias: alias });
  return String((created.key_info as { key_id: string }).key_id);
}

async function seal(
  serve: ServeProcess,
  token: string,
  keyId: string,
  plainText: string,
): Promise<Sealed> {
  const context = { purpose: `copy-${plainText}` };
  const answer = await call(serve, token, "encrypt-data", {
    key_id: keyId,
    plain_text: plainText,
    encryption_context: context,
  });
  return { keyId, cipherText: String(answer.cipher_text), plainText, context };
}

/** Fills the data directory through a kmsd serve it starts and stops (env: extra settings). */
export async function populateStore(
  dataDir: string,
  extra: Record<string, string> = {},
): Promise<PopulatedStore> {
  const serve = await spawnServe(dataDir, extra);
  try {
    const boot = await readBootstrap(dataDir);
    const token = boot.token;
    const rotatedKeyId = await createKeyRest(serve, token, "copy-rotated");
    const disabledKeyId = await createKeyRest(serve, token, "copy-disabled");
    const pendingKeyId = await createKeyRest(serve, token, "copy-pending");
    const sealed = [await seal(serve, token, rotatedKeyId, "before rotation")];
    await call(serve, token, "rotate-on-demand", { key_id: rotatedKeyId });
    sealed.push(await seal(serve, token, rotatedKeyId, "after rotation"));
    await call(serve, token, "disable-key", { key_id: disabledKeyId });
    await call(serve, token, "schedule-key-deletion", { key_id: pendingKeyId, pending_days: "7" });

    const revoked = await cliJson<{ token: string; token_id: string }>(
      ["tokens", "create", "--project", PROJECT, "--role", "user"],
      dataDir,
      extra,
    );
    await cliJson(["tokens", "revoke", "--token-id", revoked.token_id], dataDir, extra);
    const disabledCredential = await cliJson<{ access_key: string; secret_key: string }>(
      ["credentials", "create", "--project", PROJECT, "--role", "user"],
      dataDir,
      extra,
    );
    await cliJson(
      ["credentials", "disable", "--access-key", disabledCredential.access_key],
      dataDir,
      extra,
    );
    return {
      boot,
      sealed,
      rotatedKeyId,
      disabledKeyId,
      pendingKeyId,
      revokedToken: revoked.token,
      disabledCredential,
    };
  } finally {
    serve.proc.kill("SIGTERM");
    await serve.exited;
  }
}

/** What a kmsd serving a copy of the populated store must answer. */
export async function expectServesCopy(serve: ServeProcess, store: PopulatedStore): Promise<void> {
  const { boot } = store;
  // The old token decrypts what was encrypted before the copy, every version.
  for (const sealed of store.sealed) {
    const answer = await call(serve, boot.token, "decrypt-data", {
      cipher_text: sealed.cipherText,
      encryption_context: sealed.context,
    });
    expect(answer.plain_text).toBe(sealed.plainText);
    expect(answer.key_id).toBe(sealed.keyId);
  }
  // The old access key pair still signs.
  const url = rest(serve, "describe-key");
  const body = JSON.stringify({ key_id: store.rotatedKeyId });
  const signed = await postJson(url, body, signedHeaders(boot, url, body));
  expect(signed.status, signed.text).toBe(200);
  const rotation = await call(serve, boot.token, "get-key-rotation-status", {
    key_id: store.rotatedKeyId,
  });
  expect(rotation.number_of_rotations).toBe(1);
  const disabled = await call(serve, boot.token, "describe-key", { key_id: store.disabledKeyId });
  expect((disabled.key_info as { key_state: string }).key_state).toBe("3");
  const pending = await call(serve, boot.token, "describe-key", { key_id: store.pendingKeyId });
  expect((pending.key_info as { key_state: string }).key_state).toBe("4");
  // What was refused before the copy stays refused.
  const revoked = await postJson(
    rest(serve, "list-keys"),
    { limit: "10" },
    { "x-auth-token": store.revokedToken },
  );
  expect(revoked.status).toBe(401);
  const disabledBody = JSON.stringify({ limit: "10" });
  const listUrl = rest(serve, "list-keys");
  const refused = await postJson(
    listUrl,
    disabledBody,
    signedHeaders(store.disabledCredential, listUrl, disabledBody),
  );
  expect(refused.status).toBe(401);
}
