import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, MethodImpl } from "@connectrpc/connect";
import { max_request_bytes } from "../../gen/kms/v1/rules_pb.js";
import { optionOf } from "../proto/options.js";
import type { BodyLimits } from "./read-body.js";

/**
 * The largest request an RPC accepts: the server's limit (--max-body-bytes),
 * or the RPC's (kms.v1.max_request_bytes) when it declares a larger one.
 */
export function maxRequestBytes(method: DescMethod, serverLimit: number): number {
  return Math.max(serverLimit, optionOf(method, max_request_bytes));
}

/**
 * Registers every RPC of a service on the Connect router (gRPC, gRPC-Web,
 * Connect) with its own request limit, so that raising one RPC's limit
 * leaves every other RPC at the server's.
 */
export function registerService(
  router: ConnectRouter,
  service: DescService,
  implementation: object,
  serverLimit: number,
): void {
  for (const method of service.methods) {
    const impl = Reflect.get(implementation, method.localName) as MethodImpl<typeof method>;
    router.rpc(method, impl, { readMaxBytes: maxRequestBytes(method, serverLimit) });
  }
}

/** What a transport kmsd implements itself holds every request to. */
export interface RequestLimits {
  /** Largest body, for RPCs that declare no larger one. */
  readonly maxBodyBytes: number;
  /** Longest a client may take to send its request, in ms. */
  readonly slowClientTimeoutMs: number;
  /** Deepest nesting of a JSON body. */
  readonly maxJsonDepth: number;
  /** Longest a request may run once received, in ms (a shorter client deadline wins). */
  readonly requestTimeoutMs: number;
}

/** The body limits of one RPC's requests. */
export function bodyLimits(method: DescMethod, limits: RequestLimits): BodyLimits {
  return {
    maxBytes: maxRequestBytes(method, limits.maxBodyBytes),
    timeoutMs: limits.slowClientTimeoutMs,
  };
}

/** The time a call may take: the client's deadline, capped by the server's. */
export function effectiveTimeoutMs(
  clientTimeoutMs: number | undefined,
  limits: RequestLimits,
): number {
  return clientTimeoutMs === undefined
    ? limits.requestTimeoutMs
    : Math.min(clientTimeoutMs, limits.requestTimeoutMs);
}
