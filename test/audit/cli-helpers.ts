import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { expect } from "vitest";
import { sign } from "../../src/auth/sdk-hmac-sha256.js";
import { BIN, type CliResult, kmsdEnv, outcome, ROOT, spawnKmsd } from "../support/cli.js";
import { TEST_ROOT_KEY, tempDataDir } from "../support/kmsd.js";

/**
 * Helpers for tests that drive kmsd as a user does: `node bin/kmsd.js`
 * (the compiled CLI, built by the global setup) against real data
 * directories.
 */

export { BIN, type CliResult, ROOT } from "../support/cli.js";
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The test runner's environment without any KMSD_* setting, plus the data dir, root key and `extra`. */
export function cliEnv(dataDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return kmsdEnv({ KMSD_DATA_DIR: dataDir, KMSD_ROOT_KEY: TEST_ROOT_KEY, ...extra });
}

/** Runs `node bin/kmsd.js ...args` to completion. */
export function runCli(
  args: readonly string[],
  dataDir: string,
  extra: Record<string, string> = {},
): Promise<CliResult> {
  return outcome(
    spawnKmsd(args, { KMSD_DATA_DIR: dataDir, KMSD_ROOT_KEY: TEST_ROOT_KEY, ...extra }),
  );
}

/** Runs a command that must succeed and print one JSON value; returns it. */
export async function cliJson<T = Record<string, unknown>>(
  args: readonly string[],
  dataDir: string,
): Promise<T> {
  const result = await runCli(args, dataDir);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

/** One line of `kmsd audit export` / `audit tail`. */
export interface AuditJson {
  readonly seq: number;
  readonly time: string;
  readonly request_id: string;
  readonly protocol: string;
  readonly project_id: string;
  readonly principal: string;
  readonly operation: string;
  readonly key_id: string;
  readonly sequence: string;
  readonly outcome: string;
  readonly latency_us: number;
  readonly context: Record<string, string>;
  readonly format: 1 | 2;
  readonly seal: string | null;
}

export const AUDIT_JSON_FIELDS = [
  "seq",
  "time",
  "request_id",
  "protocol",
  "project_id",
  "principal",
  "operation",
  "key_id",
  "sequence",
  "outcome",
  "latency_us",
  "context",
  "format",
  "seal",
].sort();

/** Parses JSON lines (every line must be one JSON object). */
export function jsonLines<T = AuditJson>(text: string): T[] {
  if (text === "") return [];
  expect(text.endsWith("\n"), "output ends with a newline").toBe(true);
  return text
    .slice(0, -1)
    .split("\n")
    .map((line) => JSON.parse(line) as T);
}

/** `kmsd audit export ...args` (must exit 0); returns its records and raw output. */
export async function exportAudit(
  dataDir: string,
  args: readonly string[] = [],
): Promise<{ records: AuditJson[]; text: string }> {
  const result = await runCli(["audit", "export", ...args], dataDir);
  expect(result.code, result.stderr).toBe(0);
  return { records: jsonLines(result.stdout), text: result.stdout };
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly verified: number;
  readonly head?: { seq: number; seal: string; time: string } | null;
  readonly broken_at?: number;
  readonly reason?: string;
  readonly last_good?: { seq: number; seal: string; time: string } | null;
}

/** `kmsd audit verify ...args`: its exit code, report and stderr. */
export async function verifyAudit(
  dataDir: string,
  args: readonly string[] = [],
): Promise<{ code: number | null; report: VerifyReport; stderr: string }> {
  const result = await runCli(["audit", "verify", ...args], dataDir);
  expect(result.stdout, result.stderr).not.toBe("");
  return {
    code: result.code,
    report: JSON.parse(result.stdout) as VerifyReport,
    stderr: result.stderr,
  };
}

/** The file bootstrap writes on a new data directory. */
export interface BootstrapFile {
  readonly access_key: string;
  readonly secret_key: string;
  readonly project_id: string;
  readonly role: string;
  readonly token: string;
  readonly token_id: string;
  readonly token_expires_at: string;
}

export const BOOTSTRAP_FILE = "bootstrap-credentials.json";

export async function readBootstrap(dataDir: string): Promise<BootstrapFile> {
  return JSON.parse(await readFile(path.join(dataDir, BOOTSTRAP_FILE), "utf8")) as BootstrapFile;
}

/** A `kmsd serve` child process. */
export interface ServeProcess {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Everything it wrote to stderr so far (its JSON log). */
  stderr(): string;
  /** Resolves when it exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns `node bin/kmsd.js serve --port 0` on the data directory and
 * resolves once it logs "kmsd serving" (with the port it got). The rate
 * limit is off unless `extra` sets it: the tests using this load one
 * project as fast as the machine goes, which the default limit would cut
 * on a fast machine.
 */
export async function spawnServe(
  dataDir: string,
  extra: Record<string, string> = {},
): Promise<ServeProcess> {
  const proc = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
    cwd: ROOT,
    env: cliEnv(dataDir, { KMSD_RATE_LIMIT_PER_SECOND: "0", ...extra }),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on("exit", (code, signal) => resolve({ code, signal }));
  });
  proc.stdout.resume();
  const port = await new Promise<number>((resolve, reject) => {
    proc.stderr.setEncoding("utf8").on("data", (text: string) => {
      stderr += text;
      for (const line of stderr.split("\n")) {
        if (!line.includes('"kmsd serving"')) continue;
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    void exited.then(({ code }) => reject(new Error(`kmsd serve exited (${code}): ${stderr}`)));
    setTimeout(
      () => reject(new Error(`no "kmsd serving" line in 15 s: ${stderr}`)),
      15_000,
    ).unref();
  });
  return { proc, port, url: `http://127.0.0.1:${port}`, stderr: () => stderr, exited };
}

/** Kills a serve process if it still runs (test cleanup). */
export function killIfRunning(serve: ServeProcess | undefined): void {
  if (serve !== undefined && serve.proc.exitCode === null && serve.proc.signalCode === null) {
    serve.proc.kill("SIGKILL");
  }
}

export interface Answer {
  readonly status: number;
  readonly json: unknown;
  readonly text: string;
  readonly requestId: string;
}

/** POST to kmsd with a JSON (or raw string) body; `headers` are sent as given. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  method = "POST",
): Promise<Answer> {
  const init: RequestInit = {
    method,
    headers: { "content-type": "application/json", ...headers },
  };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const response = await fetch(url, init);
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return {
    status: response.status,
    json,
    text,
    requestId: response.headers.get("x-request-id") ?? "",
  };
}

/** YYYYMMDDTHHMMSSZ, as X-Sdk-Date wants it. */
export function sdkDate(time = new Date()): string {
  return time
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}

/**
 * The headers of a request signed with an access key (Huawei's
 * SDK-HMAC-SHA256) for a POST of `body` to `url`: content-type, X-Sdk-Date
 * and Authorization. Host is signed too, with the value fetch will send.
 */
export function signedHeaders(
  credential: { readonly access_key: string; readonly secret_key: string },
  url: string,
  body: string,
  method = "POST",
): Record<string, string> {
  const target = new URL(url);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    host: target.host,
    "x-sdk-date": sdkDate(),
  };
  const names = Object.keys(headers).sort();
  const signature = sign(credential.secret_key, headers["x-sdk-date"] ?? "", {
    method,
    rawPath: target.pathname,
    rawQuery: target.search.slice(1),
    header: (name) => headers[name],
    signedHeaders: names,
    payloadHash: createHash("sha256").update(body).digest("hex"),
  });
  const { host: _host, ...sent } = headers;
  return {
    ...sent,
    authorization: `SDK-HMAC-SHA256 Access=${credential.access_key}, SignedHeaders=${names.join(";")}, Signature=${signature}`,
  };
}

/**
 * A copy of a data directory (the store file with its WAL and shared
 * memory, when present) to tamper with.
 */
export async function copyDataDir(from: string): Promise<string> {
  const to = await tempDataDir();
  for (const name of await readdir(from)) {
    if (name.startsWith("kmsd.db")) await copyFile(path.join(from, name), path.join(to, name));
  }
  return to;
}

/** The bytes of the store: the database file and its WAL, if any. */
export async function storeBytes(dataDir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const name of await readdir(dataDir)) {
    if (name === "kmsd.db" || name === "kmsd.db-wal") {
      parts.push(await readFile(path.join(dataDir, name)));
    }
  }
  return Buffer.concat(parts);
}
