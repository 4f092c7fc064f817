import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthState } from "./health-state.js";

/**
 * grpc.health.v1.Health, as gRPC's health checking protocol defines it
 * (grpc/grpc doc/health-checking.md): "" is the server, each other name a
 * service; an unknown name is NOT_FOUND for Check and SERVICE_UNKNOWN for
 * Watch. Watch sends the status at once and on every change, and ends
 * after sending NOT_SERVING when shutdown begins (clients retry with
 * backoff, by the protocol).
 */
export function createHealthService(health: HealthState): ServiceImpl<typeof Health> {
  const statusOf = (service: string): ServingStatus | undefined => {
    const serving = health.serviceServing(service);
    if (serving === undefined) return undefined;
    return serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };

  return {
    check(request) {
      const status = statusOf(request.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${JSON.stringify(request.service)}`, Code.NotFound);
      }
      return { status };
    },

    async *watch(request, context) {
      let sent: ServingStatus | undefined;
      for (;;) {
        const status = statusOf(request.service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (status !== sent) {
          yield { status };
          sent = status;
        }
        if (health.shuttingDown || context.signal.aborted) return;
        await health.nextChange(context.signal);
      }
    },

    list() {
      const statuses: Record<string, HealthCheckResponse> = {};
      for (const service of ["", ...health.services]) {
        statuses[service] = create(HealthCheckResponseSchema, { status: statusOf(service) });
      }
      return { statuses };
    },
  };
}
