import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { Http1Connections, type Http1Request } from "./http1/connection.js";
import { Http2Connection } from "./http2/connection.js";
import { NodeHttp2Relay } from "./http2/node-relay.js";
import type { Http2ServerStream } from "./http2/server-stream.js";
import type { NodeRequest } from "./read-body.js";
import type { NodeResponse } from "./rest/huawei-response.js";

export type RequestHandler = (request: NodeRequest, response: NodeResponse) => void;

export interface ListenerOptions {
  readonly handler: RequestHandler;
  /**
   * HTTP/1.1 requests kmsd serves itself, without node's http server (see
   * http1/connection.ts): `take` returns false for those node should serve.
   */
  readonly http1?: {
    readonly take: (request: Http1Request) => boolean;
    /** The largest body any request may have. */
    readonly maxBodyBytes: number;
  };
  /**
   * Time a client has to send a whole request, in ms: a new connection its
   * first bytes (or its TLS handshake), an HTTP/1.1 request its headers and
   * body (node answers 408 and closes the connection). HTTP/2 request bodies
   * are timed where they are read (read-body.ts).
   */
  readonly slowClientTimeoutMs: number;
  /**
   * HTTP/2 streams kmsd serves itself, on its own HTTP/2 connections (see
   * http2/connection.ts): `take` returns false for those node's http2
   * server should serve (they are relayed to it).
   */
  readonly http2: { readonly take: (stream: Http2ServerStream) => boolean };
  /** Largest header block, in bytes (HTTP/1.1: 431; HTTP/2: the stream is refused). */
  readonly maxHeaderBytes: number;
  /** HTTP/2 streams one connection may have open at once (advertised in SETTINGS). */
  readonly maxConcurrentStreams: number;
  /** Serve TLS instead of plaintext: certificate, key, and client verification if wanted. */
  readonly tls?: tls.TlsOptions;
}

export interface Listener {
  listen(port: number, host: string): Promise<net.AddressInfo>;
  /**
   * Stops accepting connections, lets in-flight requests finish for up to
   * `graceMs`, then closes whatever is left. Resolves to the number of
   * connections it had to cut.
   */
  close(graceMs: number): Promise<number>;
}

/** The HTTP/2 connection-level receive window kmsd advertises. */
const CONNECTION_WINDOW_BYTES = 1024 * 1024;

/** Most fields a request's header list may have (as node's http2 server is told, maxHeaderListPairs). */
const MAX_HEADER_FIELDS = 256;

/** Idle time after which a keep-alive connection is closed, in ms. */
const KEEP_ALIVE_MS = 65_000;

// The HTTP/2 connection preface's first line. A plaintext client speaking
// h2c with prior knowledge (gRPC) starts with it; HTTP/1.1 never does.
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n");

/**
 * One port for HTTP/2 and HTTP/1.1, handing each connection to what speaks
 * its protocol (the same either way, so everything behind works alike in
 * plaintext and TLS): HTTP/2 to kmsd's own connections (which relay what
 * they do not serve to node's http2 server), HTTP/1.1 to kmsd's own
 * connection handling (which hands connections it does not serve to
 * node's http server). How a connection's protocol is told:
 * - plaintext: each new connection's first bytes are read here: h2c with
 *   prior knowledge (gRPC) starts with the HTTP/2 preface, HTTP/1.1 never
 *   does;
 * - TLS: ALPN decides, "h2" or "http/1.1" (also for clients that offer no
 *   ALPN at all).
 */
