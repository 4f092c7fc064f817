import { afterAll, describe, expect, it } from "vitest";
import { removeDir, tempDataDir } from "../support/kmsd.js";
import {
  type AuditJson,
  exportAudit,
  killIfRunning,
  postJson,
  readBootstrap,
  type ServeProcess,
  spawnServe,
  verifyAudit,
} from "./cli-helpers.js";

/**
 * What a crash can cost the audit trail (docs/audit.md, "Batching and
 * crashes"): the records of requests answered within the last auditFlushMs
 * milliseconds, plus one write in progress. A graceful stop costs nothing.
 *
 * A real `kmsd serve` process under continuous load is killed; the client
 * notes when each answer arrived (by its own clock, after the server sent
 * it) and when it sent the kill (before the server died), so both
 * measurements err on the side of the server.
 */

const FLUSH_MS = 20;
/**
 * Scheduling slack on top of FLUSH_MS: the flush timer firing late on a busy
 * machine, and the length of the one write in progress.
 */
const MARGIN_MS = 50;
const IN_FLIGHT = 4;
const LOAD_MS = 1200;

interface Answered {
  readonly requestId: string;
  readonly status: number;
  /** Date.now() when the response arrived. */
  readonly arrivedAt: number;
}

const dirs: string[] = [];
const servers: ServeProcess[] = [];

afterAll(async () => {
  for (const server of servers) killIfRunning(server);
  for (const dir of dirs) await removeDir(dir);
});

/** Starts kmsd serve on a new data dir with a known flush interval; gives a key and a token. */
async function serveUnderTest(): Promise<{
  server: ServeProcess;
  dataDir: string;
  encrypt: () => Promise<Answered>;
}> {
  const dataDir = await tempDataDir();
  dirs.push(dataDir);
  const server = await spawnServe(dataDir, {
    KMSD_AUDIT_FLUSH_MS: String(FLUSH_MS),
    KMSD_SHUTDOWN_GRACE_MS: "3000",
  });
  servers.push(server);
  // The getting-started path: the token from the bootstrap file.
  const { token, project_id: project } = await readBootstrap(dataDir);
  const headers = { "x-auth-token": token };
  const created = await postJson(
    `${server.url}/v1.0/${project}/kms/create-key`,
    { key_alias: "load" },
    headers,
  );
  expect(created.status, created.text).toBe(200);
  const keyId = (created.json as { key_info: { key_id: string } }).key_info.key_id;
  const url = `${server.url}/v1.0/${project}/kms/encrypt-data`;
  const body = JSON.stringify({ key_id: keyId, plain_text: "load test" });
  const encrypt = async (): Promise<Answered> => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
    const arrivedAt = Date.now();
    await response.arrayBuffer();
    return {
      requestId: response.headers.get("x-request-id") ?? "",
      status: response.status,
      arrivedAt,
    };
  };
  return { server, dataDir, encrypt };
}

/**
 * Keeps IN_FLIGHT requests going until `stop` resolves and one fails (the
 * server is gone); resolves to every answered request.
 */
async function load(encrypt: () => Promise<Answered>, stop: Promise<void>): Promise<Answered[]> {
  const answered: Answered[] = [];
  let stopping = false;
  void stop.then(() => {
    stopping = true;
  });
  const worker = async () => {
    for (;;) {
      try {
        answered.push(await encrypt());
      } catch {
        if (stopping) return;
        throw new Error("a request failed before the server was stopped");
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return answered;
}

function missingFrom(records: readonly AuditJson[], answered: readonly Answered[]): Answered[] {
  const recorded = new Set(records.map((record) => record.request_id));
  return answered.filter((request) => !recorded.has(request.requestId));
}

describe("audit trail and crashes", () => {
  it(`SIGKILL loses at most the requests answered in the last ${FLUSH_MS} ms (+${MARGIN_MS} ms slack); the rest is a valid chain`, async () => {
    const { server, dataDir, encrypt } = await serveUnderTest();
    let killAt = 0;
    const killed = new Promise<void>((resolve) => {
      setTimeout(() => {
        killAt = Date.now();
        server.proc.kill("SIGKILL");
        resolve();
      }, LOAD_MS);
    });
    const answered = await load(encrypt, killed);
    expect(await server.exited).toEqual({ code: null, signal: "SIGKILL" });
    for (const request of answered) expect(request.status).toBe(200);

    const { code, report } = await verifyAudit(dataDir);
    expect(code, JSON.stringify(report)).toBe(0);
    const { records } = await exportAudit(dataDir);
    expect(report.verified).toBe(records.length);

    const deadline = killAt - (FLUSH_MS + MARGIN_MS);
    const bound = answered.filter((request) => request.arrivedAt <= deadline);
    expect(bound.length, "requests answered well before the kill").toBeGreaterThan(100);
    const lost = missingFrom(records, bound);
    expect(
      lost.map(
        (request) =>
          `${request.requestId} answered ${killAt - request.arrivedAt} ms before the kill`,
      ),
    ).toEqual([]);
    // Whatever was lost was answered in the window just before the kill.
    for (const request of missingFrom(records, answered)) {
      expect(request.arrivedAt).toBeGreaterThan(deadline);
    }
  });

  it("a graceful stop (SIGTERM) under load loses nothing", async () => {
    const { server, dataDir, encrypt } = await serveUnderTest();
    const terminated = new Promise<void>((resolve) => {
      setTimeout(() => {
        server.proc.kill("SIGTERM");
        resolve();
      }, LOAD_MS);
    });
    const answered = await load(encrypt, terminated);
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(answered.length).toBeGreaterThan(100);

    const { code, report } = await verifyAudit(dataDir);
    expect(code, JSON.stringify(report)).toBe(0);
    const { records } = await exportAudit(dataDir);
    expect(missingFrom(records, answered)).toEqual([]);
    // One record per request: the key's creation, then one per answered encrypt.
    const encrypts = records.filter((record) => record.operation === "EncryptData");
    expect(encrypts).toHaveLength(answered.length);
  });
});
