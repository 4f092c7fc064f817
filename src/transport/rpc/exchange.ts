import type {
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from "node:http";
import http2, { type ServerHttp2Stream } from "node:http2";
import { type BodyLimits, readStream } from "../read-body.js";

/**
 * One request/response exchange as the unary fast paths need it, over a raw
 * HTTP/2 stream or an HTTP/1.1 request: the fast paths stay independent of
 * which, and pay for neither node's http2 compatibility layer nor Connect's
 * streaming machinery.
 */
export interface Exchange {
  readonly headers: IncomingHttpHeaders;
  readBody(limits: BodyLimits): Promise<Buffer>;
  /** Answers with a body, then trailers (HTTP/2 only; ignored by HTTP/1.1). */
  respond(
    status: number,
    headers: OutgoingHttpHeaders,
    body: Uint8Array | string,
    trailers?: OutgoingHttpHeaders,
  ): void;
  /** Answers with headers alone, ending the exchange (gRPC's trailers-only). */
  respondHeadersOnly(status: number, headers: OutgoingHttpHeaders): void;
  /**
   * Makes the answer the last thing this request gets (a body too large or
   * too slow is not read further): HTTP/2 resets the stream once answered,
   * HTTP/1.1 answers with Connection: close and closes the connection.
   * Call before answering.
   */
  closeAfterAnswer(): void;
  /** True once the client went away or the answer was sent. */
  readonly done: boolean;
  /** Aborted when the client goes away first. */
  readonly signal: AbortSignal | undefined;
}

/**
 * A request of node's http2 compatibility layer as an Exchange: the streams
 * kmsd's own HTTP/2 relays to node's server (see http2/node-relay.ts) reach
 * the REST gateway this way.
 */
export class Http2Exchange implements Exchange {
  private controller: AbortController | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
  ) {
    // A client that resets the stream with an error code (a client-side
    // deadline, say) makes it emit 'error'; unheard, that would crash the
    // process. The exchange learns of it through 'close' (signal, done).
    stream.on("error", ignoreStreamError);
  }

  readBody(limits: BodyLimits): Promise<Buffer> {
    return readStream(this.stream, limits, this.headers["content-length"]);
  }

  get done(): boolean {
    return this.stream.destroyed || this.stream.headersSent;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = new AbortController();
      this.controller = controller;
      this.stream.once("close", () => {
        if (!this.stream.headersSent) controller.abort(new Error("the client cancelled the call"));
      });
    }
    return this.controller.signal;
  }

  respond(
    status: number,
    headers: OutgoingHttpHeaders,
    body: Uint8Array | string,
    trailers?: OutgoingHttpHeaders,
  ): void {
    if (this.done) return;
    const stream = this.stream;
    if (trailers === undefined) {
      stream.respond({ ":status": status, ...headers });
      // Not end(body): the client has ended its side, so the body's END_STREAM
      // closes the stream, and node destroys it before the write's completion
      // arrives; node's writable then builds an ERR_STREAM_DESTROYED, stack
      // trace and all, for nobody (~5% of a Connect h2c request's CPU,
      // docs/benchmarks.md). Ending once the body is written costs an empty
      // DATA frame instead.
      stream.write(body, endUnlessFailed(stream));
      return;
    }
    stream.respond({ ":status": status, ...headers }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers(trailers));
    stream.end(body);
  }

  respondHeadersOnly(status: number, headers: OutgoingHttpHeaders): void {
    if (this.done) return;
    // One HEADERS frame ending the stream: what gRPC clients read as trailers-only.
    this.stream.respond({ ":status": status, ...headers }, { endStream: true });
  }

  closeAfterAnswer(): void {
    const stream = this.stream;
    // After a complete answer, NO_ERROR tells the client to stop sending
    // (RFC 9113 §8.1) without discarding the answer it already has. The
    // answer must be on the wire first: node writes a session's frames from
    // an immediate it schedules when they are queued, and on Node 22 an
    // RST_STREAM submitted at 'finish' went out ahead of the answer's
    // HEADERS, which clients then never saw ("Received RST_STREAM with code
    // 0"). An immediate of our own runs after node's.
    const close = () => setImmediate(() => stream.close(http2.constants.NGHTTP2_NO_ERROR));
    if (stream.headersSent) close();
    else stream.once("finish", close);
  }
}

function ignoreStreamError(): void {}

/** A write callback that ends the stream, unless the write failed (the stream is gone then). */
function endUnlessFailed(stream: ServerHttp2Stream): (error: Error | null | undefined) => void {
  return (error) => {
    if (error == null) stream.end();
  };
}

export class Http1Exchange implements Exchange {
  constructor(
    private readonly request: IncomingMessage,
    private readonly response: ServerResponse,
  ) {}

  get headers(): IncomingHttpHeaders {
    return this.request.headers;
  }

  readBody(limits: BodyLimits): Promise<Buffer> {
    return readStream(this.request, limits, this.request.headers["content-length"]);
  }

  get done(): boolean {
    return this.response.headersSent || this.response.destroyed;
  }

  get signal(): AbortSignal | undefined {
    return undefined;
  }

  respond(status: number, headers: OutgoingHttpHeaders, body: Uint8Array | string): void {
    if (this.done) return;
    this.response.writeHead(status, {
      ...headers,
      "content-length": typeof body === "string" ? Buffer.byteLength(body) : body.length,
    });
    this.response.end(body);
  }

  respondHeadersOnly(status: number, headers: OutgoingHttpHeaders): void {
    if (this.done) return;
    this.response.writeHead(status, { ...headers, "content-length": 0 });
    this.response.end();
  }

  closeAfterAnswer(): void {
    closeAfterAnswer(this.request, this.response);
  }
}

/**
 * HTTP/1.1: answers with Connection: close and closes the connection once
 * the answer is out, for an answer given before the request body was read
 * whole. Call before the answer's head is written.
 */
export function closeAfterAnswer(request: IncomingMessage, response: ServerResponse): void {
  // The client must not send another request on this connection either.
  response.shouldKeepAlive = false;
  response.setHeader("connection", "close");
  // node may have let go of the socket already (it closes it itself after Connection: close).
  response.once("finish", () => request.socket?.destroySoon());
}

/**
 * connect-node answers some requests before reading their body whole (a
 * body over its limit), then leaves the rest unread: the connection would
 * wait for a body nobody reads, and the client's next request on it would
 * hang until the slow-client timeout. Such an answer closes the connection,
 * as kmsd's own paths do.
 */
export function closeIfAnsweredEarly(request: IncomingMessage, response: ServerResponse): void {
  const writeHead = response.writeHead.bind(response) as (...args: unknown[]) => ServerResponse;
  Object.assign(response, {
    writeHead(...args: unknown[]) {
      if (!request.complete) closeAfterAnswer(request, response);
      return writeHead(...args);
    },
  });
}
