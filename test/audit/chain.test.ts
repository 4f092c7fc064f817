import { createHash } from "node:crypto";
import path from "node:path";
import type BetterSqlite3 from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSqliteDatabase } from "../../src/keystore/sqlite/driver.js";
import { removeDir, startKmsd, tempDataDir } from "../support/kmsd.js";
import { editAuditRecord, editAuditText, rewriteAuditRecords } from "../support/sqlite-audit.js";
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
 * The audit trail is sealed: the last record of every append carries a keyed
 * HMAC over the seal before it and every record since. `kmsd audit verify`
 * accepts a real trail and names where a changed, deleted, reordered or
 * added record breaks it, even when the attacker recomputes seals without
 * the key.
 */

const P = "pchain";
const dirs: string[] = [];
let dataDir: string;
let records: AuditJson[];

/** The first record of the append holding record `seq`: the one after the previous seal. */
function appendStart(seq: number): number {
  const sealedBefore = records.filter((record) => record.seq < seq && record.seal !== null);
  return (sealedBefore.at(-1)?.seq ?? 0) + 1;
}

/** The newest sealed record whose seq is at most `seq`. */
function sealedAtOrBefore(seq: number): AuditJson {
  const found = records.filter((record) => record.seq <= seq && record.seal !== null).at(-1);
  if (found === undefined) throw new Error(`no sealed record at or before ${seq}`);
  return found;
}

/** The seal as kmsd computes it, but with plain SHA-256 instead of the keyed HMAC. */
function unkeyedSeal(prevSeal: string, rows: readonly { seq: number; record: string }[]): string {
  const hash = createHash("sha256").update(`kmsd audit seal v2\n${prevSeal}\n`);
  for (const row of rows) hash.update(`${row.seq}\n${row.record}\n`);
  return hash.digest("hex");
}

