import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import http2 from "node:http2";
import { duplexPair } from "./duplex-pair.js";
import { ErrorCode } from "./frames.js";
import type { Http2ServerStream } from "./server-stream.js";

/**
 * Hands the streams kmsd's own HTTP/2 does not serve (connect-node's:
 * streaming RPCs, gRPC-Web, compressed calls, health and reflection; the
 * operations endpoints) to node's http2 server, through an HTTP/2 session
 * held in memory, one per client connection: behind it they are served
 * exactly as before, by the same handlers. These calls are few; the
 * relay costs them a second HTTP/2 hop inside the process.
 */
export class NodeHttp2Relay {
  private session: http2.ClientHttp2Session | undefined;

  constructor(private readonly server: http2.Http2Server) {}

  relay(stream: Http2ServerStream): void {
    const session = this.openSession();
    let request: http2.ClientHttp2Stream;
    try {
      request = session.request(forwardedHeaders(stream.fields), { endStream: false });
    } catch {
      stream.reset(ErrorCode.INTERNAL_ERROR);
      return;
    }
    request.on("error", () => {});
    stream.read({
      data: (chunk) => {
        request.write(chunk);
        // What node has not taken yet stays bounded: a client that outruns it is cut off.
        if (request.writableLength > MAX_BUFFERED_BYTES) {
          stream.reset(ErrorCode.ENHANCE_YOUR_CALM);
          request.close(http2.constants.NGHTTP2_CANCEL);
        }
      },
      end: () => request.end(),
      fail: () => request.close(http2.constants.NGHTTP2_CANCEL),
    });
    // node emits a response's headers and trailers on the tick after they
    // arrive, its body as it arrives: the body is read only once the headers
    // are relayed, and the stream ends an immediate after the body's end, once
    // the trailers are surely in.
    const answered = () => {
      // Answered before the client sent all of its request: it need not send the rest.
      if (!stream.remoteEnded) stream.closeAfterAnswer();
    };
    const done = () => {
      // node's side may still wait for body bytes nobody will read.
      if (!request.closed) request.close(http2.constants.NGHTTP2_NO_ERROR);
    };
    request.pause();
    request.on("response", (headers: IncomingHttpHeaders, flags: number) => {
      const { ":status": status, ...fields } = headers;
      // A response that is headers alone (gRPC's trailers-only) stays one HEADERS frame.
      const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      if (endStream) answered();
      stream.sendHeaders(Number(status), fields as OutgoingHttpHeaders, endStream);
      if (endStream) {
        done();
        return;
      }
      // A client that does not read holds node's side back, not kmsd's memory.
      request.on("data", (chunk: Buffer) => {
        if (stream.sendData(chunk, false)) return;
        request.pause();
        stream.onceDrained(() => request.resume());
      });
      request.resume();
    });
    let trailers: OutgoingHttpHeaders | undefined;
    request.on("trailers", (received: IncomingHttpHeaders) => {
      trailers = received as OutgoingHttpHeaders;
    });
    let ended = false;
    request.on("end", () => {
      ended = true;
      setImmediate(() => {
        if (stream.localEnded) return;
        answered();
        if (trailers !== undefined) stream.sendTrailers(trailers);
        else stream.sendData(EMPTY, true);
        done();
      });
    });
    request.on("close", () => {
      if (!ended && !stream.localEnded) stream.reset(request.rstCode || ErrorCode.CANCEL);
    });
  }

  close(): void {
    this.session?.destroy();
    this.session = undefined;
  }

  private openSession(): http2.ClientHttp2Session {
    if (this.session !== undefined && !this.session.closed && !this.session.destroyed) {
      return this.session;
    }
    const [clientSide, serverSide] = duplexPair();
    this.server.emit("connection", serverSide);
    const session = http2.connect("http://kmsd.relay", { createConnection: () => clientSide });
    session.on("error", () => {});
    session.once("close", () => {
      if (this.session === session) this.session = undefined;
    });
    this.session = session;
    return session;
  }
}

const EMPTY = new Uint8Array(0);
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/** The request's header block as node's client takes it: repeats as lists. */
function forwardedHeaders(fields: readonly string[]): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = fields[i + 1] as string;
    const previous = headers[name];
    if (previous === undefined) headers[name] = value;
    else if (Array.isArray(previous)) previous.push(value);
    else headers[name] = [String(previous), value];
  }
  return headers;
}
