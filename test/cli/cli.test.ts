import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tokenFor } from "../e2e/rest-helpers.js";
import {
  type RunningKmsd,
  removeDir,
  startKmsd,
  TEST_ROOT_KEY,
  tempDataDir,
} from "../support/kmsd.js";

/** The repository root: the CLI runs from there, as a user's checkout would. */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = path.join(ROOT, "bin", "kmsd.js");
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const OTHER_ROOT_KEY = Buffer.alloc(32, 42).toString("base64");

const KEY_INFO_FIELDS = [
  "key_id",
  "domain_id",
  "key_alias",
  "realm",
  "key_spec",
  "key_usage",
  "key_description",
  "creation_date",
  "scheduled_deletion_date",
  "key_state",
  "default_key_flag",
  "key_type",
  "expiration_time",
  "origin",
  "key_rotation_enabled",
  "sys_enterprise_project_id",
  "keystore_id",
].sort();

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface CliEnv {
  readonly dataDir: string;
  /** The KMSD_ROOT_KEY to set; null for none at all. */
  readonly rootKey: string | null;
}

/** The test runner's environment without any KMSD_* setting, plus the given ones. */
function cliEnv({ dataDir, rootKey }: CliEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("KMSD_")) env[name] = value;
  }
  env.KMSD_DATA_DIR = dataDir;
  if (rootKey !== null) env.KMSD_ROOT_KEY = rootKey;
  return env;
}

