import http from "node:http";
import net from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseRequestHead } from "../../src/transport/http1/request-head.js";
import { createKey, type RunningKmsd, startKmsd, testToken } from "../support/kmsd.js";

/**
 * Mangled request bytes against kmsd's HTTP/1.1 path, which parses plain
 * request heads itself (src/transport/http1/) and leaves the rest to
 * node's parser. Two properties:
 * - every request kmsd's parser reads, node's parser reads identically
 *   (method, target, headers, body): the two never disagree on where a
 *   request ends, which is what request smuggling exploits;
 * - the server answers the bytes with whole HTTP/1.1 answers, never a
 *   server error, as many as node's own server finds requests, and stays up.
 */
const PROJECT = "phttp1fuzz";
const SLOW_CLIENT_MS = 1500;
let kmsd: RunningKmsd;
/**
 * node's own http server, answering 200 to every request it reads whole:
 * the reference for where requests begin and end.
 */
let reference: http.Server;
let referencePort: number;
interface ReadRequest {
  readonly method: string;
  readonly target: string;
  readonly headers: Record<string, unknown>;
  readonly body: string;
}
/** The requests the reference read whole, in order (one connection at a time). */
let readByNode: ReadRequest[] = [];
let validRequest: string;
/** The valid request, asking the server to close the connection once it has answered. */
let lastRequest: string;

