import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { type BodyLimits, type BodyReader, collectBody } from "../read-body.js";
import type { Exchange } from "../rpc/exchange.js";
import { ErrorCode } from "./frames.js";
import { FORBIDDEN_IN_VALUE } from "./request-headers.js";

/** What a stream needs of its connection. */
export interface StreamConnection {
  sendHeaders(stream: Http2ServerStream, fields: string[], endStream: boolean): void;
  sendData(stream: Http2ServerStream, data: Uint8Array, endStream: boolean): void;
  /** Ends the stream with trailers, once the data before them is out. */
  sendTrailers(stream: Http2ServerStream, fields: string[]): void;
  sendReset(stream: Http2ServerStream, code: number): void;
  /** The stream's reader took `bytes` of its body: the client may send that much more. */
  bodyConsumed(stream: Http2ServerStream, bytes: number): void;
}

/** A client-initiated stream of kmsd's own HTTP/2 connections, as the fast paths' Exchange. */
export class Http2ServerStream implements Exchange {
  readonly method: string;
  readonly target: string;
  /** Send window for DATA (RFC 9113 §6.9), kept by the connection. */
  sendWindow: number;
  /** Receive window: what the client may still send before a WINDOW_UPDATE. */
  receiveWindow: number;
  /** Frames waiting for send window: data, then, once it is all out, the end. */
  readonly pending: { data: Uint8Array; end: boolean }[] = [];
  /** Bytes of `pending` not sent yet. */
  pendingBytes = 0;
  /** Called once `pending` is empty (see sendData's result). */
  private drainWaiter: (() => void) | undefined;
  /** The trailers' fields, sent once pending data is out. */
  pendingTrailers: string[] | undefined;
  /** Set once the client sent END_STREAM (or the stream was reset). */
  remoteEnded = false;
  /** Set once kmsd sent END_STREAM (or the stream was reset). */
  localEnded = false;
  /** Set when either side reset the stream, or the connection is gone. */
  aborted = false;
  /** Body bytes received (for the content-length check). */
  receivedBytes = 0;
  /** Body bytes read since the last WINDOW_UPDATE for this stream. */
  consumedUnacknowledged = 0;
  private headersSent = false;
  private resetAfterAnswer = false;
  private readonly chunks: Buffer[] = [];
  private reader: BodyReader | undefined;
  private controller: AbortController | undefined;

  constructor(
    private readonly connection: StreamConnection,
    readonly id: number,
    /** Request headers as node gives them: pseudo-headers included, repeated fields joined. */
    readonly headers: IncomingHttpHeaders,
    /** The header block as sent: name, value, name, value... */
    readonly fields: readonly string[],
    sendWindow: number,
    receiveWindow: number,
  ) {
    this.method = (headers[":method"] as string | undefined) ?? "GET";
    this.target = (headers[":path"] as string | undefined) ?? "/";
    this.sendWindow = sendWindow;
    this.receiveWindow = receiveWindow;
  }

