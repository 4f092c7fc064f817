import { createContextKey } from "@connectrpc/connect";
import type { Role } from "../keystore/access-types.js";

/** Who a request was authenticated as. */
export interface Principal {
  readonly kind: "access-key" | "token" | "cli";
  /** The access key, token id or CLI user: never a secret. */
  readonly id: string;
  /** The only project it may address (undefined: any, for the local CLI). */
  readonly projectId: string | undefined;
  readonly role: Role;
}

/** The name the audit trail and logs record for a principal. */
export function principalName(principal: Principal): string {
  return principal.kind === "access-key" ? principal.id : `${principal.kind}:${principal.id}`;
}

export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "kmsd principal",
});
