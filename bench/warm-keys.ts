/**
 * One pass over every key before the many-keys scenario is measured, so that
 * it measures the steady state of a key cache large enough for the working
 * set (the target's case), not a cold start where every request misses. The
 * pass's own rate is reported too: it is the all-misses figure.
 */
import { Agent, request } from "node:http";

export interface WarmResult {
  readonly requests: number;
  readonly seconds: number;
  readonly failures: number;
}

export async function encryptUnderEveryKey(
  url: string,
  token: string,
  keyIds: readonly string[],
  inFlight: number,
): Promise<WarmResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: inFlight });
  let next = 0;
  let failures = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < keyIds.length) {
      const keyId = keyIds[next++];
      const status = await post(
        agent,
        url,
        token,
        JSON.stringify({ key_id: keyId, plain_text: "xxxxxxxx" }),
      );
      if (status !== 200) failures++;
    }
  };
  try {
    await Promise.all(Array.from({ length: inFlight }, worker));
  } finally {
    agent.destroy();
  }
  return { requests: keyIds.length, seconds: (performance.now() - started) / 1000, failures };
}

function post(agent: Agent, url: string, token: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          "x-auth-token": token,
        },
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
