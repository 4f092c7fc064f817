import { randomBytes } from "node:crypto";
import { expect } from "vitest";
import { rootKeyOf } from "../../src/keys/root-key.js";
import {
  type BootstrapFile,
  cliJson,
  postJson,
  readBootstrap,
  type ServeProcess,
  signedHeaders,
  spawnServe,
} from "../audit/cli-helpers.js";
import { TEST_ROOT_KEY } from "../support/kmsd.js";

/**
 * A store made under one root key (the tests' usual TEST_ROOT_KEY), to be
 * rotated to another: keys with several versions, a ciphertext made under
 * each version, access keys, and the audit trail of it all.
 */

export const OLD_ROOT_KEY = TEST_ROOT_KEY;
export const OLD = rootKeyOf(OLD_ROOT_KEY, "the old test root key");

/** A fresh root key, its base64 and its fingerprint. */
export function newRootKey(): { base64: string; id: string } {
  const base64 = randomBytes(32).toString("base64");
  return { base64, id: rootKeyOf(base64, "a new test root key").id };
}

/** The settings of a process given `primary` as root key and `previous` as previous ones. */
export function rootKeyEnv(
  primary: string,
  previous: readonly string[] = [],
): Record<string, string> {
  return {
    KMSD_ROOT_KEY: primary,
    ...(previous.length > 0 ? { KMSD_PREVIOUS_ROOT_KEYS: previous.join(",") } : {}),
  };
}

export interface Sealed {
  readonly cipherText: string;
  readonly plainText: string;
}

export interface Seeded {
  readonly bootstrap: BootstrapFile;
  readonly project: string;
  readonly keyIds: readonly string[];
  /** One ciphertext per key version. */
  readonly sealed: readonly Sealed[];
  /** Access keys made with the CLI (user role), besides the bootstrap one. */
  readonly credentials: readonly { access_key: string; secret_key: string }[];
}

/** A REST call to the project with the bootstrap token; must answer 200. */
export async function rest(
  server: ServeProcess,
  seeded: Pick<Seeded, "bootstrap" | "project">,
  operation: string,
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const answer = await postJson(`${server.url}/v1.0/${seeded.project}/kms/${operation}`, body, {
    "x-auth-token": seeded.bootstrap.token,
  });
  expect(answer.status, `${operation}: ${answer.text}`).toBe(200);
  return answer.json as Record<string, unknown>;
}

/** Decrypts with an access key's signature (not the token): proves the secret key unwraps. */
export async function decryptSigned(
  server: ServeProcess,
  project: string,
  credential: { access_key: string; secret_key: string },
  cipherText: string,
): Promise<{ status: number; plainText: unknown }> {
  const url = `${server.url}/v1.0/${project}/kms/decrypt-data`;
  const body = JSON.stringify({ cipher_text: cipherText });
  const response = await fetch(url, {
    method: "POST",
    headers: signedHeaders(credential, url, body),
    body,
  });
  const json = (await response.json()) as { plain_text?: string };
  return { status: response.status, plainText: json.plain_text };
}

/**
 * Fills a new data directory under the old root key through a real server:
 * `keys` keys with `versions` versions each (rotated on demand), one
 * ciphertext per version, and `credentials` access keys from the CLI.
 */
export async function seedUnderOldKey(
  dataDir: string,
  counts: { keys: number; versions: number; credentials: number },
): Promise<Seeded> {
  const server = await spawnServe(dataDir, rootKeyEnv(OLD_ROOT_KEY));
  try {
    const bootstrap = await readBootstrap(dataDir);
    const seeded = { bootstrap, project: bootstrap.project_id };
    const keyIds: string[] = [];
    const sealed: Sealed[] = [];
    for (let k = 0; k < counts.keys; k++) {
      const created = await rest(server, seeded, "create-key", { key_alias: `old-${k}` });
      const keyId = (created.key_info as { key_id: string }).key_id;
      keyIds.push(keyId);
      for (let v = 1; v <= counts.versions; v++) {
        if (v > 1) await rest(server, seeded, "rotate-on-demand", { key_id: keyId });
        const plainText = `key ${k} version ${v}`;
        const encrypted = await rest(server, seeded, "encrypt-data", {
          key_id: keyId,
          plain_text: plainText,
        });
        sealed.push({ cipherText: String(encrypted.cipher_text), plainText });
      }
    }
    const credentials = [];
    for (let c = 0; c < counts.credentials; c++) {
      credentials.push(
        await cliJson<{ access_key: string; secret_key: string }>(
          ["credentials", "create", "--project", seeded.project, "--role", "user"],
          dataDir,
        ),
      );
    }
    return { ...seeded, keyIds, sealed, credentials };
  } finally {
    server.proc.kill("SIGTERM");
    await server.exited;
  }
}
