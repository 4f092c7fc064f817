import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/**
 * A gRPC health client as probes build it: @grpc/grpc-js with the
 * health.proto the gRPC project ships (in grpc-health-check), not kmsd's
 * generated code. It sends no credentials.
 */

const HEALTH_PROTO = fileURLToPath(
  new URL("../../node_modules/grpc-health-check/proto/health/v1/health.proto", import.meta.url),
);

export type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

interface HealthStub extends grpc.Client {
  Check(
    request: { service: string },
    callback: (error: grpc.ServiceError | null, response?: { status: ServingStatus }) => void,
  ): grpc.ClientUnaryCall;
  List(
    request: Record<string, never>,
    callback: (
      error: grpc.ServiceError | null,
      response?: { statuses: Record<string, { status: ServingStatus }> },
    ) => void,
  ): grpc.ClientUnaryCall;
  Watch(request: { service: string }): grpc.ClientReadableStream<{ status: ServingStatus }>;
}

export interface HealthClient {
  check(service: string): Promise<ServingStatus>;
  list(): Promise<Record<string, ServingStatus>>;
  /** Statuses as they arrive; `ended` resolves with the call's final status. */
  watch(service: string): HealthWatch;
  close(): void;
}

export interface HealthWatch {
  readonly statuses: ServingStatus[];
  /** Resolves once `count` statuses have arrived. */
  received(count: number): Promise<ServingStatus[]>;
  readonly ended: Promise<grpc.StatusObject>;
  cancel(): void;
}

export function createHealthClient(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = {},
): HealthClient {
  const definition = protoLoader.loadSync(HEALTH_PROTO, {
    keepCase: true,
    enums: String,
    defaults: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: {
      health: {
        v1: { Health: new (...args: ConstructorParameters<typeof grpc.Client>) => HealthStub };
      };
    };
  };
  const stub = new loaded.grpc.health.v1.Health(address, credentials, options);
  return {
    check(service) {
      return new Promise((resolve, reject) => {
        stub.Check({ service }, (error, response) =>
          error || response === undefined ? reject(error) : resolve(response.status),
        );
      });
    },
    list() {
      return new Promise((resolve, reject) => {
        stub.List({}, (error, response) => {
          if (error || response === undefined) {
            reject(error);
            return;
          }
          const statuses: Record<string, ServingStatus> = {};
          for (const [name, value] of Object.entries(response.statuses))
            statuses[name] = value.status;
          resolve(statuses);
        });
      });
    },
    watch(service) {
      const call = stub.Watch({ service });
      const statuses: ServingStatus[] = [];
      const waiters: (() => void)[] = [];
      call.on("data", (message: { status: ServingStatus }) => {
        statuses.push(message.status);
        for (const wake of waiters.splice(0)) wake();
      });
      call.on("error", () => {});
      const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
      return {
        statuses,
        ended,
        received(count) {
          return new Promise((resolve, reject) => {
            const check = () => {
              if (statuses.length >= count) resolve(statuses.slice(0, count));
              else waiters.push(check);
            };
            void ended.then((status) =>
              statuses.length >= count
                ? undefined
                : reject(new Error(`watch ended (${status.code}) after ${statuses.join(", ")}`)),
            );
            check();
          });
        },
        cancel: () => call.cancel(),
      };
    },
    close: () => stub.close(),
  };
}

export { grpc };