export function createListener(options: ListenerOptions): Listener {
  const slow = options.slowClientTimeoutMs;
  const http1Server = http.createServer(
    {
      keepAliveTimeout: KEEP_ALIVE_MS,
      maxHeaderSize: options.maxHeaderBytes,
      headersTimeout: slow,
      requestTimeout: slow,
      // How often node checks those two timeouts (30 s by default).
      connectionsCheckingInterval: Math.min(1000, slow),
    },
    options.handler,
  );
  // This server never listens itself (it is handed sockets), but its
  // connection tracking starts on 'listening': without it, headersTimeout and
  // requestTimeout are never enforced and closeIdleConnections() does nothing.
  http1Server.emit("listening");
  const http2Server = http2.createServer(
    {
      maxHeaderListPairs: MAX_HEADER_FIELDS,
      settings: {
        maxConcurrentStreams: options.maxConcurrentStreams,
        maxHeaderListSize: options.maxHeaderBytes,
      },
    },
    options.handler,
  );
  const handToNode = (socket: net.Socket) => {
    http1Server.emit("connection", socket);
    // The HTTP/1.1 parser reads 'data' events, which were paused to hand the socket over.
    socket.resume();
  };
  const http1Connections =
    options.http1 === undefined
      ? undefined
      : new Http1Connections({
          take: options.http1.take,
          handOff: handToNode,
          maxHeaderBytes: options.maxHeaderBytes,
          maxBodyBytes: options.http1.maxBodyBytes,
          slowClientTimeoutMs: slow,
          keepAliveMs: KEEP_ALIVE_MS,
        });
  const acceptHttp1 = (socket: net.Socket) => {
    if (http1Connections === undefined) handToNode(socket);
    else http1Connections.accept(socket);
  };
  const http2Connections = new Set<Http2Connection>();
  const acceptHttp2 = (socket: net.Socket) => {
    const { take } = options.http2;
    let relay: NodeHttp2Relay | undefined;
    const connection = new Http2Connection(socket, {
      maxConcurrentStreams: options.maxConcurrentStreams,
      maxHeaderListBytes: options.maxHeaderBytes,
      maxHeaderFields: MAX_HEADER_FIELDS,
      connectionWindowBytes: CONNECTION_WINDOW_BYTES,
      idleTimeoutMs: KEEP_ALIVE_MS,
      onStream: (stream) => {
        if (take(stream)) return;
        relay ??= new NodeHttp2Relay(http2Server);
        relay.relay(stream);
      },
    });
    http2Connections.add(connection);
    socket.once("close", () => {
      http2Connections.delete(connection);
      relay?.close();
    });
    // What sniff() put back is read again once the socket flows.
    socket.resume();
  };
  const sessions = new Set<http2.Http2Session>();
  http2Server.on("session", (session) => {
    sessions.add(session);
    // An HTTP/2 connection left idle is closed like an HTTP/1.1 keep-alive one.
    session.setTimeout(KEEP_ALIVE_MS, () => session.close());
    session.once("close", () => sessions.delete(session));
    // HTTP/2's default connection window (64 KiB) holds fewer than 16 request
    // bodies of 4 KiB: clients with more in flight on one connection stall
    // until the server's WINDOW_UPDATEs arrive. What the window lets in is
    // still bounded by the streams allowed at once and each one's body limit.
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
  });

  // Answers go out as soon as written (as node's http server sets for its
  // own connections): Nagle's algorithm would hold a small answer back
  // until the client acknowledges the previous one.
  const server =
    options.tls === undefined
      ? net.createServer({ noDelay: true }, (socket) => acceptPlaintext(socket))
      : tls.createServer(
          {
            ...options.tls,
            noDelay: true,
            ALPNProtocols: ["h2", "http/1.1"],
            handshakeTimeout: slow,
          },
          (socket) => {
            if (socket.alpnProtocol === "h2") acceptHttp2(socket);
            else acceptHttp1(socket);
          },
        );
  // Every TCP connection, so that close() can cut those left after the grace period.
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  function acceptPlaintext(socket: net.Socket): void {
    socket.setTimeout(slow, () => socket.destroy());
    socket.on("error", () => socket.destroy());
    sniff(socket, (isHttp2) => {
      socket.setTimeout(0);
      socket.removeAllListeners("error");
      if (isHttp2) {
        acceptHttp2(socket);
      } else {
        acceptHttp1(socket);
      }
    });
  }

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve(server.address() as net.AddressInfo);
        });
      });
    },

    async close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close();
      for (const connection of http2Connections) connection.close();
      // Closes idle keep-alive connections and stops the timeout checks; the
      // error it reports (this server was never listening itself) is expected.
      http1Server.close(() => {});
      const closeIdle = () => {
        http1Server.closeIdleConnections();
        http1Connections?.closeIdle();
      };
      closeIdle();
      const idleSweep = setInterval(closeIdle, 50);
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([closed, deadline]);
      clearInterval(idleSweep);
      http1Connections?.stop();
      // A socket can still be in the set for a moment after it closed on its own.
      let cut = 0;
      for (const socket of sockets) {
        if (!socket.destroyed) cut++;
        socket.destroy();
      }
      await closed;
      return cut;
    },
  };
}

/** Reads just enough of the connection to tell h2c from HTTP/1.1, then puts it back. */
function sniff(socket: net.Socket, decide: (isHttp2: boolean) => void): void {
  let received = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    const compared = Math.min(received.length, H2_PREFACE.length);
    const isPrefix = received.subarray(0, compared).equals(H2_PREFACE.subarray(0, compared));
    if (isPrefix && received.length < H2_PREFACE.length) return;
    socket.off("data", onData);
    socket.pause();
    socket.unshift(received);
    decide(isPrefix);
  };
  socket.on("data", onData);
}
