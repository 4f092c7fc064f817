import net from "node:net";
import { expect } from "vitest";
import type { KmsdConfig } from "../../src/config/settings.js";
import { testToken } from "../support/kmsd.js";

/** Huawei's REST content type, answered on every JSON response. */
export const JSON_CONTENT_TYPE = "application/json;charset=UTF-8";

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The parsed body; undefined when it is not JSON. */
  readonly json: unknown;
  readonly requestId: string | null;
}

export interface CallOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
}

/** A running kmsd: where it listens and the configuration of its store. */
export interface Target {
  readonly url: string;
  readonly config: KmsdConfig;
}

/** An admin X-Auth-Token for the project (see testToken). */
export function tokenFor(target: Target, project: string): Promise<string> {
  return testToken(target.config, project);
}

/**
 * Sends a request to kmsd's REST API. A string body is sent as is (so that
 * broken JSON can be sent); anything else is JSON-encoded; undefined sends
 * no body.
 */
export async function request(
  baseUrl: string,
  path: string,
  body?: unknown,
  options: CallOptions = {},
): Promise<Reply> {
  const method = options.method ?? "POST";
  const init: RequestInit = {
    method,
    headers: { "content-type": "application/json", ...options.headers },
  };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const response = await fetch(`${baseUrl}${path}`, init);
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return {
    status: response.status,
    headers: response.headers,
    text,
    json,
    requestId: response.headers.get("x-request-id"),
  };
}

export interface KmsCallOptions extends CallOptions {
  /** The X-Auth-Token to send: by default an admin token of `project`; null sends none. */
  readonly token?: string | null;
}

/** POST /v1.0/{project}/kms/{operation}, authenticated with an admin token of the project. */
export async function kms(
  target: Target,
  project: string,
  operation: string,
  body?: unknown,
  options: KmsCallOptions = {},
): Promise<Reply> {
  const token = options.token === undefined ? await tokenFor(target, project) : options.token;
  const headers = { ...options.headers, ...(token === null ? {} : { "x-auth-token": token }) };
  return request(target.url, `/v1.0/${project}/kms/${operation}`, body, {
    ...options,
    headers,
  });
}

/** A string field of a JSON object, following a path of names. */
export function str(value: unknown, ...path: string[]): string {
  let current = value;
  for (const name of path) {
    expect(typeof current, `${path.join(".")}: parent of ${name}`).toBe("object");
    current = (current as Record<string, unknown>)[name];
  }
  expect(typeof current, path.join(".")).toBe("string");
  return current as string;
}

/** Asserts a 200 with Huawei's JSON content type and a request id; returns the body. */
export function expectOk(reply: Reply): unknown {
  expect(reply.status, reply.text).toBe(200);
  expect(reply.headers.get("content-type")).toBe(JSON_CONTENT_TYPE);
  expect(reply.requestId).toMatch(UUID);
  return reply.json;
}

/**
 * Asserts Huawei's nested service error body, exactly
 * {"error":{"error_code","error_msg"}}; returns error_msg.
 */
export function expectError(reply: Reply, status: number, code: string): string {
  expect({ status: reply.status, body: reply.json }, reply.text).toEqual({
    status,
    body: { error: { error_code: code, error_msg: expect.any(String) } },
  });
  expect(reply.headers.get("content-type")).toBe(JSON_CONTENT_TYPE);
  expect(reply.requestId).toMatch(UUID);
  const message = str(reply.json, "error", "error_msg");
  expect(message.length).toBeGreaterThan(0);
  return message;
}

/** Asserts Huawei's flat API gateway error body, whose request_id is the X-Request-Id header. */
export function expectFlatError(reply: Reply, status: number, code: string): string {
  expect(reply.requestId).toMatch(UUID);
  expect({ status: reply.status, body: reply.json }, reply.text).toEqual({
    status,
    body: { error_code: code, error_msg: expect.any(String), request_id: reply.requestId },
  });
  expect(reply.headers.get("content-type")).toBe(JSON_CONTENT_TYPE);
  return str(reply.json, "error_msg");
}

/** Creates a key over REST; returns its id. */
export async function createKeyRest(
  target: Target,
  project: string,
  alias: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const body = expectOk(await kms(target, project, "create-key", { key_alias: alias, ...extra }));
  return str(body, "key_info", "key_id");
}

export async function encrypt(
  target: Target,
  project: string,
  keyId: string,
  plainText: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const body = expectOk(
    await kms(target, project, "encrypt-data", { key_id: keyId, plain_text: plainText, ...extra }),
  );
  return str(body, "cipher_text");
}

export interface RawExchange {
  /** Everything the server sent. */
  readonly response: string;
  /** Body bytes the client had handed to the kernel when the first response byte arrived. */
  readonly sentAtResponse: number;
  /** Body bytes handed to the kernel when the connection closed (or the wait ended). */
  readonly sentAtClose: number;
  /** Whether the server closed the connection before the wait ended. */
  readonly closed: boolean;
  /** Milliseconds from connecting to the close (or to the end of the wait). */
  readonly elapsedMs: number;
}

/**
 * Opens a raw TCP connection, sends `head` and then, slowly, body chunks
 * from `nextChunk` (until it returns undefined), never queueing more than one
 * chunk in user space so the counts are what really left. Resolves when the
 * server closes the connection or after `waitMs`.
 */
export function slowUpload(
  port: number,
  head: string,
  nextChunk: (sentSoFar: number) => Buffer | undefined,
  options: { intervalMs: number; waitMs: number },
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, "127.0.0.1");
    const received: Buffer[] = [];
    let sent = 0;
    let sentAtResponse = -1;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      clearTimeout(deadline);
      socket.destroy();
      resolve({
        response: Buffer.concat(received).toString("utf8"),
        sentAtResponse,
        sentAtClose: sent,
        closed,
        elapsedMs: Date.now() - started,
      });
    };
    const deadline = setTimeout(() => finish(false), options.waitMs);
    socket.on("data", (chunk: Buffer) => {
      if (sentAtResponse < 0) sentAtResponse = sent;
      received.push(chunk);
    });
    // EPIPE / ECONNRESET once the server has gone: the close that follows ends the exchange.
    socket.on("error", () => {});
    socket.on("end", () => finish(true));
    socket.on("close", () => finish(true));
    socket.on("connect", () => {
      socket.write(head);
      timer = setInterval(() => {
        if (done || socket.destroyed || !socket.writable || socket.writableLength > 0) return;
        const chunk = nextChunk(sent);
        if (chunk === undefined) {
          clearInterval(timer);
          return;
        }
        socket.write(chunk);
        sent += chunk.length;
      }, options.intervalMs);
    });
  });
}

/** Splits a raw HTTP/1.1 response into status, lower-cased headers and body. */
export function parseRawResponse(raw: string): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  const split = raw.indexOf("\r\n\r\n");
  expect(
    split,
    `no complete response head in ${JSON.stringify(raw.slice(0, 200))}`,
  ).toBeGreaterThan(0);
  const [statusLine = "", ...headerLines] = raw.slice(0, split).split("\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers, body: raw.slice(split + 4) };
}
