import { createHash, type Hash, randomUUID } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { performance } from "node:perf_hooks";
import type { CallInfo, Protocol } from "./call-info.js";
import type { NodeRequest } from "./read-body.js";

/** Bytes of the gRPC / gRPC-Web envelope prefix: a flags byte and a u32 length. */
const ENVELOPE_PREFIX = 5;
const EMPTY_SHA256 = createHash("sha256").digest("hex");

/** A call arriving over node's http or http2 server. */
export class NodeCall implements CallInfo {
  readonly requestId = randomUUID();
  readonly receivedAt = performance.now();
  readonly receivedAtMs = Date.now();
  audited = false;
  private body: Uint8Array | undefined;
  private tapHash: Hash | undefined;
  private digest: string | undefined;

  constructor(
    private readonly headers: IncomingHttpHeaders,
    readonly httpMethod: string,
    readonly rawTarget: string,
    readonly protocol: Protocol,
  ) {}

  static fromRequest(request: NodeRequest, protocol: Protocol): NodeCall {
    return new NodeCall(request.headers, request.method ?? "GET", request.url ?? "/", protocol);
  }

  header(name: string): string | undefined {
    const value = this.headers[name] ?? (name === "host" ? this.headers[":authority"] : undefined);
    return Array.isArray(value) ? value.join(", ") : value;
  }

  markAudited(): void {
    this.audited = true;
  }

  /** gRPC status the connect-node path answered (see http-handler.ts). */
  grpcStatus: string | undefined;

  /** The request message bytes, when the transport read them itself. */
  setBody(body: Uint8Array): void {
    this.body = body;
  }

  /**
   * Hashes the body as connect-node reads it, without buffering it, by
   * wrapping the request's async iterator (how connect-node reads a body).
   * A 'data' listener would not do: it switches the stream to flowing mode,
   * and chunks that flow before the handler starts reading would be lost.
   */
  tapBody(request: NodeRequest): void {
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
    if (this.digest === undefined) {
      if (this.body !== undefined)
        this.digest = createHash("sha256").update(this.body).digest("hex");
      else if (this.tapHash !== undefined) this.digest = this.tapHash.digest("hex");
      else this.digest = EMPTY_SHA256;
    }
    return this.digest;
  }
}
