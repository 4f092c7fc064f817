import type { DescMethod } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { findHuaweiCode } from "../errors/kms-error.js";
import type { CallInfo } from "../transport/call-info.js";
import { connectCodeName } from "../transport/rpc/rpc-errors.js";

/**
 * What the per-request observers (metrics, access log) learn of each
 * request. Nothing here may hold request data beyond the project: no
 * message fields, no headers.
 */
export interface FinishedRpc {
  readonly method: DescMethod;
  /** The transport's facts about the call; undefined for calls without a transport. */
  readonly call: CallInfo | undefined;
  readonly projectId: string;
  /** "OK" or what was answered: the Huawei code, else (health, reflection) the Connect code name. */
  readonly outcome: string;
  readonly error: ConnectError | undefined;
  /** From the request's arrival (its body read included) to its answer. */
  readonly latencyUs: number;
}

export interface RequestObserver {
  /** Called once per RPC, when its outcome is known. */
  rpcFinished(rpc: FinishedRpc): void;
  /** Called for each request the transport refused before any RPC ran. */
  rejected(call: CallInfo, projectId: string, code: string): void;
}

export const OK_OUTCOME = "OK";

export function outcomeOf(error: ConnectError): string {
  return findHuaweiCode(error) ?? connectCodeName(error.code);
}
