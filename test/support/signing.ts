/**
 * Signing requests to kmsd with Huawei's own Node SDK
 * (@huaweicloud/huaweicloud-sdk-core): its ClientBuilder + BasicCredentials
 * client for REST, and its AKSKSigner for requests a test sends itself,
 * REST or RPC (the RPC way is the one docs/authentication.md documents).
 */
import { createHash } from "node:crypto";
import http from "node:http";
import { AKSKSigner } from "@huaweicloud/huaweicloud-sdk-core/auth/AKSKSigner.js";
import { BasicCredentials } from "@huaweicloud/huaweicloud-sdk-core/auth/BasicCredentials.js";
import { ClientBuilder } from "@huaweicloud/huaweicloud-sdk-core/ClientBuilder.js";
import type { HcClient } from "@huaweicloud/huaweicloud-sdk-core/HcClient.js";
import { type IssuedCredential, issueCredential } from "../../src/auth/issue-credentials.js";
import { withCore } from "../../src/cli/admin-call.js";
import type { KmsdConfig } from "../../src/config/settings.js";
import type { Role } from "../../src/keystore/access-types.js";

/** An access key pair as `kmsd credentials create` prints it. */
export type TestCredential = IssuedCredential;

/**
 * A new access key pair for the project, issued straight into the store of
 * the data directory (as `kmsd credentials create` does).
 */
export function issueTestCredential(
  config: KmsdConfig,
  projectId: string,
  role: Role = "admin",
): Promise<TestCredential> {
  return withCore(config, ({ store, rootKey }) =>
    issueCredential(store, rootKey, { projectId, role, description: "tests", now: Date.now() }),
  );
}

/** The SDK's credential object for an access key pair. */
export function basicCredentials(credential: TestCredential): BasicCredentials {
  return new BasicCredentials()
    .withAk(credential.access_key)
    .withSk(credential.secret_key)
    .withProjectId(credential.project_id);
}

/** Huawei's SDK client (HcClient) for kmsd at `url`, signing with the credential. */
export function sdkClient(url: string, credential: TestCredential): HcClient {
  return new ClientBuilder((client) => client)
    .withEndpoint(url)
    .withCredential(basicCredentials(credential))
    .build();
}

/** X-Sdk-Date for an instant: YYYYMMDDTHHMMSSZ (UTC). */
export function sdkDate(ms: number = Date.now()): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace(/[-:]/g, "")}Z`;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Headers by name, as the signer returns them (it adds `host` and Authorization). */
export type SignedHeaders = Record<string, string>;

function signWithSdk(
  credential: TestCredential,
  request: {
    method: string;
    endpoint: string;
    headers: Record<string, string>;
    data?: unknown;
    queryParams?: Record<string, string | string[]>;
  },
): SignedHeaders {
  return AKSKSigner.sign(request, basicCredentials(credential)) as SignedHeaders;
}

export interface RestSigning {
  /** http://host:port */
  readonly baseUrl: string;
  /** The path, e.g. /v1.0/<project>/kms/list-keys. */
  readonly path: string;
  readonly method?: string;
  /** The JSON body: the SDK signs JSON.stringify(data), which is what is sent. */
  readonly data?: unknown;
  /** Query parameters the signer signs (send them with the same values). */
  readonly queryParams?: Record<string, string | string[]>;
  /** More headers to sign and send. */
  readonly headers?: Record<string, string>;
  /** X-Sdk-Date to sign; by default the signer's own (now). */
  readonly date?: string;
  /** X-Project-Id to send (as BasicCredentials does); null for none. Default: the credential's. */
  readonly projectHeader?: string | null;
}

/**
 * Signs a REST request as the SDK does (BaseCredentials.processAuthRequest:
 * content type, X-Project-Id, then AKSKSigner.sign). Returns every header to
 * send, `host` and Authorization included.
 */
export function signRest(credential: TestCredential, request: RestSigning): SignedHeaders {
  const projectHeader =
    request.projectHeader === undefined ? credential.project_id : request.projectHeader;
  const headers: Record<string, string> = {
    "content-type": "application/json",
    ...(projectHeader === null ? {} : { "X-Project-Id": projectHeader }),
    ...(request.date === undefined ? {} : { "X-Sdk-Date": request.date }),
    ...request.headers,
  };
  return signWithSdk(credential, {
    method: request.method ?? "POST",
    endpoint: `${request.baseUrl}${request.path}`,
    headers,
    ...(request.data === undefined ? {} : { data: request.data }),
    ...(request.queryParams === undefined ? {} : { queryParams: request.queryParams }),
  });
}

export interface RpcSigning {
  /** host:port, as the client sends it in :authority (HTTP/2) or Host (HTTP/1.1). */
  readonly authority: string;
  /** /kms.v1.KmsService/<Method> */
  readonly path: string;
  /** The request message bytes as sent (without gRPC's 5-byte envelope prefix). */
  readonly message: Uint8Array | string;
  /** More headers to sign and send. */
  readonly headers?: Record<string, string>;
  readonly date?: string;
}

/**
 * Signs an RPC the documented way (docs/authentication.md): AKSKSigner.sign
 * on a pseudo-request POST http://<authority><path>, with the message's
 * SHA-256 declared in a signed X-Sdk-Content-Sha256. Returns the headers to
 * send (without `host`: the authority is sent as :authority / Host anyway).
 */
export function signRpc(credential: TestCredential, request: RpcSigning): SignedHeaders {
  const signed = signWithSdk(credential, {
    method: "POST",
    endpoint: `http://${request.authority}${request.path}`,
    headers: {
      "X-Sdk-Content-Sha256": sha256Hex(request.message),
      ...(request.date === undefined ? {} : { "X-Sdk-Date": request.date }),
      ...request.headers,
    },
  });
  const { host: _host, ...headers } = signed;
  return headers;
}

