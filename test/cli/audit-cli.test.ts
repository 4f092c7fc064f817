import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AUDIT_JSON_FIELDS,
  type AuditJson,
  BIN,
  cliEnv,
  cliJson,
  exportAudit,
  jsonLines,
  postJson,
  ROOT,
  runCli,
  verifyAudit,
} from "../audit/cli-helpers.js";
import { removeDir, startKmsd, tempDataDir } from "../support/kmsd.js";

/**
 * `kmsd audit tail|export|verify` as a user runs them: JSON lines, the
 * project and time filters, and the verify report.
 */

const PA = "paudcli-a";
const PB = "paudcli-b";

let dataDir: string;
let tokens: Record<string, string>;
/** Request ids by project and phase (phase 2 starts at `middle`). */
const ids = { [PA]: [[], []], [PB]: [[], []] } as Record<string, [string[], string[]]>;
let middle: number;
let all: AuditJson[];

async function listKeys(url: string, project: string, phase: 0 | 1): Promise<void> {
  const answer = await postJson(
    `${url}/v1.0/${project}/kms/list-keys`,
    {},
    { "x-auth-token": tokens[project] ?? "" },
  );
  expect(answer.status, answer.text).toBe(200);
  ids[project]?.[phase].push(answer.requestId);
}

beforeAll(async () => {
  dataDir = await tempDataDir();
  tokens = {};
  for (const project of [PA, PB]) {
    const issued = await cliJson<{ token: string }>(
      ["tokens", "create", "--project", project, "--role", "user"],
      dataDir,
    );
    tokens[project] = issued.token;
  }
  const kmsd = await startKmsd({ dataDir });
  try {
    for (let i = 0; i < 15; i++) {
      await listKeys(kmsd.url, PA, 0);
      if (i % 3 === 0) await listKeys(kmsd.url, PB, 0);
    }
    // Records carry the time each request arrived, in ms: leave a clear gap.
    await sleep(30);
    middle = Date.now();
    await sleep(30);
    for (let i = 0; i < 12; i++) {
      await listKeys(kmsd.url, PA, 1);
      if (i % 3 === 0) await listKeys(kmsd.url, PB, 1);
    }
  } finally {
    await kmsd.stop();
  }
  ({ records: all } = await exportAudit(dataDir));
});

afterAll(async () => {
  await removeDir(dataDir);
});

const requestIds = (records: readonly AuditJson[]) => records.map((record) => record.request_id);

