import http2 from "node:http2";
import net from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Http2Connection,
  type Http2ConnectionOptions,
} from "../../src/transport/http2/connection.js";
import { duplexPair } from "../../src/transport/http2/duplex-pair.js";
import {
  ErrorCode,
  Flag,
  FrameType,
  frame,
  integerFrame,
  settingsFrame,
} from "../../src/transport/http2/frames.js";
import { HeaderDecoder } from "../../src/transport/http2/hpack.js";
import type { Http2ServerStream } from "../../src/transport/http2/server-stream.js";
import { type RunningKmsd, startKmsd } from "../support/kmsd.js";

/*
 * kmsd's own HTTP/2 (src/transport/http2/) spoken to frame by frame, for
 * what real clients never send: protocol errors, floods, flow control at
 * its edges. Real clients (grpc-js, Connect, buf curl, h2load) are the
 * other tests' business.
 */

let kmsd: RunningKmsd;

beforeAll(async () => {
  kmsd = await startKmsd();
});

afterAll(() => kmsd.stop());

interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

/** A client that writes raw frames and collects the server's. */
class RawClient {
  readonly frames: Frame[] = [];
  closed = false;
  private buffered = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 9) {
        const length = this.buffered.readUIntBE(0, 3);
        if (this.buffered.length < 9 + length) break;
        this.frames.push({
          type: this.buffered[3] as number,
          flags: this.buffered[4] as number,
          id: this.buffered.readUInt32BE(5) & 0x7fffffff,
          payload: this.buffered.subarray(9, 9 + length),
        });
        this.buffered = this.buffered.subarray(9 + length);
      }
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", () => {});
  }

  static async open(
    url: string,
    preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    settings = settingsFrame([]),
  ) {
    const { hostname, port } = new URL(url);
    const socket = net.connect(Number(port), hostname);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    const client = new RawClient(socket);
    socket.write(Buffer.concat([Buffer.from(preface, "latin1"), settings]));
    return client;
  }

  send(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  /** The first frame (from the start) that matches; fails after 3 s. */
  async next(matches: (frame: Frame) => boolean): Promise<Frame> {
    const deadline = Date.now() + 3000;
    for (;;) {
      const found = this.frames.find(matches);
      if (found !== undefined) return found;
      if (this.closed || Date.now() > deadline) {
        throw new Error(
          `no such frame; got ${JSON.stringify(this.frames.map((f) => [f.type, f.flags, f.id]))}`,
        );
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  async goAwayCode(): Promise<number> {
    const goAway = await this.next((f) => f.type === FrameType.GOAWAY);
    return goAway.payload.readUInt32BE(4);
  }

  async resetCode(id: number): Promise<number> {
    const reset = await this.next((f) => f.type === FrameType.RST_STREAM && f.id === id);
    return reset.payload.readUInt32BE(0);
  }

  /** True when a PING is still answered: the connection serves on. */
  async alive(): Promise<boolean> {
    const payload = Buffer.from("alive?!!");
    this.send(frame(FrameType.PING, 0, 0, payload));
    const ack = await this.next((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0);
    return ack.payload.equals(payload);
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

/** A header block of literal fields (never indexed, no Huffman). */
function block(fields: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    parts.push(
      Buffer.from([0x10, name.length]),
      Buffer.from(name),
      lengthPrefix(value.length),
      Buffer.from(value),
    );
  }
  return Buffer.concat(parts);
}

function lengthPrefix(length: number): Buffer {
  if (length < 127) return Buffer.from([length]);
  const bytes = [127];
  let rest = length - 127;
  while (rest >= 128) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

const GET_HEALTHZ: [string, string][] = [
  [":method", "GET"],
  [":scheme", "http"],
  [":path", "/healthz"],
  [":authority", "kmsd"],
];
const POST_REST: [string, string][] = [
  [":method", "POST"],
  [":scheme", "http"],
  [":path", "/v1.0/p/kms/encrypt-data"],
  [":authority", "kmsd"],
  ["content-type", "application/json"],
];

const statusOf = (headers: Frame) => new HeaderDecoder(4096).decode(headers.payload).fields[1];

describe("kmsd's HTTP/2: the connection", () => {
  it("sends its SETTINGS, acknowledges the client's, answers PING with the same payload", async () => {
    const client = await RawClient.open(kmsd.url);
    try {
      const settings = await client.next((f) => f.type === FrameType.SETTINGS && f.flags === 0);
      expect(settings.payload.length % 6).toBe(0);
      await client.next((f) => f.type === FrameType.SETTINGS && f.flags === Flag.ACK);
      expect(await client.alive()).toBe(true);
    } finally {
      client.close();
    }
  });

  it("refuses a wrong preface, an oversized frame, DATA on an idle stream, PUSH_PROMISE", async () => {
    const cases: [string, (client: RawClient) => void, number][] = [
      ["preface", () => {}, ErrorCode.PROTOCOL_ERROR],
      [
        "size",
        (c) => c.send(frame(FrameType.PING, 0, 0, Buffer.alloc(20_000))),
        ErrorCode.FRAME_SIZE_ERROR,
      ],
      [
        "idle",
        (c) => c.send(frame(FrameType.DATA, 0, 7, Buffer.from("x"))),
        ErrorCode.PROTOCOL_ERROR,
      ],
      [
        "push",
        (c) => c.send(frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.alloc(4))),
        ErrorCode.PROTOCOL_ERROR,
      ],
      [
        "hpack",
        (c) => c.send(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0xff, 0x00]))),
        ErrorCode.COMPRESSION_ERROR,
      ],
      [
        "even",
        (c) => c.send(frame(FrameType.HEADERS, Flag.END_HEADERS, 2, block(GET_HEALTHZ))),
        ErrorCode.PROTOCOL_ERROR,
      ],
      [
        "window",
        (c) => c.send(integerFrame(FrameType.WINDOW_UPDATE, 0, 0x7fffffff)),
        ErrorCode.FLOW_CONTROL_ERROR,
      ],
    ];
    for (const [name, act, code] of cases) {
      const client = await RawClient.open(
        kmsd.url,
        name === "preface" ? "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" : undefined,
      );
      try {
        act(client);
        expect({ name, code: await client.goAwayCode() }).toEqual({ name, code });
      } finally {
        client.close();
      }
    }
  });

  it("ends a connection whose client opens and resets streams as fast as it can", async () => {
    const client = await RawClient.open(kmsd.url);
    try {
      const frames: Buffer[] = [];
      for (let id = 1; id < 2 * 1200; id += 2) {
        frames.push(
          frame(FrameType.HEADERS, Flag.END_HEADERS, id, block(POST_REST)),
          integerFrame(FrameType.RST_STREAM, id, ErrorCode.CANCEL),
        );
      }
      client.send(...frames);
      expect(await client.goAwayCode()).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    } finally {
      client.close();
    }
  });
});

describe("kmsd's HTTP/2: streams", () => {
  it("resets a malformed request and serves on", async () => {
    const cases: [[string, string][], number][] = [
      [[...GET_HEALTHZ, ["X-Upper", "1"]], 1],
      [[...GET_HEALTHZ, ["connection", "keep-alive"]], 3],
      [
        [
          [":path", "/healthz"],
          [":method", "GET"],
          [":scheme", "http"],
          [":unknown", "x"],
        ],
        5,
      ],
      [
        [
          [":method", "GET"],
          [":scheme", "http"],
        ],
        7,
      ],
      [[...GET_HEALTHZ.slice(0, 2), ["a", "b"], ...GET_HEALTHZ.slice(2)], 9],
    ];
    const client = await RawClient.open(kmsd.url);
    try {
      for (const [fields, id] of cases) {
        client.send(
          frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, block(fields)),
        );
        expect({ id, code: await client.resetCode(id) }).toEqual({
          id,
          code: ErrorCode.PROTOCOL_ERROR,
        });
      }
      expect(await client.alive()).toBe(true);
    } finally {
      client.close();
    }
  });

  it("resets a body that does not match its content-length", async () => {
    const client = await RawClient.open(kmsd.url);
    try {
      client.send(
        frame(
          FrameType.HEADERS,
          Flag.END_HEADERS,
          1,
          block([...POST_REST, ["content-length", "10"]]),
        ),
        frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from("{}")),
      );
      expect(await client.resetCode(1)).toBe(ErrorCode.PROTOCOL_ERROR);
      expect(await client.alive()).toBe(true);
    } finally {
      client.close();
    }
  });

  it("reads a header block split over CONTINUATION frames", async () => {
    const client = await RawClient.open(kmsd.url);
    try {
      const whole = block([...GET_HEALTHZ, ["x-padding", "p".repeat(3000)]]);
      client.send(
        frame(FrameType.HEADERS, Flag.END_STREAM, 1, whole.subarray(0, 1000)),
        frame(FrameType.CONTINUATION, 0, 1, whole.subarray(1000, 2000)),
        frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, whole.subarray(2000)),
      );
      const headers = await client.next((f) => f.type === FrameType.HEADERS && f.id === 1);
      expect(statusOf(headers)).toBe("200");
    } finally {
      client.close();
    }
  });

  it("sends no more DATA than the client's window allows, and the rest once it grows", async () => {
    const window = 100;
    const client = await RawClient.open(kmsd.url, undefined, settingsFrame([[0x4, window]]));
    try {
      const openApi: [string, string][] = [
        ...GET_HEALTHZ.slice(0, 2),
        [":path", "/openapi.json"],
        [":authority", "kmsd"],
      ];
      client.send(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, block(openApi)));
      await client.next((f) => f.type === FrameType.DATA && f.id === 1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const received = () =>
        client.frames
          .filter((f) => f.type === FrameType.DATA && f.id === 1)
          .reduce((n, f) => n + f.payload.length, 0);
      expect(received()).toBe(window);
      client.send(
        integerFrame(FrameType.WINDOW_UPDATE, 1, 10_000_000),
        integerFrame(FrameType.WINDOW_UPDATE, 0, 10_000_000),
      );
      const last = await client.next(
        (f) => f.type === FrameType.DATA && f.id === 1 && (f.flags & Flag.END_STREAM) !== 0,
      );
      expect(last).toBeDefined();
      const body = Buffer.concat(
        client.frames.filter((f) => f.type === FrameType.DATA && f.id === 1).map((f) => f.payload),
      );
      expect(JSON.parse(body.toString())).toHaveProperty("openapi");
    } finally {
      client.close();
    }
  });
});

