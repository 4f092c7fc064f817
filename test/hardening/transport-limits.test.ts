import http2 from "node:http2";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Store } from "../../src/keystore/types.js";
import { createKmsGrpcClient, type GrpcCallError } from "../support/grpc-client.js";
import { createKey, type RunningKmsd, startKmsd, testToken } from "../support/kmsd.js";

/**
 * The limits a KMS facing untrusted networks needs, each configured low
 * here so that it shows: header size, JSON depth, HTTP/2 concurrent
 * streams, the server's request deadline, and slow clients.
 */
const LIMITS = {
  maxHeaderBytes: 4096,
  maxJsonDepth: 8,
  maxConcurrentStreams: 4,
  requestTimeoutMs: 300,
  slowClientTimeoutMs: 600,
};
const PROJECT = "plimits";

/** A store whose key reads take longer than the server's request deadline, on demand. */
function slowKeyReads(state: { slow: boolean }) {
  return (store: Store): Store =>
    new Proxy(store, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (typeof value !== "function") return value;
        // The store keeps private state: its methods run on the store itself.
        if (property !== "getKey") return value.bind(target);
        return async (...args: unknown[]) => {
          if (state.slow) await sleep(LIMITS.requestTimeoutMs * 3);
          return Reflect.apply(value, target, args);
        };
      },
    });
}

let kmsd: RunningKmsd;
let token: string;
let keyId: string;
const slowStore = { slow: false };

beforeAll(async () => {
  kmsd = await startKmsd(LIMITS, { decorateStore: slowKeyReads(slowStore) });
  token = await testToken(kmsd.config, PROJECT);
  keyId = await createKey(kmsd.config, PROJECT, "limits");
});

afterAll(() => kmsd.stop());

function encryptBody(plainText = "12345678"): string {
  return JSON.stringify({ key_id: keyId, plain_text: plainText });
}

/** Sends raw bytes on a new TCP connection and collects what comes back until it closes. */
function rawExchange(
  port: number,
  send: (socket: net.Socket) => Promise<void>,
): Promise<{ received: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
    });
    socket.on("error", () => {});
    socket.once("close", () => resolve({ received, closedAfterMs: Date.now() - started }));
    socket.once("connect", () => send(socket).catch(reject));
  });
}

