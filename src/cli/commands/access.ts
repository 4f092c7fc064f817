import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { ConnectError } from "@connectrpc/connect";
import { latencyUs } from "../../audit/latency.js";
import { issueCredential, issueToken } from "../../auth/issue-credentials.js";
import { principalKey, principalName } from "../../auth/principal.js";
import type { KmsCore } from "../../core/kms-core.js";
import { huaweiCodeOf } from "../../errors/kms-error.js";
import { CredentialState, type Role } from "../../keystore/access-types.js";
import { storeSettings, withCore } from "../admin-call.js";
import { type Command, type CommandContext, type CommandOption, UsageError } from "../command.js";

const project: CommandOption = { description: "Project id", required: true };
const role: CommandOption = {
  description: "admin (everything in the project) or user (use keys)",
  required: true,
};
const accessKey: CommandOption = { description: "Access key", required: true };

function print(context: CommandContext, value: unknown): number {
  context.stdout(`${JSON.stringify(value, null, 2)}\n`);
  return 0;
}

function parseRole(value: string | undefined): Role {
  if (value === "admin" || value === "user") return value;
  throw new UsageError(`--role must be admin or user, got ${JSON.stringify(value)}`);
}

const DAY_MS = 86_400_000;
const TTL_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS };

/** "90s", "30m", "24h", "7d" as milliseconds (at most 366 days). */
export function parseTtl(value: string | undefined): number {
  const match = /^([1-9][0-9]*)([smhd])$/.exec(value ?? "");
  const ms =
    match === null ? Number.NaN : Number(match[1]) * (TTL_UNITS[match[2] ?? ""] ?? Number.NaN);
  if (!(ms > 0 && ms <= 366 * DAY_MS)) {
    throw new UsageError(
      `--ttl must look like 30m, 24h or 7d (at most 366d), got ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

function notFound(what: string, id: string | undefined): number {
  throw new UsageError(`no ${what} ${JSON.stringify(id)}`);
}

/** What an access command's audit record names: filled in as the command learns it. */
interface AuditTarget {
  /** The project the credential or token belongs to ("" when listing every project). */
  projectId: string;
  /** The access key or token id acted on (recorded in the key id field). */
  subject: string;
}

/**
 * Runs an access command against the store and records it in the audit
 * trail like an RPC made from the CLI: protocol "cli", the local admin as
 * principal, the access key or token id in the key id field. Never the
 * secret key or the token. An unknown access key or token id, or another
 * mistake in the arguments, is recorded as KMS.0308 (invalid parameter).
 */
function audited(
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

export const accessCommands: Command[] = [
  {
    path: ["credentials", "create"],
    summary: "Create an access key (AK/SK); the secret key is printed this once.",
    options: { project, role, description: { description: "What the credential is for" } },
    settings: storeSettings,
    run: (context) =>
      audited(context, "CreateCredential", async ({ store, rootKey }, target) => {
        const { options } = context;
        target.projectId = validProject(options.project);
        const issued = await issueCredential(store, rootKey, {
          projectId: target.projectId,
          role: parseRole(options.role),
          description: options.description ?? "",
          now: Date.now(),
        });
        target.subject = issued.access_key;
        return print(context, issued);
      }),
  },
  {
    path: ["credentials", "list"],
    summary: "List access keys (never their secrets).",
    options: { project: { description: "Only this project's" } },
    settings: storeSettings,
    run: (context) =>
      audited(context, "ListCredentials", async ({ store }, target) => {
        target.projectId = context.options.project ?? "";
        const credentials = await store.listCredentials(context.options.project);
        return print(
          context,
          credentials.map((c) => ({
            access_key: c.accessKey,
            project_id: c.projectId,
            role: c.role,
            state: c.state,
            created_at: new Date(c.createdAt).toISOString(),
            description: c.description,
          })),
        );
      }),
  },
  ...(["enable", "disable"] as const).map(
    (verb): Command => ({
      path: ["credentials", verb],
      summary:
        verb === "disable"
          ? "Disable an access key: its signatures stop working."
          : "Enable a disabled access key.",
      options: { "access-key": accessKey },
      settings: storeSettings,
      run: (context) =>
        audited(
          context,
          verb === "disable" ? "DisableCredential" : "EnableCredential",
          async ({ store }, target) => {
            const id = context.options["access-key"] ?? "";
            target.subject = id;
            target.projectId = (await store.getCredential(id))?.projectId ?? "";
            const state = verb === "disable" ? CredentialState.Disabled : CredentialState.Enabled;
            if (!(await store.setCredentialState(id, state))) return notFound("access key", id);
            return print(context, { access_key: id, state });
          },
        ),
    }),
  ),
  {
    path: ["credentials", "delete"],
    summary: "Delete an access key for good.",
    options: { "access-key": accessKey },
    settings: storeSettings,
    run: (context) =>
      audited(context, "DeleteCredential", async ({ store }, target) => {
        const id = context.options["access-key"] ?? "";
        target.subject = id;
        target.projectId = (await store.getCredential(id))?.projectId ?? "";
        if (!(await store.deleteCredential(id))) return notFound("access key", id);
        return print(context, { access_key: id, deleted: true });
      }),
  },
  {
    path: ["tokens", "create"],
    summary: "Create a token for X-Auth-Token; it is printed this once and stored hashed.",
    options: {
      project,
      role,
      ttl: { description: "Lifetime: 30m, 24h, 7d... (default 24h)" },
      description: { description: "What the token is for" },
    },
    settings: storeSettings,
    run: (context) =>
      audited(context, "CreateToken", async ({ store }, target) => {
        const { options } = context;
        target.projectId = validProject(options.project);
        const issued = await issueToken(store, {
          projectId: target.projectId,
          role: parseRole(options.role),
          ttlMs: parseTtl(options.ttl ?? "24h"),
          description: options.description ?? "",
          now: Date.now(),
        });
        target.subject = issued.token_id;
        return print(context, issued);
      }),
  },
  {
    path: ["tokens", "list"],
    summary: "List tokens (ids, never the tokens).",
    options: { project: { description: "Only this project's" } },
    settings: storeSettings,
    run: (context) =>
      audited(context, "ListTokens", async ({ store }, target) => {
        target.projectId = context.options.project ?? "";
        const tokens = await store.listTokens(context.options.project);
        return print(
          context,
          tokens.map((t) => ({
            token_id: t.tokenId,
            project_id: t.projectId,
            role: t.role,
            created_at: new Date(t.createdAt).toISOString(),
            expires_at: new Date(t.expiresAt).toISOString(),
            revoked_at: t.revokedAt === null ? null : new Date(t.revokedAt).toISOString(),
            description: t.description,
          })),
        );
      }),
  },
  {
    path: ["tokens", "revoke"],
    summary: "Revoke a token at once.",
    options: {
      "token-id": { description: "Token id (from tokens create or list)", required: true },
    },
    settings: storeSettings,
    run: (context) =>
      audited(context, "RevokeToken", async ({ store }, target) => {
        const id = context.options["token-id"] ?? "";
        target.subject = id;
        target.projectId =
          (await store.listTokens()).find((t) => t.tokenId === id)?.projectId ?? "";
        if (!(await store.revokeToken(id, Date.now()))) return notFound("token", id);
        return print(context, { token_id: id, revoked: true });
      }),
  },
];

function validProject(value: string | undefined): string {
  if (value === undefined || !/^[0-9a-zA-Z_-]{1,64}$/.test(value)) {
    throw new UsageError(
      `--project must match ^[0-9a-zA-Z_-]{1,64}$, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}
