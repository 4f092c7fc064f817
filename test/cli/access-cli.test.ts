import { readFile, stat, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Answer,
  BOOTSTRAP_FILE,
  cliJson,
  exportAudit,
  killIfRunning,
  postJson,
  readBootstrap,
  runCli,
  type ServeProcess,
  signedHeaders,
  spawnServe,
  storeBytes,
} from "../audit/cli-helpers.js";
import { type RunningKmsd, removeDir, startKmsd, tempDataDir } from "../support/kmsd.js";

/**
 * `kmsd credentials ...` and `kmsd tokens ...` as a user runs them (node
 * bin/kmsd.js), and the credential `kmsd serve` bootstraps on a new data
 * directory.
 */

const PA = "pacc-a";
const PB = "pacc-b";
const AK = /^[A-Z0-9]{20}$/;
const SK = /^[A-Za-z0-9]{40}$/;
const TOKEN_ID = /^tok-[0-9a-f]{16}$/;

interface Credential {
  access_key: string;
  secret_key: string;
  project_id: string;
  role: string;
}

interface Token {
  token: string;
  token_id: string;
  project_id: string;
  role: string;
  expires_at: string;
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

/** POST list-keys for the project, signed with the credential. */
function signedListKeys(kmsd: RunningKmsd, credential: Credential, project = PA): Promise<Answer> {
  const url = `${kmsd.url}/v1.0/${project}/kms/list-keys`;
  return postJson(url, "{}", signedHeaders(credential, url, "{}"));
}

function tokenListKeys(kmsd: RunningKmsd, token: string, project = PA): Promise<Answer> {
  return postJson(`${kmsd.url}/v1.0/${project}/kms/list-keys`, {}, { "x-auth-token": token });
}

/** Polls `check` until it gives `status` (the server picks store changes up within ~250 ms). */
async function eventually(check: () => Promise<Answer>, status: number): Promise<Answer> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const answer = await check();
    if (answer.status === status || Date.now() > deadline) return answer;
    await sleep(50);
  }
}

