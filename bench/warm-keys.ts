/**
 * One pass over every key before the many-keys scenario is measured, so that
 * it measures the steady state of a key cache large enough for the working
 * set (the target's case), not a cold start where every request misses. The
 * pass's own rate is reported too: it is the all-misses figure, so the
 * client is node:http with kept-alive sockets, cheap enough not to be what
 * limits it.
 */
import { Agent, request } from "node:http";
import type { Target } from "./load.js";

export interface WarmResult {
  readonly requests: number;
  readonly seconds: number;
  readonly failures: number;
}

/** EncryptData once under each key, `inFlight` requests at a time, to the target's URL with its headers. */
export async function encryptUnderEveryKey(
  target: Target,
  keyIds: readonly string[],
  inFlight: number,
): Promise<WarmResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: inFlight });
  let next = 0;
  let failures = 0;
  const started = performance.now();
  const lane = async (): Promise<void> => {
    while (next < keyIds.length) {
      const body = JSON.stringify({ key_id: keyIds[next++], plain_text: "xxxxxxxx" });
      if ((await post(agent, target, body)) !== 200) failures++;
    }
  };
  try {
    await Promise.all(Array.from({ length: inFlight }, lane));
  } finally {
    agent.destroy();
  }
  return { requests: keyIds.length, seconds: (performance.now() - started) / 1000, failures };
}

function post(agent: Agent, target: Target, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      target.url,
      {
        method: "POST",
        agent,
        headers: { ...target.headers, "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
