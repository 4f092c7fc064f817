import http from "node:http";
import type http2 from "node:http2";

/** What a held request got back. */
export interface HeldReply {
  readonly status: number;
  readonly body: string;
  readonly requestId: string | undefined;
}

/**
 * A request whose body is sent in two parts: the head and the first part
 * now, the rest on release(). Between the two the server has it in flight
 * (its head read, its body incomplete), for as long as the test wants.
 */
export interface HeldRequest {
  release(): void;
  /** Settles when the answer is complete; rejects if the connection fails. */
  readonly reply: Promise<HeldReply>;
}

/** Time for bytes written on loopback to reach the server and be parsed. */
export const SETTLE_MS = 150;

/** An HTTP/1.1 POST held mid-body, on its own connection. */
export async function holdHttp1(
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<HeldRequest> {
  const bytes = Buffer.from(body);
  const half = Math.floor(bytes.length / 2);
  const request = http.request(url, {
    method: "POST",
    agent: false,
    headers: { ...headers, "content-length": String(bytes.length) },
  });
  const reply = new Promise<HeldReply>((resolve, reject) => {
    request.on("error", reject);
    request.on("response", (response) => {
      let text = "";
      response.setEncoding("utf8").on("data", (chunk: string) => {
        text += chunk;
      });
      response.on("error", reject);
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          body: text,
          requestId: header(response.headers["x-request-id"]),
        }),
      );
    });
  });
  reply.catch(() => {});
  await new Promise<void>((resolve) => request.write(bytes.subarray(0, half), () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  return { release: () => request.end(bytes.subarray(half)), reply };
}

/** An HTTP/2 POST held mid-body, on the given session. */
export async function holdHttp2(
  session: http2.ClientHttp2Session,
  path: string,
  headers: Record<string, string>,
  body: string,
): Promise<HeldRequest> {
  const bytes = Buffer.from(body);
  const half = Math.floor(bytes.length / 2);
  const stream = session.request({ ":method": "POST", ":path": path, ...headers });
  const reply = new Promise<HeldReply>((resolve, reject) => {
    let status = 0;
    let requestId: string | undefined;
    let text = "";
    stream.on("response", (responseHeaders) => {
      status = Number(responseHeaders[":status"]);
      requestId = header(responseHeaders["x-request-id"]);
    });
    stream.setEncoding("utf8").on("data", (chunk: string) => {
      text += chunk;
    });
    stream.on("end", () => resolve({ status, body: text, requestId }));
    stream.on("error", reject);
  });
  reply.catch(() => {});
  await new Promise<void>((resolve) => stream.write(bytes.subarray(0, half), () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  return { release: () => stream.end(bytes.subarray(half)), reply };
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