describe("kmsd's HTTP/2: streams relayed to node's http2 server", () => {
  it("ends a relayed stream answered before its large body was read", async () => {
    // An encoding connect-node does not take: it answers without reading the 200 KB body.
    const session = http2.connect(kmsd.url);
    session.on("error", () => {});
    try {
      const outcome = await new Promise<{ status: string; grpcStatus: unknown }>(
        (resolve, reject) => {
          const stream = session.request({
            ":method": "POST",
            ":path": "/kms.v1.KmsService/GenRandom",
            "content-type": "application/grpc",
            "grpc-encoding": "br",
            te: "trailers",
          });
          let status = "";
          let grpcStatus: unknown;
          stream.on("response", (headers) => {
            status = String(headers[":status"]);
            grpcStatus ??= headers["grpc-status"];
          });
          stream.on("trailers", (trailers) => {
            grpcStatus = trailers["grpc-status"];
          });
          stream.on("data", () => {});
          stream.on("close", () => resolve({ status, grpcStatus }));
          stream.on("error", () => {});
          stream.setTimeout(5000, () => reject(new Error("the relayed stream never ended")));
          const body = Buffer.alloc(200_005, 0x61);
          body.writeUInt8(1, 0);
          body.writeUInt32BE(200_000, 1);
          stream.end(body);
        },
      );
      expect(outcome.status).toBe("200");
      expect(outcome.grpcStatus).toBeDefined();
      expect(outcome.grpcStatus).not.toBe("0");
    } finally {
      session.destroy();
    }
  });
});