/** A response as the tests read it. */
export interface RawReply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** The parsed body; undefined when it is not JSON. */
  readonly json: unknown;
  readonly requestId: string | undefined;
}

/**
 * Sends a request with exactly these headers (Host included: fetch would
 * replace it) over HTTP/1.1.
 */
export function sendRaw(
  url: string,
  request: { method?: string; headers: Record<string, string>; body?: string | Uint8Array },
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      url,
      { method: request.method ?? "POST", headers: request.headers, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          const requestId = response.headers["x-request-id"];
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text,
            json,
            requestId: typeof requestId === "string" ? requestId : undefined,
          });
        });
      },
    );
    outgoing.on("error", reject);
    outgoing.end(request.body);
  });
}

/** Signs a REST request with the SDK's signer and sends it (body: JSON.stringify(data)). */
export function sendSignedRest(
  credential: TestCredential,
  request: RestSigning,
  tamper: {
    /** Sent instead of the signed body. */
    body?: string;
    /** Sent instead of the signed path (and query). */
    target?: string;
    /** Headers sent over the signed ones. */
    headers?: Record<string, string>;
  } = {},
): Promise<RawReply> {
  const headers = { ...signRest(credential, request), ...tamper.headers };
  const query =
    request.queryParams === undefined
      ? ""
      : `?${new URLSearchParams(
          Object.entries(request.queryParams).flatMap(([key, value]) =>
            (Array.isArray(value) ? value : [value]).map((item): [string, string] => [key, item]),
          ),
        ).toString()}`;
  const body =
    tamper.body ?? (request.data === undefined ? undefined : JSON.stringify(request.data));
  return sendRaw(`${request.baseUrl}${tamper.target ?? `${request.path}${query}`}`, {
    method: request.method ?? "POST",
    headers,
    ...(body === undefined ? {} : { body }),
  });
}

/**
 * POST /v1.0/{project_id}/kms/<operation> through Huawei's SDK client: it
 * fills {project_id} from the credential, signs, and sends. Resolves to the
 * JSON answer (with the SDK's httpStatusCode added); rejects on errors.
 */
export function sdkPost(
  client: HcClient,
  operation: string,
  data: Record<string, unknown>,
): Promise<Record<string, unknown> & { httpStatusCode?: number }> {
  return client.sendRequest({
    method: "POST",
    url: `/v1.0/{project_id}/kms/${operation}`,
    contentType: "application/json",
    queryParams: {},
    pathParams: {},
    headers: {},
    data,
  });
}