/** Runs `node bin/kmsd.js ...args` to completion. */
function kmsd(args: readonly string[], env: CliEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: cliEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding("utf8").on("data", (text: string) => {
      stderr += text;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs a command that must succeed and print JSON only; returns the JSON. */
async function kmsdJson(args: readonly string[], env: CliEnv): Promise<Record<string, unknown>> {
  const result = await kmsd(args, env);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout.endsWith("}\n")).toBe(true);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

async function sha256(file: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function post(
  url: string,
  body: unknown,
  token: string,
): Promise<{ status: number; json: unknown }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-auth-token": token },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

const dirs: string[] = [];
async function newDataDir(): Promise<string> {
  const dir = await tempDataDir();
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await removeDir(dir);
});

describe("kmsd keys", () => {
  let env: CliEnv;

  beforeAll(async () => {
    env = { dataDir: await newDataDir(), rootKey: TEST_ROOT_KEY };
  });

  it("keys create prints the new key with every describe-key field", async () => {
    const before = Date.now();
    const result = await kmsd(
      ["keys", "create", "--project", "pcli", "--alias", "app/main", "--description", "main key"],
      env,
    );
    const after = Date.now();
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe("");
    const key = JSON.parse(result.stdout) as Record<string, string>;
    expect(Object.keys(key).sort()).toEqual(KEY_INFO_FIELDS);
    expect(key).toEqual({
      key_id: expect.stringMatching(UUID),
      domain_id: "pcli",
      key_alias: "app/main",
      realm: "kmsd-local",
      key_spec: "AES_256",
      key_usage: "ENCRYPT_DECRYPT",
      key_description: "main key",
      creation_date: expect.stringMatching(/^[0-9]{13}$/),
      scheduled_deletion_date: "",
      key_state: "2",
      default_key_flag: "0",
      key_type: "1",
      expiration_time: "",
      origin: "kms",
      key_rotation_enabled: "false",
      sys_enterprise_project_id: "0",
      keystore_id: "0",
    });
    expect(Number(key.creation_date)).toBeGreaterThanOrEqual(before);
    expect(Number(key.creation_date)).toBeLessThanOrEqual(after);

    // describe prints the same key.
    const described = await kmsdJson(
      ["keys", "describe", "--project", "pcli", "--key-id", key.key_id ?? ""],
      env,
    );
    expect(described).toEqual(key);
  });

  it("keys create without --description gives an empty description", async () => {
    const key = await kmsdJson(["keys", "create", "--project", "pcli", "--alias", "plain"], env);
    expect(key).toMatchObject({ key_alias: "plain", key_description: "", key_state: "2" });
  });

  it("keys list prints a page as list-keys answers it, with --limit, --marker and --state", async () => {
    const ids: string[] = [];
    for (const alias of ["l0", "l1", "l2"]) {
      const key = await kmsdJson(
        ["keys", "create", "--project", "plistcli", "--alias", alias],
        env,
      );
      ids.push(String(key.key_id));
    }
    const all = await kmsdJson(["keys", "list", "--project", "plistcli"], env);
    expect(all).toEqual({
      keys: expect.any(Array),
      key_details: expect.any(Array),
      next_marker: "",
      truncated: "false",
      total: 3,
    });
    const keys = all.keys as string[];
    expect(new Set(keys)).toEqual(new Set(ids));
    expect((all.key_details as { key_id: string }[]).map((info) => info.key_id)).toEqual(keys);

    const first = await kmsdJson(["keys", "list", "--project", "plistcli", "--limit", "2"], env);
    expect(first).toMatchObject({ keys: keys.slice(0, 2), truncated: "true", total: 3 });
    const marker = String(first.next_marker);
    expect(marker).not.toBe("");
    const second = await kmsdJson(
      ["keys", "list", "--project", "plistcli", "--limit", "2", "--marker", marker],
      env,
    );
    expect(second).toMatchObject({
      keys: keys.slice(2),
      truncated: "false",
      next_marker: "",
      total: 3,
    });

    await kmsdJson(["keys", "disable", "--project", "plistcli", "--key-id", ids[1] ?? ""], env);
    const disabled = await kmsdJson(["keys", "list", "--project", "plistcli", "--state", "3"], env);
    expect(disabled).toMatchObject({ keys: [ids[1]], total: 1 });
  });

  it("keys disable, enable, schedule-deletion and cancel-deletion print Huawei's answers", async () => {
    const key = await kmsdJson(["keys", "create", "--project", "pcli", "--alias", "states"], env);
    const id = String(key.key_id);
    const target = ["--project", "pcli", "--key-id", id];
    const state = async () =>
      (await kmsdJson(["keys", "describe", ...target], env)).key_state as string;

    expect(await kmsdJson(["keys", "disable", ...target], env)).toEqual({
      key_info: { key_id: id, key_state: "3" },
    });
    expect(await state()).toBe("3");
    expect(await kmsdJson(["keys", "enable", ...target], env)).toEqual({
      key_info: { key_id: id, key_state: "2" },
    });
    expect(await state()).toBe("2");
    expect(await kmsdJson(["keys", "schedule-deletion", ...target, "--days", "7"], env)).toEqual({
      key_id: id,
      key_state: "4",
    });
    const described = await kmsdJson(["keys", "describe", ...target], env);
    expect(described.key_state).toBe("4");
    expect(described.scheduled_deletion_date).toMatch(/^[0-9]{13}$/);
    expect(await kmsdJson(["keys", "cancel-deletion", ...target], env)).toEqual({
      key_id: id,
      key_state: "3",
    });
    expect(await kmsdJson(["keys", "describe", ...target], env)).toMatchObject({
      key_state: "3",
      scheduled_deletion_date: "",
    });
  });

  it.each([
    ["a missing --project", ["keys", "create", "--alias", "a"], /--project is required/],
    ["a missing --alias", ["keys", "create", "--project", "p"], /--alias is required/],
    [
      "a missing --days",
      [
        "keys",
        "schedule-deletion",
        "--project",
        "p",
        "--key-id",
        "0d0466b0-e727-4d9c-b35d-f84bb474a37f",
      ],
      /--days is required/,
    ],
    [
      "an unknown flag",
      ["keys", "create", "--project", "p", "--alias", "a", "--colour", "red"],
      /colour/,
    ],
    ["a flag without its value", ["keys", "describe", "--project", "p", "--key-id"], /key-id/],
    ["an unknown keys command", ["keys", "frobnicate", "--project", "p"], /unknown command/],
    ["an unknown command", ["frobnicate"], /unknown command/],
    ["an invalid setting", ["keys", "list", "--project", "p", "--log-level", "loud"], /log-level/],
  ])("%s is a usage error: exit 2 with a message", async (_name, args, message) => {
    const result = await kmsd(args, env);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/Usage: kmsd/);
  });

  it.each([
    [
      "an alias already used",
      ["keys", "create", "--project", "pcli", "--alias", "app/main"],
      "KMS.0308",
    ],
    [
      "an unknown key",
      ["keys", "describe", "--project", "pcli", "--key-id", "0d0466b0-e727-4d9c-b35d-f84bb474a37f"],
      "KMS.0207",
    ],
    ["an invalid key id", ["keys", "enable", "--project", "pcli", "--key-id", "nope"], "KMS.0205"],
    ["an invalid project id", ["keys", "list", "--project", "p.1"], "KMS.0201"],
    ["an invalid limit", ["keys", "list", "--project", "pcli", "--limit", "0"], "KMS.0308"],
  ])("%s is an RPC error: exit 1 with the Huawei code", async (_name, args, code) => {
    const result = await kmsd(args, env);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(code);
  });

  it("the alias clash left the first key alone", async () => {
    const listed = await kmsdJson(["keys", "list", "--project", "pcli"], env);
    const aliases = (listed.key_details as { key_alias: string }[]).map((info) => info.key_alias);
    expect(aliases.filter((alias) => alias === "app/main")).toHaveLength(1);
  });

  it("--help, no arguments and keys create --help print help and exit 0", async () => {
    for (const args of [["--help"], [], ["help"]]) {
      const result = await kmsd(args, env);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain("Usage: kmsd <command>");
      for (const command of ["serve", "keys create", "keys list", "keys schedule-deletion"]) {
        expect(result.stdout).toContain(command);
      }
    }
    const create = await kmsd(["keys", "create", "--help"], env);
    expect(create.code).toBe(0);
    expect(create.stdout).toContain("Usage: kmsd keys create");
    for (const flag of ["--project", "--alias", "--description", "--data-dir", "KMSD_ROOT_KEY"]) {
      expect(create.stdout).toContain(flag);
    }
  });
});

describe("root key handling", () => {
  it("creates a 0600 development key on a new data dir, warns on stderr only, then guards the store", async () => {
    const dataDir = await newDataDir();
    const noKey: CliEnv = { dataDir, rootKey: null };
    const devKeyFile = path.join(dataDir, "root-key.dev");

    const created = await kmsd(["keys", "create", "--project", "pdev", "--alias", "dev"], noKey);
    expect(created.code, created.stderr).toBe(0);
    // stdout is pure JSON, the warning went to stderr.
    const key = JSON.parse(created.stdout) as Record<string, string>;
    expect(key.key_alias).toBe("dev");
    expect(created.stderr).toContain(devKeyFile);
    expect(created.stderr).toMatch(/KMSD_ROOT_KEY/);
    const mode = (await stat(devKeyFile)).mode & 0o777;
    expect(mode.toString(8)).toBe("600");
    const devKey = (await readFile(devKeyFile, "utf8")).trim();
    expect(Buffer.from(devKey, "base64")).toHaveLength(32);

    // Later commands use the development key silently.
    const listed = await kmsd(["keys", "list", "--project", "pdev"], noKey);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stderr).not.toContain("root-key.dev");
    expect((JSON.parse(listed.stdout) as { keys: string[] }).keys).toEqual([key.key_id]);
    // So does the same key given in KMSD_ROOT_KEY.
    const sameKey = await kmsdJson(["keys", "list", "--project", "pdev"], {
      dataDir,
      rootKey: devKey,
    });
    expect(sameKey.keys).toEqual([key.key_id]);

    // A different root key is refused, and nothing in the data dir changes.
    const dbFile = path.join(dataDir, "kmsd.db");
    const entriesBefore = (await readdir(dataDir)).sort();
    const dbBefore = await sha256(dbFile);
    const devKeyBefore = await sha256(devKeyFile);
    const wrong: CliEnv = { dataDir, rootKey: OTHER_ROOT_KEY };
    for (const args of [
      ["keys", "create", "--project", "pdev", "--alias", "intruder"],
      ["keys", "list", "--project", "pdev"],
      ["keys", "disable", "--project", "pdev", "--key-id", key.key_id ?? ""],
    ]) {
      const refused = await kmsd(args, wrong);
      expect(refused.code).toBe(2);
      expect(refused.stdout).toBe("");
      expect(refused.stderr).toMatch(/root key .* is not the one this store was created with/);
    }
    expect(await sha256(dbFile)).toBe(dbBefore);
    expect(await sha256(devKeyFile)).toBe(devKeyBefore);
    expect((await readdir(dataDir)).sort()).toEqual(entriesBefore);

    const after = await kmsdJson(["keys", "list", "--project", "pdev"], noKey);
    expect(after).toMatchObject({ keys: [key.key_id], total: 1 });
    expect((after.key_details as { key_state: string }[])[0]?.key_state).toBe("2");
  });

  it("a store made with KMSD_ROOT_KEY refuses to run without one and makes no dev key", async () => {
    const dataDir = await newDataDir();
    await kmsdJson(["keys", "create", "--project", "pk", "--alias", "k"], {
      dataDir,
      rootKey: TEST_ROOT_KEY,
    });
    const refused = await kmsd(["keys", "list", "--project", "pk"], { dataDir, rootKey: null });
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe("");
    expect(refused.stderr).toMatch(/KMSD_ROOT_KEY/);
    expect(await readdir(dataDir)).not.toContain("root-key.dev");
  });

  it("a KMSD_ROOT_KEY that is not base64 of 32 bytes is refused with exit 2", async () => {
    const dataDir = await newDataDir();
    for (const bad of ["not base64!", Buffer.alloc(16).toString("base64")]) {
      const refused = await kmsd(["keys", "list", "--project", "p"], { dataDir, rootKey: bad });
      expect(refused.code).toBe(2);
      expect(refused.stdout).toBe("");
      expect(refused.stderr).toMatch(
        /KMSD_ROOT_KEY must be the base64 encoding of exactly 32 bytes/,
      );
    }
  });
});

describe("CLI changes reach a running server", () => {
  let server: RunningKmsd;
  let env: CliEnv;
  let token: string;

  beforeAll(async () => {
    const dataDir = await newDataDir();
    env = { dataDir, rootKey: TEST_ROOT_KEY };
    server = await startKmsd({ dataDir, rootKey: TEST_ROOT_KEY });
    token = await tokenFor(server, "pco");
  });
  afterAll(async () => {
    await server.stop();
  });

  /** Polls encrypt-data until it answers `want` (a status and code); returns the ms it took. */
  async function pollUntil(keyId: string, want: { status: number; code?: string }) {
    const started = Date.now();
    for (;;) {
      const reply = await post(
        `${server.url}/v1.0/pco/kms/encrypt-data`,
        {
          key_id: keyId,
          plain_text: "x",
        },
        token,
      );
      const code = (reply.json as { error?: { error_code?: string } }).error?.error_code;
      if (reply.status === want.status && code === want.code) return Date.now() - started;
      if (Date.now() - started > 3000) {
        throw new Error(`still ${reply.status} ${JSON.stringify(reply.json)} after 3 s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it("keys disable makes encrypt-data answer KMS.0209 within 1 s; keys enable brings it back", async () => {
    const key = await kmsdJson(["keys", "create", "--project", "pco", "--alias", "shared"], env);
    const keyId = String(key.key_id);
    // The server sees a key the CLI created, and caches it by using it.
    const encrypted = await post(
      `${server.url}/v1.0/pco/kms/encrypt-data`,
      {
        key_id: keyId,
        plain_text: "12345678",
      },
      token,
    );
    expect(encrypted.status).toBe(200);
    const cipherText = (encrypted.json as { cipher_text: string }).cipher_text;

    await kmsdJson(["keys", "disable", "--project", "pco", "--key-id", keyId], env);
    expect(await pollUntil(keyId, { status: 400, code: "KMS.0209" })).toBeLessThan(1000);
    const refused = await post(
      `${server.url}/v1.0/pco/kms/decrypt-data`,
      {
        cipher_text: cipherText,
      },
      token,
    );
    expect(refused).toEqual({
      status: 400,
      json: { error: { error_code: "KMS.0209", error_msg: expect.any(String) } },
    });

    await kmsdJson(["keys", "enable", "--project", "pco", "--key-id", keyId], env);
    expect(await pollUntil(keyId, { status: 200 })).toBeLessThan(1000);
    const decrypted = await post(
      `${server.url}/v1.0/pco/kms/decrypt-data`,
      {
        cipher_text: cipherText,
      },
      token,
    );
    expect(decrypted).toEqual({
      status: 200,
      json: { key_id: keyId, plain_text: "12345678", plain_text_base64: "MTIzNDU2Nzg=" },
    });
  });

  it("keys the server creates are visible to the CLI at once", async () => {
    const created = await post(
      `${server.url}/v1.0/pco/kms/create-key`,
      { key_alias: "by-rest" },
      token,
    );
    expect(created.status).toBe(200);
    const keyId = (created.json as { key_info: { key_id: string } }).key_info.key_id;
    const described = await kmsdJson(
      ["keys", "describe", "--project", "pco", "--key-id", keyId],
      env,
    );
    expect(described).toMatchObject({ key_id: keyId, key_alias: "by-rest", key_state: "2" });
  });
});

describe("kmsd serve", () => {
  let child: ChildProcess | undefined;

  afterAll(() => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill();
  });

  it("serves REST until SIGTERM, then exits 0", async () => {
    const dataDir = await newDataDir();
    const port = await freePort();
    const proc = spawn(process.execPath, [BIN, "serve", "--port", String(port)], {
      cwd: ROOT,
      env: cliEnv({ dataDir, rootKey: TEST_ROOT_KEY }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    let stderr = "";
    let stdout = "";
    proc.stdout.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve) => {
        proc.on("exit", (code, signal) => resolve({ code, signal }));
      },
    );
    const serving = new Promise<Record<string, unknown>>((resolve, reject) => {
      proc.stderr.setEncoding("utf8").on("data", (text: string) => {
        stderr += text;
        for (const line of stderr.split("\n")) {
          if (!line.includes("kmsd serving")) continue;
          resolve(JSON.parse(line) as Record<string, unknown>);
        }
      });
      void exited.then(({ code }) => reject(new Error(`kmsd exited (${code}): ${stderr}`)));
      setTimeout(
        () => reject(new Error(`no "kmsd serving" line in 10 s: ${stderr}`)),
        10_000,
      ).unref();
    });
    const line = await serving;
    expect(line).toMatchObject({ level: "info", msg: "kmsd serving", port, host: "127.0.0.1" });

    // A new user's first credential: the admin token the first start wrote to the data dir.
    const bootstrap = JSON.parse(
      await readFile(path.join(dataDir, "bootstrap-credentials.json"), "utf8"),
    ) as { project_id: string; token: string };
    const { project_id: project, token } = bootstrap;
    const base = `http://127.0.0.1:${port}/v1.0/${project}/kms`;
    const created = await post(`${base}/create-key`, { key_alias: "served" }, token);
    expect(created).toEqual({
      status: 200,
      json: { key_info: { key_id: expect.stringMatching(UUID), domain_id: project } },
    });
    const keyId = (created.json as { key_info: { key_id: string } }).key_info.key_id;
    const encrypted = await post(
      `${base}/encrypt-data`,
      { key_id: keyId, plain_text: "12345678" },
      token,
    );
    expect(encrypted.status).toBe(200);
    const decrypted = await post(
      `${base}/decrypt-data`,
      { cipher_text: (encrypted.json as { cipher_text: string }).cipher_text },
      token,
    );
    expect(decrypted.json).toEqual({
      key_id: keyId,
      plain_text: "12345678",
      plain_text_base64: "MTIzNDU2Nzg=",
    });

    // The client's idle keep-alive connection must not hold the shutdown for the whole grace period.
    const terminatedAt = Date.now();
    expect(proc.kill("SIGTERM")).toBe(true);
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - terminatedAt).toBeLessThan(5000);
    expect(stdout).toBe("");
    expect(stderr).toContain("shutting down");
    expect(stderr).toContain('"msg":"stopped"');
    await expect(fetch(`${base}/list-keys`, { method: "POST" })).rejects.toThrow();
  });
});
