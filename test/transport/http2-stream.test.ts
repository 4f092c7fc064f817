import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Http2Connection } from "../../src/transport/http2/connection.js";

/**
 * An Http2ServerStream's respond (src/transport/http2/) held to what
 * node's own HTTP/2 client must see: the whole body and a clean end, for
 * bodies that fit the client's flow-control window and for bodies that
 * must wait for it, and no crash when the client goes away while the body
 * is still being written.
 */
let server: net.Server;
let port: number;
/** Errors nobody handled: one would have crashed the process. */
const uncaught: unknown[] = [];
const onUncaught = (error: unknown) => uncaught.push(error);

/** The body a request asks for: `/size/<bytes>`, answered as a string or a Buffer. */
function bodyFor(path: string): string | Uint8Array {
  const [, kind, size] = path.split("/");
  const text = "k".repeat(Number(size));
  return kind === "buffer" ? Buffer.from(text) : text;
}

beforeAll(async () => {
  process.on("uncaughtException", onUncaught);
  server = net.createServer((socket) => {
    new Http2Connection(socket, {
      maxConcurrentStreams: 100,
      maxHeaderListBytes: 16_384,
      maxHeaderFields: 256,
      connectionWindowBytes: 1 << 20,
      idleTimeoutMs: 60_000,
      onStream: (stream) => {
        stream.read({
          data: () => {},
          end: () => stream.respond(200, { "content-type": "text/plain" }, bodyFor(stream.target)),
          fail: () => {},
        });
      },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  process.off("uncaughtException", onUncaught);
  await new Promise((resolve) => server.close(resolve));
});

interface Answer {
  readonly status: number | undefined;
  readonly body: Buffer;
  /** The RST_STREAM code the stream closed with (0 when it ended normally). */
  readonly closeCode: number;
}

function request(session: http2.ClientHttp2Session, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path });
    let status: number | undefined;
    const chunks: Buffer[] = [];
    stream.on("response", (headers) => {
      status = Number(headers[":status"]);
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("close", () => {
      resolve({ status, body: Buffer.concat(chunks), closeCode: stream.rstCode ?? -1 });
    });
    stream.end("request body");
  });
}

describe("Http2ServerStream.respond without trailers", () => {
  // 0 bytes, one DATA frame, several frames within the default 64 KiB
  // window, and more than the window (the write completes only after the
  // client's WINDOW_UPDATEs).
  const sizes = [0, 7, 9_700, 40_000, 200_000];

  it.each(sizes)("delivers a %i-byte body whole and ends the stream cleanly", async (size) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      for (const kind of ["string", "buffer"]) {
        const answer = await request(session, `/${kind}/${size}`);
        expect(answer.status).toBe(200);
        expect(answer.body.length).toBe(size);
        expect(answer.body.toString()).toBe("k".repeat(size));
        expect(answer.closeCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
      }
    } finally {
      session.close();
    }
  });

  it("answers many concurrent streams on one session", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const answers = await Promise.all(
        Array.from({ length: 64 }, (_, i) => request(session, `/string/${i * 997}`)),
      );
      answers.forEach((answer, i) => {
        expect(answer.body.length).toBe(i * 997);
        expect(answer.closeCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
      });
    } finally {
      session.close();
    }
  });

  it("survives a client that resets the stream while a large body is being written", async () => {
    // A tiny window: the server's write cannot complete until the client
    // reads, and the client resets instead.
    const session = http2.connect(`http://127.0.0.1:${port}`, {
      settings: { initialWindowSize: 1024 },
    });
    try {
      await new Promise<void>((resolve) => {
        const stream = session.request({ ":method": "POST", ":path": "/string/500000" });
        stream.on("error", () => {});
        stream.once("response", () => stream.close(http2.constants.NGHTTP2_CANCEL));
        stream.on("close", () => resolve());
        stream.end();
      });
      // The server still answers on the same session afterwards.
      const answer = await request(session, "/string/12");
      expect(answer.body.toString()).toBe("k".repeat(12));
      expect(uncaught).toEqual([]);
    } finally {
      session.close();
    }
  });
});
