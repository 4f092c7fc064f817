import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import { type BodyLimits, BodyTooLargeError, joinChunks, SlowClientError } from "../read-body.js";
import type { Exchange } from "../rpc/exchange.js";
import { AnswerBatch } from "./answer-batch.js";
import { parseRequestHead, type RequestHead } from "./request-head.js";
import { responseHead } from "./response-head.js";

export interface Http1Options {
  /**
   * Serves a request on kmsd's own path, or returns false to leave the
   * connection, from this request on, to node's http server.
   */
  readonly take: (exchange: Http1Request) => boolean;
  /** Gives node's http server a connection (its unread bytes put back). */
  readonly handOff: (socket: Socket) => void;
  /** Largest request head, in bytes (node answers larger ones 431). */
  readonly maxHeaderBytes: number;
  /** The largest body any request may have: larger ones are refused unread. */
  readonly maxBodyBytes: number;
  /** Time a client has to send a whole request, in ms (then 408, or KMS.0214 for a body). */
  readonly slowClientTimeoutMs: number;
  /** Idle time after which a keep-alive connection is closed, in ms. */
  readonly keepAliveMs: number;
}

const EMPTY = Buffer.alloc(0);
/** Pipelined bytes kept while a request is in flight before the connection stops reading. */
const MAX_UNREAD_BEHIND = 64 * 1024;
/** Segments a request head may arrive in before the connection goes to node's parser. */
const MAX_HEAD_SEGMENTS = 4;
const CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";
// What node's http server writes to a client too slow with its request head.
const REQUEST_TIMEOUT = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n";

/**
 * kmsd's own HTTP/1.1 server for the requests it serves itself (REST and
 * unary Connect calls): node's http server makes a readable and a writable
 * stream, header objects and several callbacks per request, which cost more
 * than the rest of a small request's path. A connection starts here; the
 * first request kmsd does not serve itself, or whose head is not plain
 * HTTP/1.1 (see request-head.ts), hands the connection to node's server,
 * with every byte it has not consumed.
 */
export class Http1Connections {
  private readonly connections = new Set<Connection>();
  private readonly sweep: NodeJS.Timeout;
  private readonly answers = new AnswerBatch();

  constructor(private readonly options: Http1Options) {
    // One timer for all connections, as node's http server checks its own
    // timeouts, rather than one per request.
    const every = Math.max(10, Math.min(1000, options.slowClientTimeoutMs / 2));
    this.sweep = setInterval(() => this.checkTimeouts(), every).unref();
  }

  accept(socket: Socket): void {
    const connection = new Connection(socket, this.options, this.answers, () =>
      this.connections.delete(connection),
    );
    this.connections.add(connection);
    connection.start();
  }

  /** Closes idle connections now and the others once their request is answered. */
  closeIdle(): void {
    for (const connection of this.connections) connection.drain();
  }

  stop(): void {
    clearInterval(this.sweep);
  }

  private checkTimeouts(): void {
    const now = Date.now();
    for (const connection of this.connections) connection.checkTimeouts(now);
  }
}

class Connection {
  /** Received bytes not yet consumed: the next request's, or the current body's. */
  private unread: Buffer = EMPTY;
  private current: Http1Request | undefined;
  /** Body bytes of an answered request still to arrive and be skipped. */
  private skipping = 0;
  /** When the request being received began (0: none); slow-client timeouts count from it. */
  private requestStartedAt = 0;
  private lastActiveAt = Date.now();
  private waitingForDrain = false;
  /** Segments the head being received has arrived in so far, after the first. */
  private headSegments = 0;
  private draining = false;
  private finished = false;

  constructor(
    private readonly socket: Socket,
    private readonly options: Http1Options,
    private readonly answers: AnswerBatch,
    private readonly onFinished: () => void,
  ) {}

  start(): void {
    this.socket.on("data", this.onData);
    this.socket.on("error", this.onError);
    this.socket.on("close", this.onClose);
    this.socket.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    this.unread = this.unread.length === 0 ? chunk : Buffer.concat([this.unread, chunk]);
    if (this.requestStartedAt === 0) this.requestStartedAt = Date.now();
    if (this.current !== undefined) this.feedBody(this.current);
    else this.process();
    // A client pipelining requests faster than they are answered waits.
    if (this.unread.length > MAX_UNREAD_BEHIND && !this.finished) this.socket.pause();
  };