describe("kmsd credentials", () => {
  let dataDir: string;
  let kmsd: RunningKmsd;
  let admin: Credential;

  beforeAll(async () => {
    dataDir = await newDataDir();
    const created = await runCli(
      ["credentials", "create", "--project", PA, "--role", "admin"],
      dataDir,
    );
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toBe("");
    admin = JSON.parse(created.stdout) as Credential;
    kmsd = await startKmsd({ dataDir });
  });

  afterAll(async () => {
    await kmsd?.stop();
  });

  it("create prints exactly access_key, secret_key, project_id and role", () => {
    expect(Object.keys(admin).sort()).toEqual(["access_key", "project_id", "role", "secret_key"]);
    expect(admin).toEqual({
      access_key: expect.stringMatching(AK),
      secret_key: expect.stringMatching(SK),
      project_id: PA,
      role: "admin",
    });
  });

  it("the credential signs requests for its project", async () => {
    const answer = await signedListKeys(kmsd, admin);
    expect(answer.status, answer.text).toBe(200);
  });

  it("the secret key is stored only wrapped: its bytes are nowhere in the store", async () => {
    const user = await cliJson<Credential>(
      ["credentials", "create", "--project", PA, "--role", "user", "--description", "app"],
      dataDir,
    );
    expect(user).toMatchObject({ project_id: PA, role: "user" });
    const bytes = await storeBytes(dataDir);
    expect(bytes.indexOf(Buffer.from(admin.secret_key))).toBe(-1);
    expect(bytes.indexOf(Buffer.from(user.secret_key))).toBe(-1);
    expect(bytes.indexOf(Buffer.from(admin.access_key))).toBeGreaterThan(-1);
  });

  it("list shows a project's credentials, never a secret", async () => {
    const other = await cliJson<Credential>(
      ["credentials", "create", "--project", PB, "--role", "admin"],
      dataDir,
    );
    const listed = await runCli(["credentials", "list", "--project", PA], dataDir);
    expect(listed.code, listed.stderr).toBe(0);
    const credentials = JSON.parse(listed.stdout) as Record<string, unknown>[];
    expect(credentials.length).toBeGreaterThanOrEqual(2);
    for (const credential of credentials) {
      expect(Object.keys(credential).sort()).toEqual([
        "access_key",
        "created_at",
        "description",
        "project_id",
        "role",
        "state",
      ]);
      expect(credential.project_id).toBe(PA);
    }
    expect(credentials[0]).toMatchObject({
      access_key: admin.access_key,
      role: "admin",
      state: "enabled",
      description: "",
    });
    expect(listed.stdout).not.toContain(admin.secret_key);
    expect(listed.stdout).not.toContain(other.access_key);

    const all = await cliJson<{ access_key: string }[]>(["credentials", "list"], dataDir);
    expect(all.map((credential) => credential.access_key)).toEqual(
      expect.arrayContaining([admin.access_key, other.access_key]),
    );
  });

  it("disable stops the credential's signatures, enable brings them back, delete ends it", async () => {
    const credential = await cliJson<Credential>(
      ["credentials", "create", "--project", PA, "--role", "user"],
      dataDir,
    );
    const id = ["--access-key", credential.access_key];
    expect((await signedListKeys(kmsd, credential)).status).toBe(200);

    expect(await cliJson(["credentials", "disable", ...id], dataDir)).toEqual({
      access_key: credential.access_key,
      state: "disabled",
    });
    const listed = await cliJson<{ access_key: string; state: string }[]>(
      ["credentials", "list", "--project", PA],
      dataDir,
    );
    expect(listed.find((c) => c.access_key === credential.access_key)?.state).toBe("disabled");
    const refused = await eventually(() => signedListKeys(kmsd, credential), 401);
    expect(refused.status, refused.text).toBe(401);

    expect(await cliJson(["credentials", "enable", ...id], dataDir)).toEqual({
      access_key: credential.access_key,
      state: "enabled",
    });
    expect((await eventually(() => signedListKeys(kmsd, credential), 200)).status).toBe(200);

    expect(await cliJson(["credentials", "delete", ...id], dataDir)).toEqual({
      access_key: credential.access_key,
      deleted: true,
    });
    const after = await cliJson<{ access_key: string }[]>(["credentials", "list"], dataDir);
    expect(after.map((c) => c.access_key)).not.toContain(credential.access_key);
    expect((await eventually(() => signedListKeys(kmsd, credential), 401)).status).toBe(401);

    // Deleted means gone: every command now says there is no such key.
    for (const verb of ["disable", "enable", "delete"]) {
      const again = await runCli(["credentials", verb, ...id], dataDir);
      expect(again.code).toBe(2);
      expect(again.stdout).toBe("");
      expect(again.stderr).toContain(`no access key "${credential.access_key}"`);
    }
  });

  it.each([
    [
      "an unknown access key",
      ["credentials", "disable", "--access-key", "KMSDNOSUCHKEY0000000"],
      /no access key/,
    ],
    ["a missing --access-key", ["credentials", "delete"], /--access-key is required/],
    [
      "a bad role",
      ["credentials", "create", "--project", PA, "--role", "root"],
      /--role must be admin or user/,
    ],
    ["a missing role", ["credentials", "create", "--project", PA], /--role is required/],
    [
      "a bad project",
      ["credentials", "create", "--project", "a.b", "--role", "user"],
      /--project must match/,
    ],
  ])("%s is a usage error: exit 2", async (_name, args, message) => {
    const result = await runCli(args, dataDir);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(message);
  });

  it("every credential command is in the audit trail, with the access key and never the secret", async () => {
    const { records, text } = await exportAudit(dataDir);
    const cli = records.filter((record) => record.protocol === "cli");
    const operations = cli.map((record) => record.operation);
    for (const operation of [
      "CreateCredential",
      "ListCredentials",
      "DisableCredential",
      "EnableCredential",
      "DeleteCredential",
    ]) {
      expect(operations).toContain(operation);
    }
    for (const record of cli) expect(record.principal).toBe(`cli:${userInfo().username}`);
    expect(cli.find((record) => record.operation === "CreateCredential")).toMatchObject({
      project_id: PA,
      key_id: admin.access_key,
      outcome: "OK",
    });
    expect(
      cli.filter(
        (record) => record.operation === "DisableCredential" && record.outcome === "KMS.0308",
      ).length,
    ).toBeGreaterThanOrEqual(1);
    expect(text).not.toContain(admin.secret_key);
  });
});

