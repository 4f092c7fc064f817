import { expect } from "vitest";
import { readCiphertextHeader } from "../../src/crypto/ciphertext.js";
import {
  type Answer,
  killIfRunning,
  postJson,
  runCli,
  type ServeProcess,
  spawnServe,
} from "../audit/cli-helpers.js";
import { PROJECT, rest } from "../store/populated-store.js";
import { removeDir, tempDataDir } from "../support/kmsd.js";
import { withAdminClient } from "../support/postgres.js";

/**
 * Several real `kmsd serve` processes on one PostgreSQL schema, as a
 * deployment behind a load balancer runs them, and what tests measure
 * across them.
 */

export interface Instance extends ServeProcess {
  readonly dataDir: string;
}

/** Every instance and data directory a test file started, for its afterAll. */
export class Cluster {
  readonly #instances: Instance[] = [];
  readonly #dirs: string[] = [];

  constructor(readonly databaseUrl: string) {}

  /** The settings every process of this cluster runs with (besides its data directory). */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return { KMSD_DATABASE_URL: this.databaseUrl, KMSD_WORKERS: "1", ...extra };
  }

  /** A data directory of its own (bootstrap file, nothing else: the store is the database). */
  async dataDir(): Promise<string> {
    const dir = await tempDataDir();
    this.#dirs.push(dir);
    return dir;
  }

  async start(extra: Record<string, string> = {}): Promise<Instance> {
    const dataDir = await this.dataDir();
    const instance = { ...(await spawnServe(dataDir, this.env(extra))), dataDir };
    this.#instances.push(instance);
    return instance;
  }

  /** `kmsd ...` against the cluster's database; must succeed; its JSON output. */
  async cli<T = Record<string, unknown>>(args: readonly string[]): Promise<T> {
    const result = await runCli(args, await this.dataDir(), this.env());
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as T;
  }

  async adminToken(): Promise<string> {
    const issued = await this.cli<{ token: string }>([
      "tokens",
      "create",
      "--project",
      PROJECT,
      "--role",
      "admin",
    ]);
    return issued.token;
  }

  async stop(instance: Instance): Promise<void> {
    if (instance.proc.exitCode === null && instance.proc.signalCode === null) {
      instance.proc.kill("SIGTERM");
      await instance.exited;
    }
  }

  async close(): Promise<void> {
    for (const instance of this.#instances) killIfRunning(instance);
    await Promise.all(this.#instances.map((i) => i.exited));
    for (const dir of this.#dirs) await removeDir(dir);
  }
}

/**
 * Runs SQL on the schema's tables straight on the server (not through
 * kmsd, nor a relay a test may have stopped): to make dates pass, or to
 * look at what kmsd stored.
 */
export function schemaSql(schema: string) {
  return <R extends Record<string, unknown>>(text: string, values: unknown[] = []) =>
    withAdminClient(async (client) => {
      await client.query(`SET search_path TO ${schema}`);
      return (await client.query<R>(text, values)).rows;
    });
}

/** POST a Huawei REST action with a token; whatever it answers. */
export function post(
  instance: { url: string },
  token: string,
  action: string,
  body: Record<string, unknown>,
): Promise<Answer> {
  return postJson(rest(instance, action), body, { "x-auth-token": token });
}

export function errorCode(answer: Answer): string | undefined {
  return (answer.json as { error?: { error_code?: string } } | undefined)?.error?.error_code;
}

/** The key version a base64 ciphertext was made with. */
export function cipherVersion(cipherText: string): number {
  return readCiphertextHeader(Buffer.from(cipherText, "base64")).keyVersion;
}

/**
 * Milliseconds from now until `check` holds, asking as fast as it answers;
 * fails after `limitMs`.
 */
export async function msUntil(
  check: () => Promise<boolean>,
  limitMs = 5000,
  what = "the condition",
): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return performance.now() - started;
    if (performance.now() - started > limitMs) {
      throw new Error(`${what} did not hold within ${limitMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
