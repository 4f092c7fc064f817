import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, MethodImpl } from "@connectrpc/connect";
import { max_request_bytes } from "../../gen/kms/v1/rules_pb.js";
import { optionOf } from "../proto/options.js";

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