describe("header size (--max-header-bytes)", () => {
  it("HTTP/1.1: a header block over the limit is 431 and goes no further", async () => {
    const response = await fetch(`${kmsd.url}/v1.0/${PROJECT}/kms/encrypt-data`, {
      method: "POST",
      headers: { "x-auth-token": token, "x-padding": "a".repeat(LIMITS.maxHeaderBytes) },
      body: encryptBody(),
    });
    expect(response.status).toBe(431);
  });

  it("HTTP/1.1: a header block under the limit is served", async () => {
    const response = await fetch(`${kmsd.url}/v1.0/${PROJECT}/kms/encrypt-data`, {
      method: "POST",
      headers: { "x-auth-token": token, "x-padding": "a".repeat(LIMITS.maxHeaderBytes / 4) },
      body: encryptBody(),
    });
    expect(response.status).toBe(200);
  });

  it("HTTP/2: the limit is advertised, and a larger header block is refused", async () => {
    const session = http2.connect(kmsd.url);
    try {
      await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
      expect(session.remoteSettings.maxHeaderListSize).toBe(LIMITS.maxHeaderBytes);
      const stream = session.request(
        {
          ":method": "POST",
          ":path": "/kms.v1.KmsService/EncryptData",
          "content-type": "application/json",
          "x-auth-token": token,
          "x-padding": "a".repeat(LIMITS.maxHeaderBytes * 2),
        },
        { endStream: false },
      );
      const outcome = await new Promise<string>((resolve) => {
        stream.on("response", (headers) => resolve(`status ${headers[":status"]}`));
        stream.on("error", (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
        stream.end(encryptBody());
      });
      expect(outcome).toMatch(/^error /);
    } finally {
      session.destroy();
    }
  });
});

describe("JSON depth (--max-json-depth)", () => {
  const deep = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;

  it("REST: a body nested deeper than the limit is KMS.0214, after authentication", async () => {
    const body = `{"key_id":"${keyId}","plain_text":"x","nested":${deep(LIMITS.maxJsonDepth + 1)}}`;
    const refused = await fetch(`${kmsd.url}/v1.0/${PROJECT}/kms/encrypt-data`, {
      method: "POST",
      headers: { "x-auth-token": token, "content-type": "application/json" },
      body,
    });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: { error_code: "KMS.0214" } });
    // Without a credential the caller learns nothing about the body.
    const anonymous = await fetch(`${kmsd.url}/v1.0/${PROJECT}/kms/encrypt-data`, {
      method: "POST",
      body,
    });
    expect(anonymous.status).toBe(401);
  });

  it("REST: nesting within the limit (inside strings it does not count) is served", async () => {
    const body = `{"key_id":"${keyId}","plain_text":"${"[".repeat(50)}","nested":${deep(LIMITS.maxJsonDepth - 1)}}`;
    const served = await fetch(`${kmsd.url}/v1.0/${PROJECT}/kms/encrypt-data`, {
      method: "POST",
      headers: { "x-auth-token": token, "content-type": "application/json" },
      body,
    });
    expect(served.status).toBe(200);
  });

  it("Connect JSON: a body nested deeper than the limit is invalid_argument with KMS.0214", async () => {
    const response = await fetch(`${kmsd.url}/kms.v1.KmsService/EncryptData`, {
      method: "POST",
      headers: { "x-auth-token": token, "content-type": "application/json" },
      body: `{"project_id":"${PROJECT}","key_id":"${keyId}","plain_text":"x","x":${deep(100)}}`,
    });
    expect(response.status).toBe(400);
    const error = (await response.json()) as {
      code: string;
      details: { debug: { reason: string } }[];
    };
    expect(error.code).toBe("invalid_argument");
    expect(error.details[0]?.debug.reason).toBe("KMS.0214");
  });
});

describe("HTTP/2 concurrent streams (--max-concurrent-streams)", () => {
  it("is advertised, and streams a client opens beyond it are refused", async () => {
    // A client that does not wait for the server's SETTINGS assumes many
    // streams are allowed: the server refuses those over its limit.
    const session = http2.connect(kmsd.url, { peerMaxConcurrentStreams: 100 });
    try {
      const outcomes = await Promise.all(
        Array.from({ length: LIMITS.maxConcurrentStreams * 3 }, () => {
          const stream = session.request({
            ":method": "POST",
            ":path": "/kms.v1.KmsService/EncryptData",
            "content-type": "application/json",
            "x-auth-token": token,
          });
          // Keep each stream open: the body never ends.
          stream.write("{");
          return new Promise<string>((resolve) => {
            stream.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
            stream.on("close", () => resolve(`closed ${stream.rstCode}`));
            setTimeout(() => resolve("open"), 300).unref();
          });
        }),
      );
      expect(session.remoteSettings.maxConcurrentStreams).toBe(LIMITS.maxConcurrentStreams);
      const refused = outcomes.filter((outcome) => outcome !== "open");
      const open = outcomes.filter((outcome) => outcome === "open");
      expect(open.length).toBeLessThanOrEqual(LIMITS.maxConcurrentStreams);
      expect(refused.length).toBeGreaterThanOrEqual(LIMITS.maxConcurrentStreams * 2);
    } finally {
      session.destroy();
    }
  });
});

