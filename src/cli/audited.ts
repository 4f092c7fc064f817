import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { ConnectError } from "@connectrpc/connect";
import { latencyUs } from "../audit/latency.js";
import { principalKey, principalName } from "../auth/principal.js";
import type { KmsCore } from "../core/kms-core.js";
import { huaweiCodeOf } from "../errors/kms-error.js";
import { withCore } from "./admin-call.js";
import { type CommandContext, UsageError } from "./command.js";

/** What an admin command's audit record names: filled in as the command learns it. */
export interface AuditTarget {
  /** The project acted on ("" when none, or every project). */
  projectId: string;
  /** The access key, token id or root key fingerprint acted on (recorded in the key id field). */
  subject: string;
}

/**
 * Runs an admin command (credentials, tokens, root key) against the store
 * and records it in the audit trail like an RPC made from the CLI: protocol
 * "cli", the local admin as principal, the access key, token id or root key
 * fingerprint in the key id field. Never a secret key, token or root key.
 * An unknown access key or token id, or another mistake in the arguments,
 * is recorded as KMS.0308 (invalid parameter).
 */
export function audited(
  context: CommandContext,
  operation: string,
  work: (core: KmsCore, target: AuditTarget) => Promise<number>,
): Promise<number> {
  return withCore(context.config, async (core) => {
    const started = performance.now();
    const time = Date.now();
    const target: AuditTarget = { projectId: "", subject: "" };
    let outcome = "OK";
    try {
      return await work(core, target);
    } catch (error) {
      outcome =
        error instanceof UsageError
          ? "KMS.0308"
          : error instanceof ConnectError
            ? huaweiCodeOf(error)
            : "KMS.0101";
      throw error;
    } finally {
      const admin = core.adminContext().get(principalKey);
      core.auditLog.record({
        time,
        requestId: randomUUID(),
        protocol: "cli",
        projectId: target.projectId,
        principal: admin === undefined ? "cli:" : principalName(admin),
        operation,
        keyId: target.subject,
        sequence: "",
        outcome,
        latencyUs: latencyUs(started),
        context: {},
      });
    }
  });
}