  get done(): boolean {
    return this.headersSent || this.aborted;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted && !this.headersSent) {
        this.controller.abort(new Error("the client cancelled the call"));
      }
    }
    return this.controller.signal;
  }

  // -- the connection's side --

  /** Body bytes from a DATA frame. */
  receive(chunk: Buffer): void {
    if (this.reader === undefined) {
      this.chunks.push(chunk);
      return;
    }
    this.connection.bodyConsumed(this, chunk.length);
    this.reader.data(chunk);
  }

  /** The client's END_STREAM. */
  receiveEnd(): void {
    this.remoteEnded = true;
    this.reader?.end();
  }

  /** The client reset the stream, or the connection went away. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.remoteEnded = true;
    this.localEnded = true;
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.pendingTrailers = undefined;
    this.drained();
    this.reader?.fail(new Error("client aborted the request"));
    if (!this.headersSent) this.controller?.abort(new Error("the client cancelled the call"));
  }

  /** Set by closeAfterAnswer: once answered, the stream is reset rather than read further. */
  get wantsResetAfterAnswer(): boolean {
    return this.resetAfterAnswer;
  }

  // -- the body, as a reader takes it --

  /**
   * Hands the body to `reader` as it arrives (what arrived already first).
   * One reader per stream.
   */
  read(reader: BodyReader): void {
    this.reader = reader;
    const waiting = this.chunks.splice(0);
    for (const chunk of waiting) {
      this.connection.bodyConsumed(this, chunk.length);
      reader.data(chunk);
    }
    if (this.aborted) reader.fail(new Error("client aborted the request"));
    else if (this.remoteEnded) reader.end();
  }

  readBody(limits: BodyLimits): Promise<Buffer> {
    return collectBody(limits, this.headers["content-length"], (reader) => {
      this.read(reader);
      // What arrives later is still taken (and its window given back), and dropped.
      return () => {};
    });
  }

  // -- answering --

  /** Sends the response's headers; `endStream` when nothing follows them. */
  sendHeaders(status: number, headers: OutgoingHttpHeaders, endStream: boolean): void {
    if (this.done) return;
    this.headersSent = true;
    this.connection.sendHeaders(this, responseFields(status, headers), endStream);
    if (endStream) this.answered();
  }

  /**
   * Sends body bytes; `end` ends the stream unless trailers are to follow.
   * False when more than PENDING_HIGH_WATER_BYTES wait for the client's
   * window: the writer should wait for onceDrained, as with a node stream.
   */
  sendData(data: Uint8Array, end: boolean): boolean {
    if (this.aborted || this.localEnded) return true;
    this.connection.sendData(this, data, end);
    if (end) this.answered();
    return this.pendingBytes <= PENDING_HIGH_WATER_BYTES;
  }

  /** Calls `callback` once everything sent so far has left for the client (or the stream is gone). */
  onceDrained(callback: () => void): void {
    if (this.pendingBytes === 0 || this.aborted) callback();
    else this.drainWaiter = callback;
  }

  /** The connection sent the last pending bytes. */
  drained(): void {
    const waiter = this.drainWaiter;
    this.drainWaiter = undefined;
    waiter?.();
  }

  /** Ends the stream with trailers, after any data still waiting. */
  sendTrailers(trailers: OutgoingHttpHeaders): void {
    if (this.aborted || this.localEnded) return;
    this.connection.sendTrailers(this, headerFields(trailers, []));
    this.answered();
  }

  /** Resets the stream with `code`. */
  reset(code: number = ErrorCode.CANCEL): void {
    if (this.aborted) return;
    this.connection.sendReset(this, code);
  }

  respond(
    status: number,
    headers: OutgoingHttpHeaders,
    body: Uint8Array | string,
    trailers?: OutgoingHttpHeaders,
  ): void {
    if (this.done) return;
    const bytes = typeof body === "string" ? Buffer.from(body) : body;
    if (trailers === undefined && bytes.length === 0) {
      this.sendHeaders(status, headers, true);
      return;
    }
    this.sendHeaders(status, headers, false);
    if (trailers === undefined) {
      this.sendData(bytes, true);
      return;
    }
    this.sendData(bytes, false);
    this.sendTrailers(trailers);
  }

  respondHeadersOnly(status: number, headers: OutgoingHttpHeaders): void {
    this.sendHeaders(status, headers, true);
  }

  closeAfterAnswer(): void {
    // After a complete answer, NO_ERROR tells the client to stop sending
    // (RFC 9113 §8.1) without discarding the answer; the connection sends it
    // behind the answer's frames.
    this.resetAfterAnswer = true;
  }

  private answered(): void {
    this.reader = undefined;
    this.chunks.length = 0;
  }
}

/** Unsent body bytes a stream holds before its writer is told to wait. */
const PENDING_HIGH_WATER_BYTES = 1024 * 1024;

/** `:status` and `headers` as a header block's fields. */
function responseFields(status: number, headers: OutgoingHttpHeaders): string[] {
  return headerFields(headers, [":status", String(status)]);
}

/** Appends `headers` to `fields`, names lowercased, repeated values as repeated fields. */
export function headerFields(headers: OutgoingHttpHeaders, fields: string[]): string[] {
  for (const key in headers) {
    const value = headers[key];
    if (value === undefined) continue;
    const name = key.toLowerCase();
    for (const item of Array.isArray(value) ? value : [value]) {
      const text = String(item);
      if (FORBIDDEN_IN_VALUE.test(text)) {
        throw new TypeError(`invalid character in the value of header "${name}"`);
      }
      fields.push(name, text);
    }
  }
  return fields;
}