beforeAll(async () => {
  kmsd = await startKmsd({ slowClientTimeoutMs: SLOW_CLIENT_MS });
  reference = http.createServer(
    {
      headersTimeout: SLOW_CLIENT_MS,
      requestTimeout: SLOW_CLIENT_MS,
      connectionsCheckingInterval: 100,
    },
    (request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        readByNode.push({
          method: request.method ?? "",
          target: request.url ?? "",
          headers: { ...request.headers },
          body: Buffer.concat(chunks).toString("latin1"),
        });
        response.end("ok");
      });
    },
  );
  await new Promise<void>((resolve) => reference.listen(0, "127.0.0.1", resolve));
  referencePort = (reference.address() as net.AddressInfo).port;
  const token = await testToken(kmsd.config, PROJECT);
  const keyId = await createKey(kmsd.config, PROJECT, "fuzz");
  const body = JSON.stringify({ key_id: keyId, plain_text: "fuzz" });
  validRequest =
    `POST /v1.0/${PROJECT}/kms/encrypt-data HTTP/1.1\r\nHost: kms\r\nX-Auth-Token: ${token}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  lastRequest = validRequest.replace("Host: kms", "Host: kms\r\nConnection: close");
});

afterAll(async () => {
  reference.closeAllConnections();
  reference.close();
  await kmsd.stop();
});

/** Sends the bytes, then waits until the server closes or goes quiet; returns everything it sent back. */
function exchange(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    let quiet: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(quiet);
      socket.destroy();
      resolve(received);
    };
    const rearm = () => {
      clearTimeout(quiet);
      quiet = setTimeout(done, 3000);
    };
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      rearm();
    });
    socket.on("error", done);
    socket.on("close", done);
    socket.on("connect", () => {
      socket.write(bytes);
      rearm();
    });
  });
}

/**
 * The status codes of the final answers in a received byte stream (bodies
 * skipped by length; interim 1xx answers, which a server may or may not
 * send for Expect: 100-continue, left out).
 */
function statuses(received: string): number[] {
  const found: number[] = [];
  let rest = received;
  for (;;) {
    const match = /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n/.exec(rest);
    if (match === null) return found;
    const status = Number(match[1]);
    if (status >= 200) found.push(status);
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) return found;
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(rest.slice(0, end))?.[1] ?? 0);
    rest = rest.slice(end + 4 + length);
  }
}

const mutation = fc.oneof(
  fc.record({
    kind: fc.constant("replace" as const),
    at: fc.nat(),
    byte: fc.constantFrom(0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x00, 0x7f, 0xff, 0x41, 0x2c),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    text: fc.constantFrom(
      "\r\n",
      "\n",
      "\r",
      " ",
      "\r\nContent-Length: 5",
      "\r\nTransfer-Encoding: chunked",
      "\r\nX-A: 1\r\nx-a: 2",
      "\r\nConnection: close",
      "\r\nExpect: 100-continue",
      "\r\n folded",
      "0",
    ),
  }),
  fc.record({
    kind: fc.constant("delete" as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 4 }),
  }),
  // A header line of its own, at a line end: where framing headers matter.
  fc.record({
    kind: fc.constant("header" as const),
    line: fc.nat(),
    text: fc.constantFrom(
      "Content-Length: 0",
      "Content-Length: 1",
      "Content-Length: 5",
      "content-length: 99999999",
      "Content-Length: 007",
      "Content-Length:",
      "Transfer-Encoding: chunked",
      "Transfer-Encoding: identity",
      "Connection: close",
      "Connection: keep-alive, Upgrade",
      "Expect: 100-continue",
      "Host: other",
      " continued",
      "X-Empty:",
      "Bad Name: x",
      "X-Tab:\tvalue\t",
    ),
  }),
  fc.record({
    kind: fc.constant("length" as const),
    value: fc.oneof(fc.constantFrom(0, 1, 2), fc.integer({ min: 0, max: 400 })),
  }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer Value> ? Value : never;

function mutate(text: string, mutations: readonly Mutation[]): Buffer {
  const bytes = [...Buffer.from(text, "latin1")];
  for (const change of mutations) {
    if (change.kind === "header") {
      const lineEnds = lineEndsOf(bytes);
      const at = lineEnds[change.line % lineEnds.length] ?? 0;
      bytes.splice(at, 0, ...Buffer.from(`\r\n${change.text}`, "latin1"));
    } else if (change.kind === "length") {
      const text = Buffer.from(bytes).toString("latin1");
      const changed = text.replace(/Content-Length: \d+/, `Content-Length: ${change.value}`);
      bytes.splice(0, bytes.length, ...Buffer.from(changed, "latin1"));
    } else {
      const at = change.at % (bytes.length + 1);
      if (change.kind === "replace") bytes[Math.min(at, bytes.length - 1)] = change.byte;
      else if (change.kind === "insert") bytes.splice(at, 0, ...Buffer.from(change.text, "latin1"));
      else bytes.splice(at, change.count);
    }
  }
  return Buffer.from(bytes);
}

/** Where each line of the head ends (the offset of its CR). */
function lineEndsOf(bytes: readonly number[]): number[] {
  const ends: number[] = [];
  for (let index = 0; index + 1 < bytes.length; index++) {
    if (bytes[index] === 0x0d && bytes[index + 1] === 0x0a) {
      ends.push(index);
      if (bytes[index + 2] === 0x0d) break;
    }
  }
  return ends;
}

/**
 * The requests kmsd's own parser reads from the start of the bytes, framed
 * as the connection frames them, up to the first one it leaves to node.
 */
function readByKmsd(bytes: Buffer): ReadRequest[] {
  const read: ReadRequest[] = [];
  let rest = bytes;
  for (;;) {
    const head = parseRequestHead(rest, kmsd.config.maxHeaderBytes);
    if (head.kind !== "head" || rest.length < head.length + head.contentLength) return read;
    const end = head.length + head.contentLength;
    read.push({
      method: head.method,
      target: head.target,
      headers: { ...head.headers },
      body: rest.toString("latin1", head.length, end),
    });
    if (!head.keepAlive) return read;
    rest = rest.subarray(end);
  }
}

describe("HTTP/1.1 under mangled requests", () => {
  it("frames every request kmsd reads itself exactly as node's parser does", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
        const sent = Buffer.concat([mutate(validRequest, mutations), Buffer.from(lastRequest)]);
        readByNode = [];
        await exchange(referencePort, sent);
        const ours = readByKmsd(sent);
        // Where kmsd reads a request itself, node reads the same one: same
        // method, target, headers and body, so the next starts in the same place.
        expect(readByNode.slice(0, ours.length)).toEqual(ours);
      }),
      { numRuns: 300 },
    );
  }, 120_000);

  it("answers every request well-formed, never a server error, and keeps requests apart", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
        const mangled = mutate(validRequest, mutations);
        const received = await exchange(
          kmsd.port,
          Buffer.concat([mangled, Buffer.from(lastRequest)]),
        );
        const answered = statuses(received);
        // Whatever came back is a sequence of whole HTTP/1.1 answers.
        if (received !== "") expect(answered.length).toBeGreaterThan(0);
        for (const status of answered) expect(status).toBeLessThan(500);
        // At most one answer per request sent: two, or three when a
        // mutation split the first in two.
        expect(answered.length).toBeLessThanOrEqual(3);
      }),
      { numRuns: 200 },
    );
    // Still serving.
    expect(statuses(await exchange(kmsd.port, Buffer.from(lastRequest)))).toEqual([200]);
    expect(statuses(await exchange(kmsd.port, Buffer.from(validRequest + lastRequest)))).toEqual([
      200, 200,
    ]);
  }, 120_000);
});
