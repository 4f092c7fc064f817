import type { Duplex } from "node:stream";
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_WINDOW_BYTES,
  ErrorCode,
  Flag,
  FRAME_HEADER_BYTES,
  FrameType,
  frame,
  integerFrame,
  MAX_WINDOW_BYTES,
  Setting,
  settingsFrame,
  writeFrameHeader,
} from "./frames.js";
import { encodeHeaderBlock, HeaderDecoder, HpackError, headerBlockBound } from "./hpack.js";
import { MalformedHeadersError, requestHeaders } from "./request-headers.js";
import { Http2ServerStream, type StreamConnection } from "./server-stream.js";

export interface Http2ConnectionOptions {
  /** Streams the client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
  /** Largest decoded header list (SETTINGS_MAX_HEADER_LIST_SIZE); larger requests are reset. */
  readonly maxHeaderListBytes: number;
  /** Most fields a request's header list may have. */
  readonly maxHeaderFields: number;
  /** The connection-level receive window kmsd keeps open. */
  readonly connectionWindowBytes: number;
  /** A connection without streams for this long is closed (GOAWAY). */
  readonly idleTimeoutMs: number;
  /** Each new request stream, once its headers are in. */
  readonly onStream: (stream: Http2ServerStream) => void;
}

/** The HPACK table size kmsd lets clients use (the protocol's default). */
const HEADER_TABLE_BYTES = 4096;
/** Client resets of unanswered streams: a burst, then a rate per second (node's defaults; CVE-2023-44487). */
const RESET_BURST = 1000;
const RESETS_PER_SECOND = 33;
/** Bytes queued for a client that does not read them, beyond which the connection is cut. */
const MAX_UNSENT_BYTES = 16 * 1024 * 1024;

class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * One HTTP/2 connection (RFC 9113), server side, written for kmsd's
 * traffic: many short unary streams on few connections. node's http2
 * module cost 40-45 µs per request of a minimal unary server on the
 * benchmark machine, most of it in its JavaScript stream objects and the
 * garbage they leave, against ~7 for a minimal frame reader and writer; a
 * whole kmsd gRPC request now costs less than node's module alone did
 * (docs/benchmarks.md). It keeps to what
 * a server needs: no push, no priorities (PRIORITY is read and ignored),
 * answers encoded as HPACK literals; flow control both ways; the limits
 * node's http2 applies (concurrent streams, header list size, rapid resets,
 * frame sizes, unread output).
 */
export class Http2Connection implements StreamConnection {
  /** Open streams by id. A plain object: a long-lived Map's rehashed tables keep freed streams alive through young collections. */
  private streams: Record<number, Http2ServerStream> = {};
  private openStreams = 0;
  private lastStreamId = 0;
  private readonly decoder = new HeaderDecoder(HEADER_TABLE_BYTES);
  private input: Buffer | undefined;
  private prefaceSeen = false;
  private settingsSeen = false;
  /** A header block waiting for its CONTINUATION frames. */
  private continuing: { id: number; flags: number; parts: Buffer[]; size: number } | undefined;
  private peerMaxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  private peerInitialWindow = DEFAULT_WINDOW_BYTES;
  private sendWindow = DEFAULT_WINDOW_BYTES;
  private receiveWindow: number;
  private receivedUnacknowledged = 0;
  /** Streams with data waiting for send window. */
  private readonly blocked = new Set<Http2ServerStream>();
  private output: Buffer[] = [];
  private outputBytes = 0;
  private flushScheduled = false;
  private goingAway = false;
  private closed = false;
  private resetAllowance = RESET_BURST;
  private resetCheckedAt = Date.now();

