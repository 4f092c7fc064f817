import { readFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseAuditRecord } from "../../src/audit/record-text.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { type KmsdProcess, spawnKmsd } from "../support/cli.js";
import { createKmsGrpcClient, grpc } from "../support/grpc-client.js";
import { createHealthClient } from "../support/health-client.js";
import { type HeldRequest, holdHttp1, holdHttp2 } from "../support/held-requests.js";
import { removeDir, TEST_ROOT_KEY, tempDataDir } from "../support/kmsd.js";

const dirs: string[] = [];
const running: KmsdProcess[] = [];
afterAll(async () => {
  for (const kmsd of running) kmsd.child.kill("SIGKILL");
  for (const dir of dirs) await removeDir(dir);
});

/** Starts `node bin/kmsd.js serve` on a free port; resolves once it serves. */
async function serve(env: Record<string, string>) {
  const dataDir = await tempDataDir();
  dirs.push(dataDir);
  const kmsd = spawnKmsd(["serve"], {
    KMSD_DATA_DIR: dataDir,
    KMSD_ROOT_KEY: TEST_ROOT_KEY,
    KMSD_PORT: "0",
    ...env,
  });
  running.push(kmsd);
  const line = await kmsd.logLine((entry) => entry.msg === "kmsd serving");
  const port = Number(line.port);
  const { token, project_id: project } = JSON.parse(
    await readFile(path.join(dataDir, "bootstrap-credentials.json"), "utf8"),
  ) as { token: string; project_id: string };
  return { kmsd, dataDir, port, token, project, base: `http://127.0.0.1:${port}` };
}

/** How one request of the load ended. */
type Outcome =
  | {
      readonly kind: "answered";
      readonly ok: boolean;
      readonly requestId: string | undefined;
      readonly detail: string;
    }
  | { readonly kind: "no answer"; readonly detail: string };

/** Runs `send` back to back until told to stop or until it gets no answer. */
async function loop(send: () => Promise<Outcome>, outcomes: Outcome[], stop: { now: boolean }) {
  while (!stop.now) {
    const outcome = await send();
    outcomes.push(outcome);
    if (outcome.kind === "no answer") return;
  }
}

