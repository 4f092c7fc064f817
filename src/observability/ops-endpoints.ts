import type { HealthState } from "../health/health-state.js";
import type { OpsAnswer, OpsEndpoint } from "../transport/ops-endpoint.js";
import type { KmsdMetrics } from "./metrics.js";

export interface OpsEndpointParts {
  readonly health: HealthState;
  readonly metrics: KmsdMetrics;
  /** The OpenAPI document of the REST paths, as JSON text. */
  readonly openApiJson: string;
}

function json(status: number, body: unknown): OpsAnswer {
  return { status, contentType: "application/json", body: JSON.stringify(body) };
}

/**
 * The operations endpoints by path:
 * - /healthz: the process is alive and answering (200 while it runs, also
 *   while it drains at shutdown: restarting it then would cut the drain);
 * - /readyz: it can serve: store reachable (and migrated: kmsd listens only
 *   after migrating) and not shutting down; 503 with the reason otherwise;
 * - /metrics: Prometheus text;
 * - /openapi.json: the REST paths as OpenAPI 3.1.
 */
export function createOpsEndpoints(parts: OpsEndpointParts): ReadonlyMap<string, OpsEndpoint> {
  const { health, metrics, openApiJson } = parts;
  return new Map<string, OpsEndpoint>([
    ["/healthz", () => json(200, { status: "alive" })],
    [
      "/readyz",
      () => {
        const reason = health.notServingReason;
        return reason === undefined
          ? json(200, { status: "ready" })
          : json(503, { status: "not ready", reason });
      },
    ],
    [
      "/metrics",
      async () => ({ status: 200, contentType: metrics.contentType, body: await metrics.render() }),
    ],
    ["/openapi.json", () => ({ status: 200, contentType: "application/json", body: openApiJson })],
  ]);
}
