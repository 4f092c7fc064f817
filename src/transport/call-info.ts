import { createContextKey } from "@connectrpc/connect";

export type Protocol = "grpc" | "grpc-web" | "connect" | "rest";

/** What kmsd knows about a call before any RPC code runs. */
export interface CallInfo {
  /** Sent back as X-Request-Id; recorded in logs and the audit trail. */
  readonly requestId: string;
  readonly protocol: Protocol;
  /** performance.now() when the request arrived. */
  readonly receivedAt: number;
}

export const callInfoKey = createContextKey<CallInfo | undefined>(undefined, {
  description: "kmsd call info",
});

/** The protocol a request to an RPC path speaks, told by its content type. */
export function protocolOfContentType(contentType: string | undefined): Protocol {
  if (contentType === undefined) return "connect";
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType.startsWith("application/grpc")) return "grpc";
  return "connect";
}