  private readonly onError = (): void => {
    this.socket.destroy();
  };

  private readonly onClose = (): void => {
    this.finish();
    this.current?.clientGone();
  };

  /** Takes the requests received so far, one at a time, as long as none is in flight. */
  private process(): void {
    while (!this.finished && this.current === undefined && !this.waitingForDrain) {
      if (this.skipping > 0) {
        const skipped = Math.min(this.skipping, this.unread.length);
        this.skipping -= skipped;
        this.unread = this.unread.subarray(skipped);
        if (this.skipping > 0) return;
      }
      if (this.unread.length === 0) {
        this.requestStartedAt = 0;
        if (this.draining) this.close();
        return;
      }
      if (this.socket.isPaused()) this.socket.resume();
      const received = this.unread;
      const head = parseRequestHead(received, this.options.maxHeaderBytes);
      if (head.kind === "incomplete") {
        // Clients send a head in one or two segments. One arriving in many
        // (a slow or hostile client) goes to node's incremental parser:
        // parsing it again at every segment here would cost quadratic time.
        if (++this.headSegments > MAX_HEAD_SEGMENTS) this.handOff();
        return;
      }
      this.headSegments = 0;
      if (head.kind === "other") {
        this.handOff();
        return;
      }
      const tooLarge = head.contentLength > this.options.maxBodyBytes;
      const request = new Http1Request(this, head, tooLarge);
      this.unread = received.subarray(head.length);
      this.current = request;
      if (tooLarge) {
        // Refused unread (request.readBody says so): nothing after it on
        // this connection can be read, so it closes once answered.
        this.unread = EMPTY;
        this.socket.pause();
      } else this.feedBody(request);
      let taken: boolean;
      try {
        taken = this.options.take(request);
      } catch {
        // A request the handler could not even start on: the connection's state is unknown.
        this.socket.destroy();
        return;
      }
      if (!taken) {
        this.current = undefined;
        this.unread = received;
        this.handOff();
        return;
      }
      // As node does: the client may send its body now (unless it is refused unread).
      if (head.expectsContinue && !tooLarge && request.bodyRemaining > 0 && !request.done) {
        this.socket.write(CONTINUE);
      }
    }
  }

  private feedBody(request: Http1Request): void {
    const taken = request.receive(this.unread);
    if (taken > 0) this.unread = this.unread.subarray(taken);
  }

  /** Writes a request's answer, then goes on with the connection (or closes it). */
  answer(request: Http1Request, head: string, body: Uint8Array | string, keepAlive: boolean): void {
    if (this.finished) return;
    const socket = this.socket;
    // Sent with the turn's other answers; write() still reports a full buffer.
    this.answers.hold(socket);
    let flushed: boolean;
    if (typeof body === "string") flushed = socket.write(head + body);
    else {
      socket.write(head, "latin1");
      // The later write's answer covers both: the buffer only grew.
      flushed = socket.write(body);
    }
    this.current = undefined;
    this.lastActiveAt = Date.now();
    if (!keepAlive) {
      this.close();
      return;
    }
    this.skipping = request.bodyRemaining;
    this.requestStartedAt = this.unread.length > 0 || this.skipping > 0 ? this.lastActiveAt : 0;
    if (!flushed) {
      // The client is not reading its answers: read no more requests until it does.
      this.waitingForDrain = true;
      socket.once("drain", () => {
        this.waitingForDrain = false;
        this.process();
      });
    }
    // The next request, if already here, after the answer's own handler returns.
    if (this.unread.length > 0) process.nextTick(() => this.process());
  }

  /** What an answer keeping the connection open advertises; undefined once it is closing. */
  get keepAliveSeconds(): number | undefined {
    return this.draining ? undefined : Math.floor(this.options.keepAliveMs / 1000);
  }

  drain(): void {
    this.draining = true;
    if (this.current === undefined && this.unread.length === 0) this.close();
  }

