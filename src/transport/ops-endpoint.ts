import { kmsError, toKmsError } from "../errors/kms-error.js";
import type { NodeCall } from "./node-call.js";
import type { NodeRequest } from "./read-body.js";
import { type NodeResponse, writeHuaweiError } from "./rest/huawei-response.js";

/** What an operations endpoint answers. */
export interface OpsAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/**
 * An unauthenticated GET endpoint for operators and their tools (probes,
 * Prometheus, API explorers): /healthz, /readyz, /metrics, /openapi.json.
 * None reveals a key, a credential or request data.
 */
export type OpsEndpoint = () => OpsAnswer | Promise<OpsAnswer>;

const ALLOWED = "GET, HEAD";

export function serveOpsEndpoint(
  endpoint: OpsEndpoint,
  request: NodeRequest,
  response: NodeResponse,
  call: NodeCall,
): void {
  if (request.method !== "GET" && request.method !== "HEAD") {
    const error = kmsError("KMS.0215", `${request.method} is not supported here; use GET`, {
      metadata: { allow: ALLOWED },
    });
    writeHuaweiError(response, error, call.requestId);
    return;
  }
  Promise.resolve()
    .then(endpoint)
    .then(
      (answer) => {
        response.writeHead(answer.status, {
          "content-type": answer.contentType,
          "content-length": Buffer.byteLength(answer.body),
          // Probes and scrapers want the state now, never a cached one.
          "cache-control": "no-store",
        });
        if (request.method === "HEAD") response.end();
        else response.end(answer.body);
      },
      (reason: unknown) => writeHuaweiError(response, toKmsError(reason), call.requestId),
    );
}
