import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { Readable } from "node:stream";

export type NodeRequest = IncomingMessage | Http2ServerRequest;

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body exceeds ${limit} bytes`);
    this.name = "BodyTooLargeError";
  }
}

/**
 * Reads a request body of at most `limit` bytes. A body announced or found
 * to be larger fails with BodyTooLargeError as soon as that is known, without
 * reading (or buffering) the rest of it.
 */
export function readBody(request: NodeRequest, limit: number): Promise<Buffer> {
  return readStream(request, limit, request.headers["content-length"]);
}

/** readBody for any readable (an HTTP/2 stream), given its content-length header. */
export function readStream(
  request: Readable,
  limit: number,
  contentLength: string | undefined,
): Promise<Buffer> {
  if (Number(contentLength) > limit) return Promise.reject(new BodyTooLargeError(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        request.pause();
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(
        chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks, size),
      );
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      request.off("data", onData);
      request.off("end", onEnd);
      request.off("error", onError);
      request.off("aborted", onAborted);
    };
    const onAborted = () => onError(new Error("client aborted the request"));
    request.on("data", onData);
    request.on("end", onEnd);
    request.on("error", onError);
    request.on("aborted", onAborted);
  });
}