/** A fresh copy of the trail's data directory, changed through SQLite by `tamper`. */
async function tampered(tamper: (db: BetterSqlite3.Database) => void): Promise<string> {
  const copy = await copyDataDir(dataDir);
  dirs.push(copy);
  const db = openSqliteDatabase(path.join(copy, "kmsd.db"));
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
    expect(head?.seal).toMatch(/^[0-9a-f]{64}$/);
    const { code, report } = await verifyAudit(dataDir);
    expect(code).toBe(0);
    expect(report).toEqual({
      ok: true,
      verified: records.length,
      head: { seq: head?.seq, seal: head?.seal, time: head?.time },
    });
  });

  it("names the append whose record was changed, and the last good seal before it", async () => {
    const copy = await tampered((db) => {
      editAuditRecord(db, 7, (fields) => {
        fields.outcome = "OK";
        fields.principal = "token:tok-someone-else";
      });
    });
    const { code, report, stderr } = await verifyAudit(copy);
    const start = appendStart(7);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, verified: start - 1, broken_at: start });
    expect(report.reason).toMatch(
      /do(es)? not match (its|their) seal: (it|one of them) was changed/,
    );
    if (start > 1) {
      expect(report.last_good).toMatchObject({ seq: start - 1, seal: records[start - 2]?.seal });
    }
    expect(stderr).toMatch(new RegExp(`breaks at record ${start}`));
  });

  it.each<[string, (db: BetterSqlite3.Database) => void]>([
    [
      "latency",
      (db) =>
        editAuditRecord(db, 10, (f) => Object.assign(f, { latencyUs: Number(f.latencyUs) + 1 })),
    ],
    [
      "context",
      (db) => editAuditRecord(db, 10, (f) => Object.assign(f, { context: { n: "0".repeat(32) } })),
    ],
    ["key id", (db) => editAuditRecord(db, 10, (f) => Object.assign(f, { keyId: "" }))],
    ["text's spacing", (db) => editAuditText(db, 10, (text) => text.replaceAll('","', '", "'))],
  ])("detects a change of the %s alone", async (_name, change) => {
    const copy = await tampered(change);
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({
      ok: false,
      broken_at: appendStart(10),
      verified: appendStart(10) - 1,
    });
  });

  it("names a record whose text is not an audit entry", async () => {
    const copy = await tampered((db) => {
      editAuditText(db, 4, () => "[]");
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, broken_at: 4 });
    expect(report.reason).toMatch(/record 4 is malformed: its text is not a JSON object/);
  });

  it("names the gap a deleted record leaves", async () => {
    const copy = await tampered((db) => {
      rewriteAuditRecords(db, (rows) => rows.filter((row) => row.seq !== 9));
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, verified: appendStart(9) - 1, broken_at: 9 });
    expect(report.reason).toMatch(/record 9 is missing \(next present is 10\)/);
  });

  it("detects a deletion whose gap was closed by renumbering", async () => {
    const copy = await tampered((db) => {
      rewriteAuditRecords(db, (rows) =>
        rows
          .filter((row) => row.seq !== 9)
          .map((row) => (row.seq > 9 ? { ...row, seq: row.seq - 1 } : row)),
      );
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({
      ok: false,
      verified: appendStart(9) - 1,
      broken_at: appendStart(9),
    });
    expect(report.reason).toMatch(/not match (its|their) seal/);
  });

  it("names where two swapped records break the chain", async () => {
    const copy = await tampered((db) => {
      rewriteAuditRecords(db, (rows) => {
        const a = rows.find((row) => row.seq === 5);
        const b = rows.find((row) => row.seq === 8);
        if (a === undefined || b === undefined) throw new Error("no records 5 and 8");
        [a.record, b.record] = [b.record, a.record];
        return undefined;
      });
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({
      ok: false,
      verified: appendStart(5) - 1,
      broken_at: appendStart(5),
    });
    expect(report.reason).toMatch(/not match (its|their) seal/);
  });

  it("detects a change whose seals were recomputed with plain SHA-256: the seals are keyed", async () => {
    const start = appendStart(6);
    const copy = await tampered((db) => {
      // An attacker who can write the store but has no root key rewrites
      // record 6 and reseals every later append without the key.
      editAuditRecord(db, 6, (fields) => {
        fields.outcome = "OK";
      });
      rewriteAuditRecords(db, (rows) => {
        let prev = start === 1 ? "0".repeat(64) : (records[start - 2]?.seal ?? "");
        let open: { seq: number; record: string }[] = [];
        for (const row of rows.filter((r) => r.seq >= start)) {
          open.push(row);
          if (row.seal === null) continue;
          prev = unkeyedSeal(prev, open);
          row.seal = prev;
          open = [];
        }
        return undefined;
      });
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, verified: start - 1, broken_at: start });
  });

  it("names a record its project's reads would miss: the project index changed, the seals intact", async () => {
    const target = records.find((record) => record.project_id === P && record.seq > 5);
    if (target === undefined) throw new Error(`no record of ${P} after 5`);
    const copy = await tampered((db) => {
      db.prepare(
        `DELETE FROM audit_append_projects WHERE project_id = ?
          AND last_seq = (SELECT min(last_seq) FROM audit_appends WHERE last_seq >= ?)`,
      ).run(P, target.seq);
    });
    const { code, report, stderr } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, verified: records.length });
    expect(report.broken_at).toBeLessThanOrEqual(target.seq);
    expect(report.reason).toMatch(
      /project index does not list record \d+'s project \("pchain"\): reads by project would miss it/,
    );
    expect(stderr).toMatch(/breaks at record/);
  });

  it("names records added without a seal after the last one kmsd sealed", async () => {
    const head = records.at(-1);
    const copy = await tampered((db) => {
      rewriteAuditRecords(db, (rows) => {
        const last = rows.at(-1);
        if (last === undefined) throw new Error("an empty trail");
        return [...rows, { ...last, seq: last.seq + 1, seal: null, format: 2 }];
      });
    });
    const { code, report } = await verifyAudit(copy);
    expect(code).toBe(1);
    expect(report).toMatchObject({
      ok: false,
      verified: head?.seq,
      broken_at: (head?.seq ?? 0) + 1,
    });
    expect(report.reason).toMatch(/carry no seal: they were not written by kmsd/);
  });

  it("cutting appends off the end passes alone, but fails against the head verify printed", async () => {
    const { report: before } = await verifyAudit(dataDir);
    const head = before.head;
    expect(head).toBeTruthy();
    const known = `${head?.seq}:${head?.seal}`;
    expect((await verifyAudit(dataDir, ["--head", known])).code).toBe(0);
    const keep = sealedAtOrBefore((head?.seq ?? 0) - 3).seq;

    const copy = await tampered((db) => {
      rewriteAuditRecords(db, (rows) => rows.filter((row) => row.seq <= keep));
    });
    // The documented limit: the rest of the chain is intact.
    const alone = await verifyAudit(copy);
    expect(alone.code).toBe(0);
    expect(alone.report.verified).toBe(keep);
    // Against the head recorded elsewhere, the cut shows.
    const against = await verifyAudit(copy, ["--head", known]);
    expect(against.code).toBe(1);
    expect(against.report).toMatchObject({ ok: false, broken_at: keep + 1 });
    expect(against.report.reason).toMatch(/removed from its end/);
    // A malformed --head is a usage error.
    const bad = await runCli(["audit", "verify", "--head", "12:nothex"], dataDir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--head must be <seq>:<seal>/);
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
    const starting = await Promise.allSettled([spawnServe(shared), spawnServe(shared)]);
    // Kept before a failure is reported, so that afterAll stops the one that did start.
    for (const result of starting) if (result.status === "fulfilled") servers.push(result.value);
    for (const result of starting) if (result.status === "rejected") throw result.reason;
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
