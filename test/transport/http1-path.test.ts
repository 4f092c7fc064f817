import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey, type RunningKmsd, startKmsd, testToken } from "../support/kmsd.js";

/**
 * kmsd's own HTTP/1.1 path (src/transport/http1/) against raw bytes: what
 * clients do that fetch never shows (pipelining, bodies in chunks, split
 * heads, early answers), and the hand-over to node's http server.
 */
const PROJECT = "phttp1";
let kmsd: RunningKmsd;
let token: string;
let keyId: string;

beforeAll(async () => {
  kmsd = await startKmsd({ maxBodyBytes: 4096 });
  token = await testToken(kmsd.config, PROJECT);
  keyId = await createKey(kmsd.config, PROJECT, "http1");
});

afterAll(() => kmsd.stop());

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A connection that sends raw bytes and reads answers one at a time (Content-Length bodies). */
class RawClient {
  private received = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  readonly socket: net.Socket;

  constructor(port: number) {
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.on("data", (chunk) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake();
    });
    this.socket.on("error", () => {});
    this.socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  async answer(): Promise<Answer> {
    for (;;) {
      const parsed = this.take();
      if (parsed !== undefined) return parsed;
      if (this.closed) throw new Error(`closed; unread: ${this.received.toString("latin1")}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** The status of the next answer's head, which announces a body it does not carry (HEAD). */
  async headOnly(): Promise<number> {
    for (;;) {
      const end = this.received.indexOf("\r\n\r\n");
      if (end >= 0) {
        const status = Number(this.received.toString("latin1", 0, end).split(" ")[1]);
        this.received = this.received.subarray(end + 4);
        return status;
      }
      if (this.closed) throw new Error("closed");
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  async closedByServer(): Promise<boolean> {
    while (!this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return true;
  }

  private take(): Answer | undefined {
    const end = this.received.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const [statusLine, ...lines] = this.received.toString("latin1", 0, end).split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers["content-length"] ?? 0);
    if (this.received.length < end + 4 + length) return undefined;
    const body = this.received.toString("utf8", end + 4, end + 4 + length);
    this.received = this.received.subarray(end + 4 + length);
    return { status: Number(statusLine?.split(" ")[1]), headers, body };
  }
}

function encryptRequest(plainText: string, extraHeaders = ""): string {
  const body = JSON.stringify({ key_id: keyId, plain_text: plainText });
  return (
    `POST /v1.0/${PROJECT}/kms/encrypt-data HTTP/1.1\r\nHost: kms\r\nX-Auth-Token: ${token}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n${body}`
  );
}

/** The plaintext of an EncryptData answer, decrypted over REST. */
async function decrypted(encrypted: Answer): Promise<string> {
  const cipherText = (JSON.parse(encrypted.body) as { cipher_text: string }).cipher_text;
  const response = await fetch(`${kmsd.url}/v1.0/${PROJECT}/kms/decrypt-data`, {
    method: "POST",
    headers: { "x-auth-token": token, "content-type": "application/json" },
    body: JSON.stringify({ cipher_text: cipherText }),
  });
  const json = (await response.json()) as { plain_text: string };
  return json.plain_text;
}

describe("kmsd's HTTP/1.1 path", () => {
  it("answers pipelined requests in order, on one connection", async () => {
    const client = new RawClient(kmsd.port);
    client.send(encryptRequest("first") + encryptRequest("second") + encryptRequest("third"));
    const answers = [await client.answer(), await client.answer(), await client.answer()];
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
    const plainTexts = await Promise.all(answers.map((answer) => decrypted(answer)));
    expect(plainTexts).toEqual(["first", "second", "third"]);
    for (const answer of answers) {
      expect(answer.headers).toMatchObject({
        "content-type": "application/json;charset=UTF-8",
        connection: "keep-alive",
        "keep-alive": "timeout=65",
      });
      expect(answer.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
      expect(Number.isNaN(Date.parse(answer.headers.date ?? ""))).toBe(false);
    }
    client.socket.destroy();
  });

  it.each([
    ["a head in two segments and a body a few bytes at a time", 2],
    // Many segments: node's incremental parser takes the connection over.
    ["a head and body a few bytes at a time", 1000],
  ])("serves a request sent as %s", async (_what, headSegments) => {
    const client = new RawClient(kmsd.port);
    const bytes = Buffer.from(encryptRequest("trickled"));
    const headLength = bytes.indexOf("\r\n\r\n") + 4;
    const cuts = [Math.floor(headLength / 2), headLength];
    if (headSegments > 2) cuts.splice(0, 2);
    for (let offset = 0; offset < bytes.length; ) {
      const next = cuts.shift() ?? offset + 7;
      client.send(bytes.subarray(offset, next));
      offset = next;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const answer = await client.answer();
    expect(answer.status).toBe(200);
    expect(await decrypted(answer)).toBe("trickled");
    client.socket.destroy();
  });

  it("hands a connection to node's http server at a request it leaves to node, and both answer", async () => {
    const client = new RawClient(kmsd.port);
    client.send(encryptRequest("before"));
    expect((await client.answer()).status).toBe(200);
    // A body in chunks: node's server reads it, and keeps the connection.
    const body = JSON.stringify({ key_id: keyId, plain_text: "chunked" });
    const half = Math.floor(body.length / 2);
    client.send(
      `POST /v1.0/${PROJECT}/kms/encrypt-data HTTP/1.1\r\nHost: kms\r\nX-Auth-Token: ${token}\r\n` +
        "Transfer-Encoding: chunked\r\n\r\n" +
        `${half.toString(16)}\r\n${body.slice(0, half)}\r\n` +
        `${(body.length - half).toString(16)}\r\n${body.slice(half)}\r\n0\r\n\r\n`,
    );
    const chunked = await client.answer();
    expect(chunked.status).toBe(200);
    expect(chunked.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(await decrypted(chunked)).toBe("chunked");
    client.send(encryptRequest("after"));
    expect((await client.answer()).status).toBe(200);
    client.socket.destroy();
  });

  it("hands over the operations endpoints and HEAD requests", async () => {
    const client = new RawClient(kmsd.port);
    client.send("GET /healthz HTTP/1.1\r\nHost: kms\r\n\r\n");
    const get = await client.answer();
    expect(get.status).toBe(200);
    expect(get.headers["cache-control"]).toBe("no-store");
    client.send("HEAD /healthz HTTP/1.1\r\nHost: kms\r\n\r\n");
    expect(await client.headOnly()).toBe(200);
    client.send(encryptRequest("after the hand-over"));
    expect((await client.answer()).status).toBe(200);
    client.socket.destroy();
  });

  it("closes the connection after answering a client that asked for it", async () => {
    const client = new RawClient(kmsd.port);
    client.send(encryptRequest("last", "Connection: close\r\n"));
    const answer = await client.answer();
    expect(answer.status).toBe(200);
    expect(answer.headers.connection).toBe("close");
    expect(await client.closedByServer()).toBe(true);
  });

  it("answers Expect: 100-continue with 100 Continue, then the request once its body arrives", async () => {
    const client = new RawClient(kmsd.port);
    const request = encryptRequest("continued", "Expect: 100-continue\r\n");
    const headEnd = request.indexOf("\r\n\r\n") + 4;
    client.send(request.slice(0, headEnd));
    expect(await client.headOnly()).toBe(100);
    client.send(request.slice(headEnd));
    const answer = await client.answer();
    expect(answer.status).toBe(200);
    expect(await decrypted(answer)).toBe("continued");
    client.socket.destroy();
  });

  it("answers a client that half-closes its side after sending its request", async () => {
    const client = new RawClient(kmsd.port);
    client.socket.end(encryptRequest("half-closed"));
    const answer = await client.answer();
    expect(answer.status).toBe(200);
    expect(await decrypted(answer)).toBe("half-closed");
    expect(await client.closedByServer()).toBe(true);
  });

  it("answers a request before its body arrives, skips the body, and serves the next request", async () => {
    const client = new RawClient(kmsd.port);
    // An unknown path is answered without reading the body; the body follows later.
    client.send(
      `POST /v1.0/${PROJECT}/kms/nowhere HTTP/1.1\r\nHost: kms\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n0123456789`,
    );
    const refused = await client.answer();
    expect(refused.status).toBe(404);
    expect(JSON.parse(refused.body)).toMatchObject({ error_code: "APIGW.0101" });
    client.send(`0123456789${encryptRequest("next")}`);
    const next = await client.answer();
    expect(next.status).toBe(200);
    expect(await decrypted(next)).toBe("next");
    client.socket.destroy();
  });

  it("refuses a body over the limit unread (KMS.0203) and closes the connection", async () => {
    const client = new RawClient(kmsd.port);
    client.send(
      `POST /v1.0/${PROJECT}/kms/encrypt-data HTTP/1.1\r\nHost: kms\r\nX-Auth-Token: ${token}\r\n` +
        "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{",
    );
    const answer = await client.answer();
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { error_code: "KMS.0203" } });
    expect(answer.headers.connection).toBe("close");
    expect(await client.closedByServer()).toBe(true);
  });

  it("serves Connect unary calls, errors in Connect's shape", async () => {
    const client = new RawClient(kmsd.port);
    const call = (body: string) =>
      `POST /kms.v1.KmsService/EncryptData HTTP/1.1\r\nHost: kms\r\nX-Auth-Token: ${token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    client.send(
      call(JSON.stringify({ project_id: PROJECT, key_id: keyId, plain_text: "connect" })) +
        call(
          JSON.stringify({
            project_id: PROJECT,
            key_id: "00000000-0000-4000-8000-000000000000",
            plain_text: "x",
          }),
        ),
    );
    const ok = await client.answer();
    expect(ok.status).toBe(200);
    expect(ok.headers["content-type"]).toBe("application/json");
    const refused = await client.answer();
    expect(refused.status).toBe(404);
    expect(JSON.parse(refused.body)).toMatchObject({ code: "not_found" });
    client.socket.destroy();
  });

  it("leaves malformed requests to node, which answers 400 and closes", async () => {
    const client = new RawClient(kmsd.port);
    client.send(
      "POST /v1.0/x HTTP/1.1\r\nHost: kms\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    );
    const answer = await client.answer();
    expect(answer.status).toBe(400);
    expect(await client.closedByServer()).toBe(true);
  });
});