describe("kmsd's HTTP/2: flow control of request bodies", () => {
  it("gives a stream's window back as its body is read or after it is answered, and resets a stream sent beyond it", async () => {
    const streams: Http2ServerStream[] = [];
    const { client: clientSide, frames } = connectInMemory((stream) => streams.push(stream));
    const data = (id: number, bytes: number) => frame(FrameType.DATA, 0, id, Buffer.alloc(bytes));
    // Stream 1 is read as it arrives: 100,000 bytes pass its 65,535-byte window.
    clientSide.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, block(POST_REST)));
    await new Promise((resolve) => setImmediate(resolve));
    let read = 0;
    streams[0]?.read({ data: (chunk) => (read += chunk.length), end: () => {}, fail: () => {} });
    for (let sent = 0; sent < 100_000; sent += 10_000) {
      clientSide.write(data(1, 10_000));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(read).toBe(100_000);
    expect(frames().some((f) => f.type === FrameType.WINDOW_UPDATE && f.id === 1)).toBe(true);
    // Stream 3 is not read: past its window, it is reset.
    clientSide.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 3, block(POST_REST)));
    for (let sent = 0; sent < 70_000; sent += 10_000) clientSide.write(data(3, 10_000));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const reset = frames().find((f) => f.type === FrameType.RST_STREAM && f.id === 3);
    expect(reset?.payload.readUInt32BE(0)).toBe(ErrorCode.FLOW_CONTROL_ERROR);
    // Stream 5 is answered before its body ends: the rest is taken unread, the window given back.
    clientSide.write(frame(FrameType.HEADERS, Flag.END_HEADERS, 5, block(POST_REST)));
    await new Promise((resolve) => setImmediate(resolve));
    streams[2]?.respond(200, {}, "early");
    for (let sent = 0; sent < 100_000; sent += 10_000) {
      clientSide.write(data(5, 10_000));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(frames().some((f) => f.type === FrameType.RST_STREAM && f.id === 5)).toBe(false);
    expect(frames().some((f) => f.type === FrameType.WINDOW_UPDATE && f.id === 5)).toBe(true);
    expect(frames().some((f) => f.type === FrameType.GOAWAY)).toBe(false);
    clientSide.destroy();
  });
});

/**
 * An Http2Connection on an in-memory pair, its client past the preface and
 * `settings`; `frames()` is what the server has sent so far.
 */