describe("kmsd tokens", () => {
  let dataDir: string;
  let kmsd: RunningKmsd;

  beforeAll(async () => {
    dataDir = await newDataDir();
    await cliJson(["tokens", "create", "--project", PB, "--role", "user"], dataDir);
    kmsd = await startKmsd({ dataDir });
  });

  afterAll(async () => {
    await kmsd?.stop();
  });

  async function createToken(
    args: string[],
  ): Promise<{ token: Token; before: number; after: number }> {
    const before = Date.now();
    const token = await cliJson<Token>(["tokens", "create", "--project", PA, ...args], dataDir);
    return { token, before, after: Date.now() };
  }

  it.each([
    ["24h", 24 * 3600_000],
    ["30m", 30 * 60_000],
    ["7d", 7 * 86_400_000],
    ["90s", 90_000],
  ])("create --ttl %s prints the token once, expiring that much later", async (ttl, ms) => {
    const { token, before, after } = await createToken(["--role", "user", "--ttl", ttl]);
    expect(Object.keys(token).sort()).toEqual([
      "expires_at",
      "project_id",
      "role",
      "token",
      "token_id",
    ]);
    expect(token).toMatchObject({
      token: expect.stringMatching(/^kmsd_[A-Za-z0-9_-]{43}$/),
      token_id: expect.stringMatching(TOKEN_ID),
      project_id: PA,
      role: "user",
    });
    const expires = Date.parse(token.expires_at);
    expect(expires).toBeGreaterThanOrEqual(before + ms);
    expect(expires).toBeLessThanOrEqual(after + ms);
    expect((await tokenListKeys(kmsd, token.token)).status).toBe(200);
  });

  it("create without --ttl lasts 24h", async () => {
    const { token, before, after } = await createToken(["--role", "admin"]);
    const expires = Date.parse(token.expires_at);
    expect(expires).toBeGreaterThanOrEqual(before + 86_400_000);
    expect(expires).toBeLessThanOrEqual(after + 86_400_000);
  });

  it.each(["0h", "24", "1.5h", "abc", "24H", "367d", "", "-1h"])(
    "create --ttl %j is a usage error: exit 2",
    async (ttl) => {
      const result = await runCli(
        ["tokens", "create", "--project", PA, "--role", "user", `--ttl=${ttl}`],
        dataDir,
      );
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/--ttl must look like 30m, 24h or 7d/);
    },
  );

  it("the token is stored only hashed, and list shows ids, never tokens", async () => {
    const { token } = await createToken(["--role", "user", "--description", "ci"]);
    expect((await storeBytes(dataDir)).indexOf(Buffer.from(token.token))).toBe(-1);
    const listed = await runCli(["tokens", "list", "--project", PA], dataDir);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).not.toContain(token.token);
    expect(listed.stdout).not.toContain("kmsd_");
    const tokens = JSON.parse(listed.stdout) as Record<string, unknown>[];
    for (const entry of tokens) {
      expect(Object.keys(entry).sort()).toEqual([
        "created_at",
        "description",
        "expires_at",
        "project_id",
        "revoked_at",
        "role",
        "token_id",
      ]);
      expect(entry.project_id).toBe(PA);
    }
    expect(tokens.find((entry) => entry.token_id === token.token_id)).toMatchObject({
      role: "user",
      revoked_at: null,
      description: "ci",
      expires_at: token.expires_at,
    });
    const all = await cliJson<{ project_id: string }[]>(["tokens", "list"], dataDir);
    // (The server's bootstrap token of project "default" is there too.)
    expect(all.map((entry) => entry.project_id)).toEqual(expect.arrayContaining([PA, PB]));
  });

  it("revoke ends a token at once; unknown ids exit 2", async () => {
    const { token } = await createToken(["--role", "user"]);
    expect((await tokenListKeys(kmsd, token.token)).status).toBe(200);
    const before = Date.now();
    expect(await cliJson(["tokens", "revoke", "--token-id", token.token_id], dataDir)).toEqual({
      token_id: token.token_id,
      revoked: true,
    });
    const listed = await cliJson<{ token_id: string; revoked_at: string | null }[]>(
      ["tokens", "list", "--project", PA],
      dataDir,
    );
    const revokedAt = Date.parse(
      listed.find((t) => t.token_id === token.token_id)?.revoked_at ?? "",
    );
    expect(revokedAt).toBeGreaterThanOrEqual(before);
    const refused = await eventually(() => tokenListKeys(kmsd, token.token), 401);
    expect(refused.status, refused.text).toBe(401);
    expect(refused.json).toMatchObject({ error_code: "APIGW.0301" });

    const unknown = await runCli(
      ["tokens", "revoke", "--token-id", "tok-0000000000000000"],
      dataDir,
    );
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no token "tok-0000000000000000"');
  });

  it("a token stops working when it expires", async () => {
    const { token } = await createToken(["--role", "user", "--ttl", "1s"]);
    expect((await tokenListKeys(kmsd, token.token)).status).toBe(200);
    await sleep(Math.max(0, Date.parse(token.expires_at) - Date.now()) + 50);
    const expired = await tokenListKeys(kmsd, token.token);
    expect({ status: expired.status, body: expired.json }).toEqual({
      status: 403,
      body: { error: { error_code: "KMS.0303", error_msg: expect.any(String) } },
    });
  });

  it("token commands are in the audit trail with the token id, never the token", async () => {
    const { token } = await createToken(["--role", "user"]);
    await cliJson(["tokens", "revoke", "--token-id", token.token_id], dataDir);
    const { records, text } = await exportAudit(dataDir);
    expect(text).not.toContain(token.token);
    expect(
      records
        .filter((record) => record.key_id === token.token_id)
        .map((record) => [record.operation, record.project_id, record.outcome]),
    ).toEqual([
      ["CreateToken", PA, "OK"],
      ["RevokeToken", PA, "OK"],
    ]);
  });
});

