import { createContextKey } from "@connectrpc/connect";

export type Protocol = "grpc" | "grpc-web" | "connect" | "rest";

/** What kmsd knows about a call before any RPC code runs. */
export interface CallInfo {
  /** Sent back as X-Request-Id; recorded in logs and the audit trail. */
  readonly requestId: string;
  readonly protocol: Protocol;
  /** performance.now() when the request arrived. */
  readonly receivedAt: number;
  /** Date.now() when the request arrived. */
  readonly receivedAtMs: number;
  readonly httpMethod: string;
  /** The request target as sent: path and query, still percent-encoded. */
  readonly rawTarget: string;
  /** A request header by lower-case name; "host" falls back to HTTP/2's :authority. */
  header(name: string): string | undefined;
  /**
   * Hex SHA-256 of the request message bytes as sent: the body for REST and
   * Connect unary, the message inside the envelope for gRPC and gRPC-Web.
   * Only valid once the body has been read.
   */
  bodyHash(): string;
  /** Whether the call's audit record was written (every call gets exactly one). */
  readonly audited: boolean;
  markAudited(): void;
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
