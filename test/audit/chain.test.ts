import { createHash } from "node:crypto";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeDir, startKmsd, tempDataDir } from "../support/kmsd.js";
import {
  type AuditJson,
  cliJson,
  copyDataDir,
  exportAudit,
  killIfRunning,
  postJson,
  readBootstrap,
  runCli,
  type ServeProcess,
  spawnServe,
  verifyAudit,
} from "./cli-helpers.js";

/**
 * The audit trail is a keyed hash chain: `kmsd audit verify` accepts a real
 * trail and names the record where a changed, deleted or reordered record
 * breaks it, even when the attacker recomputes hashes without the key.
 */

const P = "pchain";
const dirs: string[] = [];
let dataDir: string;
let records: AuditJson[];

/** The columns of audit_records besides seq. */
const CONTENT_COLUMNS = [
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
  "prev_hash",
  "hash",
];

/** A fresh copy of the trail's data directory, changed through SQLite by `tamper`. */
async function tampered(tamper: (db: Database.Database) => void): Promise<string> {
  const copy = await copyDataDir(dataDir);
  dirs.push(copy);
  const db = new Database(path.join(copy, "kmsd.db"));
  try {
    tamper(db);
  } finally {
    db.close();
  }
  return copy;
}

beforeAll(async () => {
  dataDir = await tempDataDir();
  dirs.push(dataDir);
  const key = await cliJson<{ key_id: string }>(
    ["keys", "create", "--project", P, "--alias", "chained"],
    dataDir,
  );
  const kmsd = await startKmsd({ dataDir });
  try {
    const { token } = await readBootstrap(dataDir);
    const project = (await readBootstrap(dataDir)).project_id;
    const mine = await cliJson<{ token: string }>(
      ["tokens", "create", "--project", P, "--role", "user"],
      dataDir,
    );
    for (let i = 0; i < 12; i++) {
      await postJson(
        `${kmsd.url}/v1.0/${P}/kms/encrypt-data`,
        { key_id: key.key_id, plain_text: `message ${i}`, encryption_context: { n: String(i) } },
        { "x-auth-token": mine.token },
      );
      if (i % 4 === 0) {
        await postJson(`${kmsd.url}/v1.0/${project}/kms/list-keys`, {}, { "x-auth-token": token });
        await postJson(`${kmsd.url}/v1.0/${P}/kms/nowhere`, {}, {});
      }
    }
  } finally {
    await kmsd.stop();
  }
  ({ records } = await exportAudit(dataDir));
});

afterAll(async () => {
  for (const dir of dirs) await removeDir(dir);
});