describe("bootstrap on a new data directory", () => {
  const servers: ServeProcess[] = [];
  afterAll(() => {
    for (const server of servers) killIfRunning(server);
  });

  async function serve(dataDir: string, extra: Record<string, string> = {}): Promise<ServeProcess> {
    const server = await spawnServe(dataDir, extra);
    servers.push(server);
    return server;
  }

  async function stop(server: ServeProcess): Promise<void> {
    server.proc.kill("SIGTERM");
    expect(await server.exited).toEqual({ code: 0, signal: null });
  }

  it("serve writes one admin credential and token to a 0600 file, logs its path, and never again", async () => {
    const dataDir = await newDataDir();
    const file = path.join(dataDir, BOOTSTRAP_FILE);
    const first = await serve(dataDir);
    expect(first.stderr()).toContain(file);
    expect(first.stderr()).toMatch(/bootstrap/);
    expect(((await stat(file)).mode & 0o777).toString(8)).toBe("600");
    const bootstrap = await readBootstrap(dataDir);
    expect(bootstrap).toEqual({
      access_key: expect.stringMatching(AK),
      secret_key: expect.stringMatching(SK),
      project_id: "default",
      role: "admin",
      token: expect.stringMatching(/^kmsd_/),
      token_id: expect.stringMatching(TOKEN_ID),
      token_expires_at: expect.any(String),
    });
    expect(Date.parse(bootstrap.token_expires_at)).toBeGreaterThan(Date.now() + 86_400_000);

    // Both work: the token makes a key, the access key lists it.
    const base = `${first.url}/v1.0/default/kms`;
    const created = await postJson(
      `${base}/create-key`,
      { key_alias: "first" },
      {
        "x-auth-token": bootstrap.token,
      },
    );
    expect(created.status, created.text).toBe(200);
    const listed = await postJson(
      `${base}/list-keys`,
      "{}",
      signedHeaders(bootstrap, `${base}/list-keys`, "{}"),
    );
    expect(listed.status, listed.text).toBe(200);
    expect(listed.json).toMatchObject({ total: 1 });
    await stop(first);

    // A second start keeps the file and makes no other credential or token.
    const content = await readFile(file, "utf8");
    const { mtimeMs, ino } = await stat(file);
    const second = await serve(dataDir);
    // The bootstrap token still works (a request answered also means serve
    // has installed its SIGTERM handler: it logs "kmsd serving" just before).
    const again = await postJson(
      `${second.url}/v1.0/default/kms/list-keys`,
      {},
      {
        "x-auth-token": bootstrap.token,
      },
    );
    expect(again.status, again.text).toBe(200);
    await stop(second);
    expect(second.stderr()).not.toContain(BOOTSTRAP_FILE);
    expect(await readFile(file, "utf8")).toBe(content);
    expect(await stat(file)).toMatchObject({ mtimeMs, ino });
    expect(await cliJson<unknown[]>(["credentials", "list"], dataDir)).toHaveLength(1);
    expect(await cliJson<unknown[]>(["tokens", "list"], dataDir)).toHaveLength(1);
  });

  it("KMSD_BOOTSTRAP_PROJECT names the project", async () => {
    const dataDir = await newDataDir();
    const server = await serve(dataDir, { KMSD_BOOTSTRAP_PROJECT: "team-a" });
    const bootstrap = await readBootstrap(dataDir);
    expect(bootstrap).toMatchObject({ project_id: "team-a", role: "admin" });
    const answer = await postJson(
      `${server.url}/v1.0/team-a/kms/list-keys`,
      {},
      {
        "x-auth-token": bootstrap.token,
      },
    );
    expect(answer.status, answer.text).toBe(200);
    await stop(server);
  });

  it("a stale file left by a deleted store is replaced, 0600", async () => {
    const dataDir = await newDataDir();
    const file = path.join(dataDir, BOOTSTRAP_FILE);
    await writeFile(file, '{"token":"kmsd_stale"}\n', { mode: 0o644 });
    const server = await serve(dataDir);
    const bootstrap = await readBootstrap(dataDir);
    expect(bootstrap.token).not.toBe("kmsd_stale");
    expect(((await stat(file)).mode & 0o777).toString(8)).toBe("600");
    const answer = await postJson(
      `${server.url}/v1.0/default/kms/list-keys`,
      {},
      {
        "x-auth-token": bootstrap.token,
      },
    );
    expect(answer.status, answer.text).toBe(200);
    await stop(server);
  });
});