  constructor(
    private readonly socket: Duplex,
    private readonly options: Http2ConnectionOptions,
  ) {
    this.receiveWindow = options.connectionWindowBytes;
    this.queue(
      settingsFrame([
        [Setting.MAX_CONCURRENT_STREAMS, options.maxConcurrentStreams],
        [Setting.MAX_HEADER_LIST_SIZE, options.maxHeaderListBytes],
        [Setting.ENABLE_PUSH, 0],
      ]),
    );
    if (options.connectionWindowBytes > DEFAULT_WINDOW_BYTES) {
      this.queue(
        integerFrame(
          FrameType.WINDOW_UPDATE,
          0,
          options.connectionWindowBytes - DEFAULT_WINDOW_BYTES,
        ),
      );
    }
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", () => this.lost());
    socket.on("close", () => this.lost());
    socket.on("end", () => this.lost());
    if ("setTimeout" in socket && typeof socket.setTimeout === "function") {
      socket.setTimeout(options.idleTimeoutMs, () => {
        if (this.openStreams === 0) this.close();
      });
    }
  }

  /** Graceful close: GOAWAY, no new streams, the socket ends once the open ones are done. */
  close(): void {
    if (this.goingAway || this.closed) return;
    this.goingAway = true;
    this.queue(integerFrame(FrameType.GOAWAY, 0, this.lastStreamId, ErrorCode.NO_ERROR));
    this.endIfDone();
  }

  /** Cuts the connection now. */
  destroy(): void {
    this.socket.destroy();
    this.lost();
  }