function connectInMemory(
  onStream: (stream: Http2ServerStream) => void,
  settings = settingsFrame([]),
  limits: Partial<Omit<Http2ConnectionOptions, "onStream">> = {},
) {
  const [client, serverSide] = duplexPair();
  const connection = new Http2Connection(serverSide, {
    maxConcurrentStreams: 10,
    maxHeaderListBytes: 8192,
    maxHeaderFields: 100,
    connectionWindowBytes: 1 << 20,
    idleTimeoutMs: 60_000,
    ...limits,
    onStream,
  });
  const received: Buffer[] = [];
  client.on("data", (chunk: Buffer) => received.push(chunk));
  client.on("error", () => {});
  client.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), settings]));
  return { client, connection, frames: () => parseFrames(Buffer.concat(received)) };
}

function parseFrames(bytes: Buffer): Frame[] {
  const out: Frame[] = [];
  for (let at = 0; at + 9 <= bytes.length; ) {
    const length = bytes.readUIntBE(at, 3);
    out.push({
      type: bytes[at + 3] as number,
      flags: bytes[at + 4] as number,
      id: bytes.readUInt32BE(at + 5) & 0x7fffffff,
      payload: bytes.subarray(at + 9, at + 9 + length),
    });
    at += 9 + length;
  }
  return out;
}

describe("kmsd's HTTP/2: flow control of answers", () => {
  it("tells a writer to wait while more than 1 MiB waits for the client's window, and when it may go on", async () => {
    const streams: Http2ServerStream[] = [];
    // The client opens no window for answers.
    const { client: clientSide, frames } = connectInMemory(
      (stream) => streams.push(stream),
      settingsFrame([[0x4, 0]]),
    );
    const dataBytes = () =>
      frames()
        .filter((f) => f.type === FrameType.DATA)
        .reduce((sum, f) => sum + f.payload.length, 0);
    clientSide.write(
      frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, block(GET_HEALTHZ)),
    );
    await new Promise((resolve) => setImmediate(resolve));
    const stream = streams[0] as Http2ServerStream;
    stream.sendHeaders(200, {}, false);
    expect(stream.sendData(Buffer.alloc(600_000), false)).toBe(true);
    expect(stream.sendData(Buffer.alloc(600_000), false)).toBe(false);
    let drained = false;
    stream.onceDrained(() => {
      drained = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect({ drained, sent: dataBytes() }).toEqual({ drained: false, sent: 0 });
    /** Opens the connection's and the stream's windows by `bytes`, and lets the answer move. */
    const grantWindow = async (bytes: number) => {
      clientSide.write(
        Buffer.concat([
          integerFrame(FrameType.WINDOW_UPDATE, 0, bytes),
          integerFrame(FrameType.WINDOW_UPDATE, 1, bytes),
        ]),
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
    };
    // Windows for 1,000,000 bytes: still 200,000 waiting.
    await grantWindow(1_000_000);
    expect({ drained, sent: dataBytes() }).toEqual({ drained: false, sent: 1_000_000 });
    await grantWindow(200_000);
    expect({ drained, sent: dataBytes() }).toEqual({ drained: true, sent: 1_200_000 });
    clientSide.destroy();
  });
});

describe("kmsd's HTTP/2: arbitrary frames", () => {
  it("answers any sequence of frames without a fault of its own (never INTERNAL_ERROR)", async () => {
    const frameArbitrary = fc.record({
      type: fc.integer({ min: 0, max: 10 }),
      flags: fc.integer({ min: 0, max: 255 }),
      id: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 9 })),
      payload: fc.oneof(
        fc.uint8Array({ maxLength: 40 }),
        fc.constant(block(GET_HEALTHZ)),
        fc.constant(block(POST_REST)),
      ),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(frameArbitrary, { maxLength: 30 }), async (frames) => {
        const {
          client,
          connection,
          frames: sent,
        } = connectInMemory(
          (stream) =>
            stream.read({
              data: () => {},
              end: () =>
                stream.respond(200, { "content-type": "text/plain" }, "ok", { "grpc-status": "0" }),
              fail: () => {},
            }),
          settingsFrame([]),
          { maxConcurrentStreams: 4, maxHeaderListBytes: 4096, maxHeaderFields: 50 },
        );
        for (const f of frames) client.write(frame(f.type, f.flags, f.id, f.payload));
        await new Promise((resolve) => setImmediate(resolve));
        await new Promise((resolve) => setImmediate(resolve));
        const goAways = sent().filter((f) => f.type === FrameType.GOAWAY);
        for (const goAway of goAways)
          expect(goAway.payload.readUInt32BE(4)).not.toBe(ErrorCode.INTERNAL_ERROR);
        connection.destroy();
      }),
      { numRuns: 400 },
    );
  });
});