  checkTimeouts(now: number): void {
    if (this.finished) return;
    if (
      this.requestStartedAt > 0 &&
      now - this.requestStartedAt > this.options.slowClientTimeoutMs
    ) {
      const request = this.current;
      if (request === undefined) {
        // A head (or an answered request's body) still arriving: as node answers it.
        this.socket.write(REQUEST_TIMEOUT);
        this.close();
      } else if (request.bodyRemaining > 0) {
        request.failBody(new SlowClientError(this.options.slowClientTimeoutMs));
      }
      return;
    }
    const idle = this.current === undefined && this.requestStartedAt === 0;
    if (idle && now - this.lastActiveAt > this.options.keepAliveMs) this.socket.destroy();
  }

  private handOff(): void {
    const socket = this.socket;
    this.detach();
    socket.pause();
    if (this.unread.length > 0) socket.unshift(this.unread);
    this.unread = EMPTY;
    this.options.handOff(socket);
  }

  private close(): void {
    this.detach();
    const socket = this.socket;
    socket.on("error", () => socket.destroy());
    // After the answers already written; no more requests are read.
    socket.destroySoon();
  }

  private detach(): void {
    this.socket.off("data", this.onData);
    this.socket.off("error", this.onError);
    this.socket.off("close", this.onClose);
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.onFinished();
  }
}

/** One request on kmsd's HTTP/1.1 path, as the fast paths' Exchange. */
export class Http1Request implements Exchange {
  readonly method: string;
  readonly target: string;
  readonly headers: IncomingHttpHeaders;
  readonly signal = undefined;
  /** Body bytes still to arrive. */
  bodyRemaining: number;
  private readonly contentLength: number;
  private readonly chunks: Buffer[] = [];
  private bodyError: Error | undefined;
  private waiting: { resolve: (body: Buffer) => void; reject: (error: Error) => void } | undefined;
  private keepAlive: boolean;
  private answered = false;
  private gone = false;

  constructor(
    private readonly connection: Connection,
    head: RequestHead,
    private readonly tooLarge: boolean,
  ) {
    this.method = head.method;
    this.target = head.target;
    this.headers = head.headers;
    this.contentLength = head.contentLength;
    this.bodyRemaining = head.contentLength;
    this.keepAlive = head.keepAlive && !tooLarge;
  }

  get done(): boolean {
    return this.answered || this.gone;
  }

  /** Takes what of `bytes` belongs to this request's body; returns how many bytes that was. */
  receive(bytes: Buffer): number {
    if (this.tooLarge || this.bodyRemaining === 0) return 0;
    const taken = Math.min(this.bodyRemaining, bytes.length);
    if (taken === 0) return 0;
    this.chunks.push(taken === bytes.length ? bytes : bytes.subarray(0, taken));
    this.bodyRemaining -= taken;
    if (this.bodyRemaining === 0) this.waiting?.resolve(joinChunks(this.chunks));
    return taken;
  }

  readBody(limits: BodyLimits): Promise<Buffer> {
    if (this.tooLarge || this.contentLength > limits.maxBytes) {
      return Promise.reject(new BodyTooLargeError(limits.maxBytes));
    }
    if (this.bodyError !== undefined) return Promise.reject(this.bodyError);
    if (this.bodyRemaining === 0) return Promise.resolve(joinChunks(this.chunks));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  failBody(error: Error): void {
    this.bodyError = error;
    this.waiting?.reject(error);
  }

  clientGone(): void {
    this.gone = true;
    this.failBody(new Error("client aborted the request"));
  }

  respond(status: number, headers: OutgoingHttpHeaders, body: Uint8Array | string): void {
    if (this.done) return;
    const length = typeof body === "string" ? Buffer.byteLength(body) : body.length;
    const keepAliveSeconds = this.keepAlive ? this.connection.keepAliveSeconds : undefined;
    const head = responseHead(status, headers, length, keepAliveSeconds);
    this.answered = true;
    this.connection.answer(this, head, body, keepAliveSeconds !== undefined);
  }

  respondHeadersOnly(status: number, headers: OutgoingHttpHeaders): void {
    this.respond(status, headers, EMPTY);
  }

  closeAfterAnswer(): void {
    this.keepAlive = false;
  }
}