describe("kmsd audit export", () => {
  it("prints every record as one JSON object per line, in seq order", () => {
    expect(all.length).toBeGreaterThanOrEqual(27 + 10);
    all.forEach((record, index) => {
      expect(Object.keys(record).sort()).toEqual(AUDIT_JSON_FIELDS);
      expect(record.seq).toBe(index + 1);
      expect(new Date(record.time).toISOString()).toBe(record.time);
    });
    for (const id of [...(ids[PA]?.flat() ?? []), ...(ids[PB]?.flat() ?? [])]) {
      expect(requestIds(all)).toContain(id);
    }
  });

  it("--project prints that project's records only", async () => {
    const { records } = await exportAudit(dataDir, ["--project", PA]);
    expect(records.map((record) => record.project_id)).toEqual(records.map(() => PA));
    const own = ids[PA]?.flat() ?? [];
    const others = ids[PB]?.flat() ?? [];
    // Its requests and the creation of its token, nothing of the other project.
    expect(requestIds(records).filter((id) => own.includes(id))).toEqual(own);
    expect(requestIds(records).filter((id) => others.includes(id))).toEqual([]);
    expect(records).toEqual(all.filter((record) => record.project_id === PA));

    const { records: theirs } = await exportAudit(dataDir, ["--project", PB]);
    expect(requestIds(theirs).filter((id) => own.includes(id))).toEqual([]);
    expect(requestIds(theirs).filter((id) => others.includes(id))).toEqual(others);
  });

  it("--project of a project without records prints nothing", async () => {
    const result = await runCli(["audit", "export", "--project", "nobody"], dataDir);
    expect(result).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  it("--since an ISO time prints the records from then on", async () => {
    const since = new Date(middle).toISOString();
    const { records } = await exportAudit(dataDir, ["--since", since]);
    expect(records).toEqual(all.filter((record) => Date.parse(record.time) >= middle));
    const later = [...(ids[PA]?.[1] ?? []), ...(ids[PB]?.[1] ?? [])];
    expect(new Set(requestIds(records))).toEqual(new Set(later));

    const { records: both } = await exportAudit(dataDir, ["--project", PA, "--since", since]);
    expect(requestIds(both)).toEqual(ids[PA]?.[1]);
  });

  it("--since a duration (10m) counts back from now", async () => {
    const { records } = await exportAudit(dataDir, ["--since", "10m"]);
    expect(records).toEqual(all);
  });

  it.each(["yesterday", "10 minutes", "5w"])(
    "--since %j is a usage error: exit 2",
    async (since) => {
      const result = await runCli(["audit", "export", "--since", since], dataDir);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(/--since must be an ISO 8601 time or like 30m, 24h, 7d/);
    },
  );
});

describe("kmsd audit tail", () => {
  it("--project --lines N prints that project's newest N records", async () => {
    const result = await runCli(["audit", "tail", "--project", PA, "--lines", "3"], dataDir);
    expect(result.code, result.stderr).toBe(0);
    const records = jsonLines(result.stdout);
    expect(records).toEqual(all.filter((record) => record.project_id === PA).slice(-3));
    expect(requestIds(records)).toEqual(ids[PA]?.[1].slice(-3));
  });

  it("prints the newest 20 by default", async () => {
    const result = await runCli(["audit", "tail"], dataDir);
    expect(result.code, result.stderr).toBe(0);
    expect(jsonLines(result.stdout)).toEqual(all.slice(-20));
  });

  it("--since combines with --lines", async () => {
    const since = new Date(middle).toISOString();
    const result = await runCli(
      ["audit", "tail", "--project", PB, "--since", since, "--lines", "100"],
      dataDir,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(requestIds(jsonLines(result.stdout))).toEqual(ids[PB]?.[1]);
  });

  it.each(["0", "-1", "abc", "2.5"])("--lines %j is a usage error: exit 2", async (lines) => {
    const result = await runCli(["audit", "tail", `--lines=${lines}`], dataDir);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/--lines must be a positive integer/);
  });

  it("--follow prints the project's new records as they are written", async () => {
    const child = spawn(
      process.execPath,
      [BIN, "audit", "tail", "--project", PA, "--lines", "1", "--follow"],
      { cwd: ROOT, env: cliEnv(dataDir), stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      const waitFor = async (id: string) => {
        const deadline = Date.now() + 5000;
        while (!stdout.includes(id) && Date.now() < deadline) await sleep(25);
        expect(stdout).toContain(id);
      };
      await waitFor(ids[PA]?.[1].at(-1) ?? "");
      const kmsd = await startKmsd({ dataDir });
      try {
        await listKeys(kmsd.url, PB, 1);
        await listKeys(kmsd.url, PA, 1);
        await waitFor(ids[PA]?.[1].at(-1) ?? "");
      } finally {
        await kmsd.stop();
      }
      const lines = jsonLines(stdout);
      expect(lines.map((record) => record.project_id)).toEqual([PA, PA]);
      expect(requestIds(lines)).toEqual(ids[PA]?.[1].slice(-2));
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  });
});

describe("kmsd audit verify", () => {
  it("prints ok, how many records it checked and the head; exit 0", async () => {
    const { records } = await exportAudit(dataDir);
    const result = await runCli(["audit", "verify"], dataDir);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe("");
    expect(result.stdout.endsWith("}\n")).toBe(true);
    const head = records.at(-1);
    expect(JSON.parse(result.stdout)).toEqual({
      ok: true,
      verified: records.length,
      head: { seq: head?.seq, seal: head?.seal, time: head?.time },
    });
  });

  it("--head accepts the head it printed", async () => {
    const { report } = await verifyAudit(dataDir);
    const accepted = await verifyAudit(dataDir, [
      "--head",
      `${report.head?.seq}:${report.head?.seal}`,
    ]);
    expect(accepted.code).toBe(0);
    const wrong = await verifyAudit(dataDir, ["--head", `${report.head?.seq}:${"0".repeat(64)}`]);
    expect(wrong.code).toBe(1);
    expect(wrong.report).toMatchObject({ ok: false, broken_at: report.head?.seq });
  });

  it("on an empty trail: ok, nothing verified, no head", async () => {
    const empty = await tempDataDir();
    try {
      const result = await runCli(["audit", "verify"], empty);
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ ok: true, verified: 0, head: null });
    } finally {
      await removeDir(empty);
    }
  });
});