function refusedConnection(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe("graceful shutdown of kmsd serve", () => {
  it("answers every request in flight at SIGTERM, refuses new connections, audits every answer, exits 0", async () => {
    const { kmsd, dataDir, port, token, project, base } = await serve({
      KMSD_SHUTDOWN_GRACE_MS: "10000",
      // The load below is one project's, as fast as it goes: not the rate limit's concern here.
      KMSD_RATE_LIMIT_PER_SECOND: "0",
    });
    const answeredIds: string[] = [];
    const created = await fetch(`${base}/v1.0/${project}/kms/create-key`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-auth-token": token },
      body: JSON.stringify({ key_alias: "shutdown" }),
    });
    expect(created.status).toBe(200);
    answeredIds.push(String(created.headers.get("x-request-id")));
    const keyId = ((await created.json()) as { key_info: { key_id: string } }).key_info.key_id;
    const restBody = JSON.stringify({ key_id: keyId, plain_text: "under load" });
    const rpcBody = JSON.stringify({
      project_id: project,
      key_id: keyId,
      plain_text: "under load",
    });

    // Load: REST over keep-alive HTTP/1.1, Connect over h2c, gRPC (grpc-js).
    const stop = { now: false };
    const outcomes: Outcome[] = [];
    const agent = new http.Agent({ keepAlive: true, maxSockets: 6 });
    const restCall = () =>
      new Promise<Outcome>((resolve) => {
        const request = http.request(
          `${base}/v1.0/${project}/kms/encrypt-data`,
          {
            method: "POST",
            agent,
            headers: { "content-type": "application/json", "x-auth-token": token },
          },
          (response) => {
            response.resume();
            response.on("end", () =>
              resolve({
                kind: "answered",
                ok: response.statusCode === 200,
                requestId: response.headers["x-request-id"] as string | undefined,
                detail: `REST ${response.statusCode}`,
              }),
            );
            response.on("error", (error) => resolve({ kind: "no answer", detail: error.message }));
          },
        );
        request.on("error", (error) =>
          resolve({ kind: "no answer", detail: `REST ${error.message}` }),
        );
        request.end(restBody);
      });
    const h2 = http2.connect(base);
    h2.on("error", () => {});
    const connectCall = () =>
      new Promise<Outcome>((resolve) => {
        let stream: http2.ClientHttp2Stream;
        try {
          stream = h2.request({
            ":method": "POST",
            ":path": "/kms.v1.KmsService/EncryptData",
            "content-type": "application/json",
            "x-auth-token": token,
          });
        } catch (error) {
          resolve({ kind: "no answer", detail: `h2 ${(error as Error).message}` });
          return;
        }
        let status = 0;
        let requestId: string | undefined;
        stream.on("response", (headers) => {
          status = Number(headers[":status"]);
          requestId = headers["x-request-id"] as string | undefined;
        });
        stream.resume();
        stream.on("end", () =>
          resolve(
            status === 0
              ? { kind: "no answer", detail: "h2 stream ended without a response" }
              : { kind: "answered", ok: status === 200, requestId, detail: `Connect ${status}` },
          ),
        );
        stream.on("error", (error) =>
          resolve({ kind: "no answer", detail: `h2 ${error.message}` }),
        );
        stream.end(rpcBody);
      });
    const grpcClient = createKmsGrpcClient(port);
    const metadata = new grpc.Metadata();
    metadata.set("x-auth-token", token);
    const grpcCall = async (): Promise<Outcome> => {
      try {
        const reply = await grpcClient.callWithMetadata(
          "EncryptData",
          { project_id: project, key_id: keyId, plain_text: "under load" },
          metadata,
        );
        return {
          kind: "answered",
          ok: true,
          requestId: String(reply.headers.get("x-request-id")[0]),
          detail: "gRPC OK",
        };
      } catch (error) {
        const failure = error as grpc.ServiceError & { responseHeaders?: grpc.Metadata };
        const requestId = failure.responseHeaders?.get("x-request-id")[0];
        // UNAVAILABLE without any response header: the call never reached kmsd.
        return requestId === undefined && failure.code === grpc.status.UNAVAILABLE
          ? { kind: "no answer", detail: `gRPC ${failure.message}` }
          : {
              kind: "answered",
              ok: false,
              requestId: String(requestId),
              detail: `gRPC ${failure.message}`,
            };
      }
    };
    const workers = [
      ...Array.from({ length: 6 }, () => loop(restCall, outcomes, stop)),
      ...Array.from({ length: 6 }, () => loop(connectCall, outcomes, stop)),
      ...Array.from({ length: 4 }, () => loop(grpcCall, outcomes, stop)),
    ];
    await new Promise((resolve) => setTimeout(resolve, 500));

    // Requests certainly in flight at SIGTERM: their heads read, their bodies unfinished.
    const heldSession = http2.connect(base);
    heldSession.on("error", () => {});
    const restHeaders = { "content-type": "application/json", "x-auth-token": token };
    const held: HeldRequest[] = await Promise.all([
      holdHttp1(`${base}/v1.0/${project}/kms/encrypt-data`, restHeaders, restBody),
      holdHttp1(`${base}/v1.0/${project}/kms/encrypt-data`, restHeaders, restBody),
      holdHttp2(heldSession, `/v1.0/${project}/kms/encrypt-data`, restHeaders, restBody),
      holdHttp2(heldSession, "/kms.v1.KmsService/EncryptData", restHeaders, rpcBody),
    ]);
    const health = createHealthClient(`127.0.0.1:${port}`);
    const watch = health.watch("");
    expect(await watch.received(1)).toEqual(["SERVING"]);
    const answeredBefore = outcomes.filter((outcome) => outcome.kind === "answered").length;

    expect(kmsd.child.kill("SIGTERM")).toBe(true);
    // Health turns at once, while requests are still in flight.
    expect(await watch.received(2)).toEqual(["SERVING", "NOT_SERVING"]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await refusedConnection(port)).toBe("ECONNREFUSED");
    expect(kmsd.child.exitCode).toBeNull();

    for (const request of held) request.release();
    const heldReplies = await Promise.all(held.map((request) => request.reply));
    for (const reply of heldReplies) {
      expect(reply.status, reply.body).toBe(200);
      expect(JSON.parse(reply.body)).toMatchObject({ key_id: keyId });
      answeredIds.push(String(reply.requestId));
    }
    stop.now = true;
    await Promise.all(workers);
    const finished = await kmsd.finished;
    health.close();
    grpcClient.close();
    h2.close();
    heldSession.close();
    agent.destroy();

    expect({ code: finished.code, signal: finished.signal }).toEqual({ code: 0, signal: null });
    expect(finished.stderr).toContain("shutting down");
    expect(finished.stderr).toContain('"msg":"stopped"');
    expect(finished.stderr).not.toContain("grace period over");

    // The load was real, and nothing kmsd answered was a failure.
    expect(answeredBefore).toBeGreaterThan(50);
    const answered = outcomes.filter((outcome) => outcome.kind === "answered");
    expect(answered.filter((outcome) => !outcome.ok).map((outcome) => outcome.detail)).toEqual([]);
    for (const kind of ["REST 200", "Connect 200", "gRPC OK"]) {
      expect(
        answered.some((outcome) => outcome.detail === kind),
        kind,
      ).toBe(true);
    }
    for (const outcome of answered) answeredIds.push(String(outcome.requestId));

    // The audit trail holds exactly the requests that were answered: every
    // request kmsd ran got its answer to the client, and none is missing.
    const store = await openSqliteStore({ dataDir });
    try {
      const records = (await store.readAudit({ limit: 1_000_000 })).map(parseAuditRecord);
      expect(records.every((record) => record.outcome === "OK")).toBe(true);
      expect(new Set(records.map((record) => record.requestId))).toEqual(new Set(answeredIds));
      expect(records).toHaveLength(answeredIds.length);
    } finally {
      await store.close();
    }
  }, 60_000);

  it("waits no longer than --shutdown-grace-ms for a request that never finishes, then exits 0", async () => {
    const { kmsd, base, token, project } = await serve({ KMSD_SHUTDOWN_GRACE_MS: "300" });
    const stalled = await holdHttp1(
      `${base}/v1.0/${project}/kms/encrypt-data`,
      { "content-type": "application/json", "x-auth-token": token },
      JSON.stringify({ key_id: "00000000-0000-0000-0000-000000000000", plain_text: "never sent" }),
    );
    const signalled = Date.now();
    kmsd.child.kill("SIGTERM");
    const finished = await kmsd.finished;
    expect({ code: finished.code, signal: finished.signal }).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeLessThan(3000);
    expect(finished.stderr).toContain(
      "shutdown grace period over: closed the connections still open",
    );
    await expect(stalled.reply).rejects.toThrow();
  });
});