  // -- reading --

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    let data = this.input === undefined ? chunk : Buffer.concat([this.input, chunk]);
    this.input = undefined;
    try {
      if (!this.prefaceSeen) {
        const compared = Math.min(data.length, CLIENT_PREFACE.length);
        if (!data.subarray(0, compared).equals(CLIENT_PREFACE.subarray(0, compared))) {
          throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "no HTTP/2 connection preface");
        }
        if (data.length < CLIENT_PREFACE.length) {
          this.input = data;
          return;
        }
        this.prefaceSeen = true;
        data = data.subarray(CLIENT_PREFACE.length);
      }
      let at = 0;
      while (data.length - at >= FRAME_HEADER_BYTES && !this.closed) {
        const length =
          ((data[at] as number) << 16) | ((data[at + 1] as number) << 8) | (data[at + 2] as number);
        if (length > DEFAULT_MAX_FRAME_BYTES) {
          throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "a frame is larger than allowed");
        }
        if (data.length - at < FRAME_HEADER_BYTES + length) break;
        const type = data[at + 3] as number;
        const flags = data[at + 4] as number;
        const streamId = data.readUInt32BE(at + 5) & 0x7fffffff;
        const payload = data.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
        at += FRAME_HEADER_BYTES + length;
        this.frame(type, flags, streamId, payload);
      }
      if (at < data.length && !this.closed) this.input = data.subarray(at);
    } catch (error) {
      // Anything else is a fault of this code: it ends this connection, not the process.
      this.fail(error instanceof ConnectionError ? error.code : ErrorCode.INTERNAL_ERROR);
    }
  }

  private frame(type: number, flags: number, id: number, payload: Buffer): void {
    if (!this.settingsSeen && type !== FrameType.SETTINGS) {
      throw new ConnectionError(
        ErrorCode.PROTOCOL_ERROR,
        "the client's first frame is not SETTINGS",
      );
    }
    if (
      this.continuing !== undefined &&
      (type !== FrameType.CONTINUATION || id !== this.continuing.id)
    ) {
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "a header block was interrupted");
    }
    switch (type) {
      case FrameType.DATA:
        this.data(flags, id, payload);
        return;
      case FrameType.HEADERS:
        this.headers(flags, id, payload);
        return;
      case FrameType.PRIORITY:
        if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0");
        if (payload.length !== 5) this.resetId(id, ErrorCode.FRAME_SIZE_ERROR);
        return;
      case FrameType.RST_STREAM:
        this.rstStream(id, payload);
        return;
      case FrameType.SETTINGS:
        this.settings(flags, id, payload);
        return;
      case FrameType.PING:
        if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "PING on a stream");
        if (payload.length !== 8)
          throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "PING of the wrong size");
        if ((flags & Flag.ACK) === 0) this.queue(frame(FrameType.PING, Flag.ACK, 0, payload));
        return;
      case FrameType.GOAWAY:
        if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream");
        this.goingAway = true;
        this.endIfDone();
        return;
      case FrameType.WINDOW_UPDATE:
        this.windowUpdate(id, payload);
        return;
      case FrameType.CONTINUATION:
        this.continuation(flags, id, payload);
        return;
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "a client sent PUSH_PROMISE");
      default:
        // Unknown frame types are ignored (RFC 9113 §5.5).
        return;
    }
  }

  private data(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
    const length = payload.length;
    this.receiveWindow -= length;
    if (this.receiveWindow < 0) {
      throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the connection window");
    }
    // The connection window is given back at once: what a stream holds is bounded by its own window.
    this.receivedUnacknowledged += length;
    if (this.receivedUnacknowledged >= this.options.connectionWindowBytes / 2) {
      this.queue(integerFrame(FrameType.WINDOW_UPDATE, 0, this.receivedUnacknowledged));
      this.receiveWindow += this.receivedUnacknowledged;
      this.receivedUnacknowledged = 0;
    }
    const body = unpadded(flags, payload);
    const stream = this.streams[id];
    if (stream === undefined) {
      if (id > this.lastStreamId)
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "DATA on an idle stream");
      // A stream closed or reset: its late frames are dropped.
      return;
    }
    if (stream.remoteEnded) {
      this.sendReset(stream, ErrorCode.STREAM_CLOSED);
      return;
    }
    stream.receiveWindow -= length;
    if (stream.receiveWindow < 0) {
      this.sendReset(stream, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    stream.receivedBytes += body.length;
    // Padding, and the rest of a body sent after the answer, are taken at once: nobody reads them.
    const unread = stream.localEnded ? length : length - body.length;
    if (unread > 0) this.bodyConsumed(stream, unread);
    if (body.length > 0 && !stream.localEnded) stream.receive(body);
    if (flags & Flag.END_STREAM) this.remoteEnd(stream);
  }

  private headers(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0");
    let start = 0;
    let end = payload.length;
    if (flags & Flag.PADDED) {
      if (payload.length < 1)
        throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "HEADERS too short");
      end -= payload[0] as number;
      start = 1;
    }
    if (flags & Flag.PRIORITY) start += 5;
    if (start > end)
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "HEADERS padding too long");
    const block = payload.subarray(start, end);
    if (flags & Flag.END_HEADERS) {
      this.headerBlock(flags, id, block);
    } else {
      this.continuing = { id, flags, parts: [block], size: block.length };
    }
  }

  private continuation(flags: number, id: number, payload: Buffer): void {
    const continuing = this.continuing;
    if (continuing === undefined) {
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without HEADERS");
    }
    continuing.parts.push(payload);
    continuing.size += payload.length;
    // A compressed block is never larger than the list it decodes to, plus framing slack.
    if (continuing.size > this.options.maxHeaderListBytes + DEFAULT_MAX_FRAME_BYTES) {
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "a header block is too large");
    }
    if (flags & Flag.END_HEADERS) {
      this.continuing = undefined;
      this.headerBlock(continuing.flags, id, Buffer.concat(continuing.parts));
    }
  }

  private headerBlock(flags: number, id: number, block: Buffer): void {
    // Every block is decoded, even one for a stream that is refused: the table must stay in step.
    let decoded: ReturnType<HeaderDecoder["decode"]>;
    try {
      decoded = this.decoder.decode(block);
    } catch (error) {
      if (error instanceof HpackError)
        throw new ConnectionError(ErrorCode.COMPRESSION_ERROR, error.message);
      throw error;
    }
    const existing = this.streams[id];
    if (existing !== undefined) {
      // Trailers: they must end the stream; kmsd reads none of them.
      if ((flags & Flag.END_STREAM) === 0) this.sendReset(existing, ErrorCode.PROTOCOL_ERROR);
      else this.remoteEnd(existing);
      return;
    }
    if (id <= this.lastStreamId) return; // trailers of a stream already closed
    if (id % 2 === 0)
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "a client opened an even stream");
    this.lastStreamId = id;
    if (this.goingAway) {
      this.resetId(id, ErrorCode.REFUSED_STREAM);
      return;
    }
    if (
      decoded.listSize > this.options.maxHeaderListBytes ||
      decoded.fields.length / 2 > this.options.maxHeaderFields
    ) {
      this.resetId(id, ErrorCode.ENHANCE_YOUR_CALM);
      return;
    }
    if (this.openStreams >= this.options.maxConcurrentStreams) {
      this.resetId(id, ErrorCode.REFUSED_STREAM);
      return;
    }
    let headers: ReturnType<typeof requestHeaders>;
    try {
      headers = requestHeaders(decoded.fields);
    } catch (error) {
      if (error instanceof MalformedHeadersError) {
        this.resetId(id, ErrorCode.PROTOCOL_ERROR);
        return;
      }
      throw error;
    }
    const stream = new Http2ServerStream(
      this,
      id,
      headers,
      decoded.fields,
      this.peerInitialWindow,
      DEFAULT_WINDOW_BYTES,
    );
    this.streams[id] = stream;
    this.openStreams++;
    if (flags & Flag.END_STREAM) {
      // A body announced but never sent makes the request malformed.
      if (Number(headers["content-length"] ?? 0) !== 0) {
        this.sendReset(stream, ErrorCode.PROTOCOL_ERROR);
        return;
      }
      stream.receiveEnd();
    }
    try {
      this.options.onStream(stream);
    } catch {
      this.sendReset(stream, ErrorCode.INTERNAL_ERROR);
    }
  }

  private rstStream(id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0");
    if (payload.length !== 4)
      throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM of the wrong size");
    if (id > this.lastStreamId)
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on an idle stream");
    const stream = this.streams[id];
    if (stream === undefined) return;
    if (!stream.localEnded) this.countReset();
    stream.abort();
    this.closeStream(stream);
  }

  /** Refuses a client that opens and resets streams faster than it could use them. */
  private countReset(): void {
    const now = Date.now();
    this.resetAllowance = Math.min(
      RESET_BURST,
      this.resetAllowance + ((now - this.resetCheckedAt) / 1000) * RESETS_PER_SECOND,
    );
    this.resetCheckedAt = now;
    this.resetAllowance -= 1;
    if (this.resetAllowance < 0) {
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "too many streams reset");
    }
  }

  private settings(flags: number, id: number, payload: Buffer): void {
    if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (flags & Flag.ACK) {
      if (payload.length !== 0)
        throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
      return;
    }
    if (payload.length % 6 !== 0)
      throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS of the wrong size");
    this.settingsSeen = true;
    for (let at = 0; at < payload.length; at += 6) {
      const setting = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (setting === Setting.ENABLE_PUSH && value > 1) {
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "ENABLE_PUSH is not 0 or 1");
      }
      if (setting === Setting.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW_BYTES)
          throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "window too large");
        const change = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const stream of Object.values(this.streams)) {
          stream.sendWindow += change;
          if (stream.sendWindow > MAX_WINDOW_BYTES) {
            throw new ConnectionError(
              ErrorCode.FLOW_CONTROL_ERROR,
              "a stream window grew too large",
            );
          }
        }
      }
      if (setting === Setting.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME_BYTES || value > 16_777_215) {
          throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range");
        }
        this.peerMaxFrameBytes = value;
      }
    }
    this.queue(frame(FrameType.SETTINGS, Flag.ACK, 0));
    this.flushBlocked();
  }

  private windowUpdate(id: number, payload: Buffer): void {
    if (payload.length !== 4)
      throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size");
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (increment === 0)
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW_BYTES) {
        throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "connection window too large");
      }
      this.flushBlocked();
      return;
    }
    if (id > this.lastStreamId)
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
    const stream = this.streams[id];
    if (stream === undefined) return;
    if (increment === 0) {
      this.sendReset(stream, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW_BYTES) this.sendReset(stream, ErrorCode.FLOW_CONTROL_ERROR);
    else this.flushStream(stream);
  }

  private remoteEnd(stream: Http2ServerStream): void {
    const declared = stream.headers["content-length"];
    if (declared !== undefined && Number(declared) !== stream.receivedBytes) {
      this.sendReset(stream, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    stream.receiveEnd();
    if (stream.localEnded) this.closeStream(stream);
  }

  // -- StreamConnection: what streams send --

  sendHeaders(stream: Http2ServerStream, fields: string[], endStream: boolean): void {
    if (stream.aborted || this.closed) return;
    this.queueHeaderBlock(stream.id, fields, endStream);
    if (endStream) this.localEnd(stream);
  }

  sendData(stream: Http2ServerStream, data: Uint8Array, endStream: boolean): void {
    if (stream.aborted || this.closed) return;
    stream.pending.push({ data, end: endStream });
    stream.pendingBytes += data.length;
    this.flushStream(stream);
  }

  sendTrailers(stream: Http2ServerStream, fields: string[]): void {
    if (stream.aborted || this.closed) return;
    stream.pendingTrailers = fields;
    this.flushStream(stream);
  }

  sendReset(stream: Http2ServerStream, code: number): void {
    if (stream.aborted) return;
    this.resetId(stream.id, code);
    stream.abort();
    this.closeStream(stream);
  }

  bodyConsumed(stream: Http2ServerStream, bytes: number): void {
    stream.consumedUnacknowledged += bytes;
    if (stream.remoteEnded || stream.consumedUnacknowledged < DEFAULT_WINDOW_BYTES / 2) return;
    this.queue(integerFrame(FrameType.WINDOW_UPDATE, stream.id, stream.consumedUnacknowledged));
    stream.receiveWindow += stream.consumedUnacknowledged;
    stream.consumedUnacknowledged = 0;
  }

  // -- writing --

  /** Sends what a stream has waiting, as far as the windows allow; then its trailers. */
  private flushStream(stream: Http2ServerStream): void {
    const pending = stream.pending;
    while (pending.length > 0) {
      const item = pending[0] as { data: Uint8Array; end: boolean };
      const size = item.data.length;
      if (size === 0) {
        pending.shift();
        if (item.end) {
          this.queue(frame(FrameType.DATA, Flag.END_STREAM, stream.id));
          this.localEnd(stream);
          return;
        }
        continue;
      }
      const allowed = Math.min(stream.sendWindow, this.sendWindow, this.peerMaxFrameBytes);
      if (allowed <= 0) {
        this.blocked.add(stream);
        return;
      }
      const sent = Math.min(allowed, size);
      const last = sent === size;
      const ends = last && item.end;
      this.queue(
        frame(FrameType.DATA, ends ? Flag.END_STREAM : 0, stream.id, item.data.subarray(0, sent)),
      );
      stream.sendWindow -= sent;
      this.sendWindow -= sent;
      stream.pendingBytes -= sent;
      if (last) pending.shift();
      else item.data = item.data.subarray(sent);
      if (ends) {
        this.localEnd(stream);
        return;
      }
    }
    this.blocked.delete(stream);
    stream.drained();
    const trailers = stream.pendingTrailers;
    if (trailers !== undefined) {
      stream.pendingTrailers = undefined;
      this.queueHeaderBlock(stream.id, trailers, true);
      this.localEnd(stream);
    }
  }

  private flushBlocked(): void {
    for (const stream of this.blocked) {
      if (this.sendWindow <= 0) return;
      this.flushStream(stream);
    }
  }

  /** A header block as HEADERS, and CONTINUATION frames when it exceeds the client's frame size. */
  private queueHeaderBlock(id: number, fields: string[], endStream: boolean): void {
    const bound = headerBlockBound(fields);
    const maxFrame = this.peerMaxFrameBytes;
    const endFlag = endStream ? Flag.END_STREAM : 0;
    if (bound <= maxFrame) {
      const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bound);
      const end = encodeHeaderBlock(fields, out, FRAME_HEADER_BYTES);
      writeFrameHeader(
        out,
        0,
        end - FRAME_HEADER_BYTES,
        FrameType.HEADERS,
        Flag.END_HEADERS | endFlag,
        id,
      );
      this.queue(out.subarray(0, end));
      return;
    }
    const block = Buffer.allocUnsafe(bound);
    const length = encodeHeaderBlock(fields, block, 0);
    for (let at = 0; at < length; at += maxFrame) {
      const part = block.subarray(at, Math.min(length, at + maxFrame));
      const lastPart = at + maxFrame >= length;
      const type = at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
      const flags = (at === 0 ? endFlag : 0) | (lastPart ? Flag.END_HEADERS : 0);
      this.queue(frame(type, flags, id, part));
    }
  }

  private resetId(id: number, code: number): void {
    this.queue(integerFrame(FrameType.RST_STREAM, id, code));
  }

  private localEnd(stream: Http2ServerStream): void {
    stream.localEnded = true;
    if (stream.remoteEnded) {
      this.closeStream(stream);
    } else if (stream.wantsResetAfterAnswer) {
      this.resetId(stream.id, ErrorCode.NO_ERROR);
      stream.abort();
      this.closeStream(stream);
    }
  }

  private closeStream(stream: Http2ServerStream): void {
    if (this.streams[stream.id] !== stream) return;
    delete this.streams[stream.id];
    this.openStreams--;
    this.blocked.delete(stream);
    this.endIfDone();
  }

  private queue(bytes: Buffer): void {
    if (this.closed) return;
    this.output.push(bytes);
    this.outputBytes += bytes.length;
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Frames queued in the same turn (answers to a read's many streams) leave in one write.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed || this.output.length === 0) return;
    const output = this.output;
    const bytes =
      output.length === 1 ? (output[0] as Buffer) : Buffer.concat(output, this.outputBytes);
    this.output = [];
    this.outputBytes = 0;
    this.socket.write(bytes);
    if (this.socket.writableLength > MAX_UNSENT_BYTES) this.destroy();
  }

  private endIfDone(): void {
    if (this.goingAway && this.openStreams === 0 && !this.closed) {
      this.flush();
      this.closed = true;
      this.socket.end();
    }
  }

  /** A connection error: GOAWAY with `code`, then the connection is closed. */
  private fail(code: number): void {
    if (this.closed) return;
    this.output = [];
    this.outputBytes = 0;
    this.queue(integerFrame(FrameType.GOAWAY, 0, this.lastStreamId, code));
    this.flush();
    this.abortAll();
    this.closed = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private lost(): void {
    if (this.closed && this.openStreams === 0) return;
    this.closed = true;
    this.abortAll();
  }

  private abortAll(): void {
    for (const stream of Object.values(this.streams)) stream.abort();
    this.streams = {};
    this.openStreams = 0;
    this.blocked.clear();
  }
}

/** A DATA frame's payload without its padding. */
function unpadded(flags: number, payload: Buffer): Buffer {
  if ((flags & Flag.PADDED) === 0) return payload;
  const padding = payload[0];
  if (padding === undefined || padding >= payload.length) {
    throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "DATA padding too long");
  }
  return payload.subarray(1, payload.length - padding);
}