describe("request deadline (--request-timeout-ms)", () => {
  it("a request still running at the server's deadline is answered DeadlineExceeded, on every protocol", async () => {
    const fresh = await createKey(kmsd.config, PROJECT, "deadline");
    slowStore.slow = true;
    try {
      const started = Date.now();
      const rest = await fetch(`${kmsd.url}/v1.0/${PROJECT}/kms/describe-key`, {
        method: "POST",
        headers: { "x-auth-token": token },
        body: JSON.stringify({ key_id: fresh }),
      });
      expect(Date.now() - started).toBeLessThan(LIMITS.requestTimeoutMs * 3);
      expect(rest.status).toBe(503);
      expect(await rest.json()).toMatchObject({ error: { error_code: "KMS.0104" } });

      const client = createKmsGrpcClient(kmsd.port);
      try {
        const metadata = new grpc.Metadata();
        metadata.set("x-auth-token", token);
        const error = await client
          .call("DescribeKey", { project_id: PROJECT, key_id: fresh }, metadata)
          .then(
            () => undefined,
            (reason: GrpcCallError) => reason,
          );
        expect(error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      } finally {
        client.close();
      }
    } finally {
      slowStore.slow = false;
    }
    // The server is fine afterwards.
    const after = await fetch(`${kmsd.url}/v1.0/${PROJECT}/kms/encrypt-data`, {
      method: "POST",
      headers: { "x-auth-token": token },
      body: encryptBody(),
    });
    expect(after.status).toBe(200);
  });
});

describe("slow clients (--slow-client-timeout-ms)", () => {
  it("HTTP/1.1: a body that trickles in is cut off", async () => {
    const body = encryptBody();
    const { received, closedAfterMs } = await rawExchange(kmsd.port, async (socket) => {
      socket.write(
        `POST /v1.0/${PROJECT}/kms/encrypt-data HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${token}\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      for (const byte of body) {
        if (socket.destroyed) return;
        socket.write(byte);
        await sleep(100);
      }
    });
    expect(received).toMatch(/^HTTP\/1\.1 (408|400)/);
    expect(closedAfterMs).toBeLessThan(LIMITS.slowClientTimeoutMs + 2500);
  });

  it("HTTP/1.1: headers that trickle in are cut off", async () => {
    const { closedAfterMs } = await rawExchange(kmsd.port, async (socket) => {
      for (const byte of `POST /v1.0/${PROJECT}/kms/encrypt-data HTTP/1.1\r\nHost: x\r\n`) {
        if (socket.destroyed) return;
        socket.write(byte);
        await sleep(100);
      }
    });
    expect(closedAfterMs).toBeLessThan(LIMITS.slowClientTimeoutMs + 2500);
  });

  it("a connection that sends nothing is closed", async () => {
    const { received, closedAfterMs } = await rawExchange(kmsd.port, async () => {});
    expect(received).toBe("");
    expect(closedAfterMs).toBeGreaterThanOrEqual(LIMITS.slowClientTimeoutMs - 50);
    expect(closedAfterMs).toBeLessThan(LIMITS.slowClientTimeoutMs + 1500);
  });

  it("HTTP/2: a stream whose body trickles in is reset, the connection keeps serving", async () => {
    const session = http2.connect(kmsd.url);
    try {
      const started = Date.now();
      const stream = session.request({
        ":method": "POST",
        ":path": "/kms.v1.KmsService/EncryptData",
        "content-type": "application/json",
        "x-auth-token": token,
      });
      const ended = new Promise<string>((resolve) => {
        stream.on("response", (headers) => resolve(`status ${headers[":status"]}`));
        stream.on("error", (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
        stream.on("close", () => resolve(`closed ${stream.rstCode}`));
      });
      const trickle = (async () => {
        for (const byte of JSON.stringify({
          project_id: PROJECT,
          key_id: keyId,
          plain_text: "x".repeat(40),
        })) {
          if (stream.closed || stream.destroyed) return;
          stream.write(byte);
          await sleep(100);
        }
      })();
      const outcome = await ended;
      expect(Date.now() - started).toBeLessThan(LIMITS.slowClientTimeoutMs + 1500);
      // Answered (400, KMS.0214) and reset, or reset: either way not left hanging.
      expect(outcome).not.toBe("status 200");
      await trickle;
      // The same connection still serves other streams.
      const next = session.request({
        ":method": "POST",
        ":path": "/kms.v1.KmsService/EncryptData",
        "content-type": "application/json",
        "x-auth-token": token,
      });
      const status = await new Promise<number>((resolve, reject) => {
        next.on("response", (headers) => resolve(Number(headers[":status"])));
        next.on("error", reject);
        next.end(JSON.stringify({ project_id: PROJECT, key_id: keyId, plain_text: "fine" }));
      });
      expect(status).toBe(200);
    } finally {
      session.destroy();
    }
  });
});
