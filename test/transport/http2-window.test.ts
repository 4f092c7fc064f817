import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningKmsd, startKmsd } from "../support/kmsd.js";

let kmsd: RunningKmsd;

beforeAll(async () => {
  kmsd = await startKmsd();
});

afterAll(() => kmsd.stop());

describe("HTTP/2 flow control", () => {
  it("opens a connection window of 1 MiB, so many request bodies in flight do not wait for it", async () => {
    const session = http2.connect(kmsd.url);
    try {
      await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
      // A ping's answer comes after the server's WINDOW_UPDATE, sent as the session began.
      await new Promise<void>((resolve, reject) =>
        session.ping((error) => (error ? reject(error) : resolve())),
      );
      expect(session.state.remoteWindowSize).toBe(1024 * 1024);
    } finally {
      session.close();
    }
  });
});