describe("kmsd audit verify", () => {
  it("accepts a real trail: exit 0, how many records, and the head", async () => {
    expect(records.length).toBeGreaterThanOrEqual(20);
    const head = records.at(-1);
    const { code, report } = await verifyAudit(dataDir);
    expect(code).toBe(0);
    expect(report).toEqual({
      ok: true,
      verified: records.length,
      head: { seq: head?.seq, hash: head?.hash, time: head?.time },
    });
  });

  it("names the record whose field was changed", async () => {
    const copy = await tampered((db) => {
      db.prepare("UPDATE audit_records SET outcome = 'OK' WHERE seq = 7").run();
      db.prepare(
        "UPDATE audit_records SET principal = 'token:tok-someone-else' WHERE seq = 7",
      ).run();
    });
    const { code, report, stderr } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, verified: 6, broken_at: 7 });
    expect(report.reason).toMatch(/record 7 does not match its hash/);
    expect(report.last_good).toMatchObject({ seq: 6, hash: records[5]?.hash });
    expect(stderr).toMatch(/breaks at record 7/);
  });

  it.each([
    ["time", "time = time + 1"],
    ["latency", "latency_us = latency_us + 1"],
    ["context", `context = '{"n":"00000000000000000000000000000000"}'`],
    ["key id", "key_id = ''"],
  ])("detects a change of the %s alone", async (_name, set) => {
    const copy = await tampered((db) => {
      db.prepare(`UPDATE audit_records SET ${set} WHERE seq = 10`).run();
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, broken_at: 10, verified: 9 });
  });

  it("names the gap a deleted record leaves", async () => {
    const copy = await tampered((db) => {
      db.prepare("DELETE FROM audit_records WHERE seq = 9").run();
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, verified: 8, broken_at: 9 });
    expect(report.reason).toMatch(/record 9 is missing \(next present is 10\)/);
  });

  it("detects a deletion whose gap was closed by renumbering", async () => {
    const copy = await tampered((db) => {
      db.prepare("DELETE FROM audit_records WHERE seq = 9").run();
      // Renumber upwards from the gap, one row at a time (seq is the primary key).
      const later = db
        .prepare<[], { seq: number }>("SELECT seq FROM audit_records WHERE seq > 9 ORDER BY seq")
        .all();
      for (const { seq } of later) {
        db.prepare("UPDATE audit_records SET seq = ? WHERE seq = ?").run(seq - 1, seq);
      }
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, verified: 8, broken_at: 9 });
    expect(report.reason).toMatch(/does not follow the record before it/);
  });

  it("names where two swapped records break the chain", async () => {
    const copy = await tampered((db) => {
      const read = db.prepare<[number], Record<string, unknown>>(
        `SELECT ${CONTENT_COLUMNS.join(", ")} FROM audit_records WHERE seq = ?`,
      );
      const write = db.prepare(
        `UPDATE audit_records SET ${CONTENT_COLUMNS.map((c) => `${c} = @${c}`).join(", ")} WHERE seq = @seq`,
      );
      const a = read.get(5);
      const b = read.get(8);
      write.run({ ...b, seq: 5 });
      write.run({ ...a, seq: 8 });
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, verified: 4, broken_at: 5 });
    expect(report.reason).toMatch(/reordered/);
  });

  it("detects a change whose hashes were recomputed with plain SHA-256: the chain is keyed", async () => {
    const copy = await tampered((db) => {
      // An attacker who can write the store but has no root key rewrites
      // record 6 and re-links every later record with unkeyed hashes.
      type Row = Record<string, unknown> & { seq: number; prev_hash: string };
      const rows = db
        .prepare<[], Row>("SELECT * FROM audit_records WHERE seq >= 6 ORDER BY seq")
        .all();
      const update = db.prepare(
        "UPDATE audit_records SET outcome = ?, prev_hash = ?, hash = ? WHERE seq = ?",
      );
      let prev = rows[0]?.prev_hash ?? "";
      for (const row of rows) {
        const outcome = row.seq === 6 ? "OK" : row.outcome;
        const fields = [
          row.seq,
          prev,
          row.time,
          row.request_id,
          row.protocol,
          row.project_id,
          row.principal,
          row.operation,
          row.key_id,
          row.sequence,
          outcome,
          row.latency_us,
          Object.entries(JSON.parse(String(row.context)) as Record<string, string>).sort(),
        ];
        const hash = createHash("sha256").update(JSON.stringify(fields)).digest("hex");
        update.run(outcome, prev, hash, row.seq);
        prev = hash;
      }
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, verified: 5, broken_at: 6 });
    expect(report.reason).toMatch(/record 6 does not match its hash/);
  });

  it("cutting records off the end passes alone, but fails against the head verify printed", async () => {
    const { report: before } = await verifyAudit(dataDir);
    const head = before.head;
    expect(head).toBeTruthy();
    const known = `${head?.seq}:${head?.hash}`;
    expect((await verifyAudit(dataDir, ["--head", known])).code).toBe(0);

    const copy = await tampered((db) => {
      db.prepare("DELETE FROM audit_records WHERE seq > ?").run((head?.seq ?? 0) - 3);
    });
    // The documented limit: the rest of the chain is intact.
    const alone = await verifyAudit(copy);
    expect(alone.code).toBe(0);
    expect(alone.report.verified).toBe((head?.seq ?? 0) - 3);
    // Against the head recorded elsewhere, the cut shows.
    const against = await verifyAudit(copy, ["--head", known]);
    expect(against.code).toBe(1);
    expect(against.report).toMatchObject({ ok: false, broken_at: (head?.seq ?? 0) - 2 });
    expect(against.report.reason).toMatch(/removed from its end/);
    // A malformed --head is a usage error.
    const bad = await runCli(["audit", "verify", "--head", "12:nothex"], dataDir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--head must be <seq>:<hash>/);
  });
});

describe("two servers on one data directory", () => {
  const servers: ServeProcess[] = [];

  afterAll(() => {
    for (const server of servers) killIfRunning(server);
  });

  it("keep one valid chain while writing concurrently, with every request recorded", async () => {
    const shared = await tempDataDir();
    dirs.push(shared);
    // Both start at once on a new data directory: one bootstraps it, neither fails.
    servers.push(...(await Promise.all([spawnServe(shared), spawnServe(shared)])));
    const { token, project_id: project } = await readBootstrap(shared);
    const credentials = await cliJson<unknown[]>(["credentials", "list"], shared);
    expect(credentials).toHaveLength(1);

    const requestIds: string[] = [];
    const serverOf = new Map<string, ServeProcess>();
    const until = Date.now() + 1500;
    const worker = async (server: ServeProcess) => {
      while (Date.now() < until) {
        const answer = await postJson(
          `${server.url}/v1.0/${project}/kms/list-keys`,
          { limit: "1" },
          { "x-auth-token": token },
        );
        expect(answer.status, answer.text).toBe(200);
        requestIds.push(answer.requestId);
        serverOf.set(answer.requestId, server);
      }
    };
    await Promise.all(
      servers.flatMap((server) => [worker(server), worker(server), worker(server)]),
    );
    for (const server of servers) server.proc.kill("SIGTERM");
    for (const server of servers) expect(await server.exited).toEqual({ code: 0, signal: null });

    const { code, report } = await verifyAudit(shared);
    expect(code, JSON.stringify(report)).toBe(0);
    const { records: trail } = await exportAudit(shared);
    expect(report.verified).toBe(trail.length);
    const recorded = new Set(trail.map((record) => record.request_id));
    expect(requestIds.length).toBeGreaterThan(50);
    expect(requestIds.filter((id) => !recorded.has(id))).toEqual([]);
    const listRecords = trail.filter((record) => record.operation === "ListKeys");
    expect(listRecords).toHaveLength(requestIds.length);
    // The two writers really wrote at the same time: their batches interleave in the chain.
    let switches = 0;
    listRecords.forEach((record, index) => {
      const previous = listRecords[index - 1];
      if (previous && serverOf.get(previous.request_id) !== serverOf.get(record.request_id)) {
        switches++;
      }
    });
    expect(switches).toBeGreaterThan(2);
  });
});
