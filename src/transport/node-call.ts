import { createHash, type Hash, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { CallInfo, Protocol } from "./call-info.js";
import type { NodeRequest } from "./read-body.js";

/** Bytes of the gRPC / gRPC-Web envelope prefix: a flags byte and a u32 length. */
const ENVELOPE_PREFIX = 5;

/** A call arriving over node's http or http2 server. */
export class NodeCall implements CallInfo {
  readonly requestId = randomUUID();
  readonly receivedAt = performance.now();
  readonly receivedAtMs = Date.now();
  readonly httpMethod: string;
  readonly rawTarget: string;
  private body: Buffer | undefined;
  private tapHash: Hash | undefined;
  private tapDigest: string | undefined;

  constructor(
    private readonly request: NodeRequest,
    readonly protocol: Protocol,
  ) {
    this.httpMethod = request.method ?? "GET";
    this.rawTarget = request.url ?? "/";
  }

  header(name: string): string | undefined {
    const value =
      this.request.headers[name] ??
      (name === "host" ? this.request.headers[":authority"] : undefined);
    return Array.isArray(value) ? value.join(", ") : value;
  }

  /** The body, when the REST gateway read it whole. */
  setBody(body: Buffer): void {
    this.body = body;
  }

  /**
   * Hashes the body as the RPC layer reads it, without buffering it, by
   * wrapping the request's async iterator (how connect-node reads a body).
   * A 'data' listener would not do: it switches the stream to flowing mode,
   * and chunks that flow before the handler starts reading would be lost.
   */
  tapBody(): void {
    const request = this.request;
    const read = request[Symbol.asyncIterator].bind(request);
    const hash = createHash("sha256");
    let skip = this.protocol === "grpc" || this.protocol === "grpc-web" ? ENVELOPE_PREFIX : 0;
    this.tapHash = hash;
    Object.defineProperty(request, Symbol.asyncIterator, {
      value: async function* tappedBody() {
        for await (const chunk of read() as AsyncIterable<Buffer>) {
          if (skip >= chunk.length) skip -= chunk.length;
          else {
            hash.update(skip > 0 ? chunk.subarray(skip) : chunk);
            skip = 0;
          }
          yield chunk;
        }
      },
    });
  }

  bodyHash(): string {
    if (this.body !== undefined) return createHash("sha256").update(this.body).digest("hex");
    if (this.tapHash !== undefined) {
      this.tapDigest ??= this.tapHash.digest("hex");
      return this.tapDigest;
    }
    return createHash("sha256").digest("hex");
  }
}
