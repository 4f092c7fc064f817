import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { Readable } from "node:stream";
import type { ConnectError } from "@connectrpc/connect";
import { kmsError, toKmsError } from "../errors/kms-error.js";

export type NodeRequest = IncomingMessage | Http2ServerRequest;

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body exceeds ${limit} bytes`);
    this.name = "BodyTooLargeError";
  }
}

/** The client did not send its whole request in time: it is cut off, not answered. */
export class SlowClientError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the request was not received within ${timeoutMs} ms`);
    this.name = "SlowClientError";
  }
}

export interface BodyLimits {
  /** Largest body, in bytes. */
  readonly maxBytes: number;
  /** Longest the client may take to send it, in ms. */
  readonly timeoutMs: number;
}

/**
 * Reads a request body within its limits. A body announced or found to be
 * larger fails with BodyTooLargeError as soon as that is known, without
 * reading (or buffering) the rest of it; one that trickles in for longer
 * than the timeout fails with SlowClientError.
 */
export function readBody(request: NodeRequest, limits: BodyLimits): Promise<Buffer> {
  return readStream(request, limits, request.headers["content-length"]);
}

/** readBody for any readable, given its content-length header. */
export function readStream(
  request: Readable,
  limits: BodyLimits,
  contentLength: string | undefined,
): Promise<Buffer> {
  return collectBody(limits, contentLength, (reader) => {
    const onAborted = () => reader.fail(new Error("client aborted the request"));
    request.on("data", reader.data);
    request.on("end", reader.end);
    request.on("error", reader.fail);
    request.on("aborted", onAborted);
    return (failed) => {
      request.off("data", reader.data);
      request.off("end", reader.end);
      request.off("error", reader.fail);
      request.off("aborted", onAborted);
      if (failed) request.pause();
    };
  });
}

/** Who takes a body, as it arrives. */
export interface BodyReader {
  readonly data: (chunk: Buffer) => void;
  readonly end: () => void;
  readonly fail: (error: Error) => void;
}

/**
 * A body read within its limits, from whatever hands it over: `subscribe`
 * starts giving `reader` the body and returns what stops it (told whether
 * the read failed). A body announced or found to be larger fails with
 * BodyTooLargeError as soon as that is known; one that takes longer than
 * the timeout fails with SlowClientError.
 */
export function collectBody(
  limits: BodyLimits,
  contentLength: string | undefined,
  subscribe: (reader: BodyReader) => (failed: boolean) => void,
): Promise<Buffer> {
  const limit = limits.maxBytes;
  if (Number(contentLength) > limit) return Promise.reject(new BodyTooLargeError(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled: Error | null | undefined;
    let stop: ((failed: boolean) => void) | undefined;
    const settle = (error: Error | null) => {
      if (settled !== undefined) return;
      settled = error;
      clearTimeout(timer);
      stop?.(error !== null);
      if (error === null) resolve(joinChunks(chunks));
      else reject(error);
    };
    const timer = setTimeout(() => settle(new SlowClientError(limits.timeoutMs)), limits.timeoutMs);
    const unsubscribe = subscribe({
      data: (chunk) => {
        if (settled !== undefined) return;
        size += chunk.length;
        if (size > limit) settle(new BodyTooLargeError(limit));
        else chunks.push(chunk);
      },
      end: () => settle(null),
      fail: settle,
    });
    // A source that had the whole body at hand settled before it could be stopped.
    if (settled === undefined) stop = unsubscribe;
    else unsubscribe(settled !== null);
  });
}

/** A body received in chunks, as one Buffer (the only chunk itself when there is one). */
export function joinChunks(chunks: readonly Buffer[]): Buffer {
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
}

/**
 * The answer to a body that could not be read. After a body too large or
 * too slow the connection (HTTP/1.1) or stream (HTTP/2) is closed rather
 * than read further: `cutOff` says so.
 */
export function bodyReadError(reason: unknown): { error: ConnectError; cutOff: boolean } {
  if (reason instanceof BodyTooLargeError) {
    return {
      error: kmsError("KMS.0203", `the request body is larger than ${reason.limit} bytes`),
      cutOff: true,
    };
  }
  if (reason instanceof SlowClientError) {
    return { error: kmsError("KMS.0214", reason.message), cutOff: true };
  }
  return { error: toKmsError(reason), cutOff: false };
}
