import { type DescMethod, type DescService, getOption } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { http } from "../../gen/google/api/annotations_pb.js";
import { minimum_role, Role as ProtoRole } from "../../gen/kms/v1/rules_pb.js";
import { type HuaweiErrorCode, huaweiCodes } from "../errors/huawei-codes.js";
import type { Role } from "../keystore/access-types.js";
import { optionOf } from "../proto/options.js";

/**
 * The least role that may call an RPC, from its (kms.v1.minimum_role)
 * option. An RPC without one is for admins only: a new RPC is never opened
 * to users by accident.
 */
export function minimumRole(method: DescMethod): Role {
  return optionOf(method, minimum_role) === ProtoRole.USER ? "user" : "admin";
}

/** Whether a credential of this role may call the RPC (its project aside). */
export function roleAllows(role: Role, method: DescMethod): boolean {
  return role === "admin" || minimumRole(method) === "user";
}

/**
 * docs/authentication.md's table of RPCs and the roles that may call them,
 * written from the proto so that it cannot drift (test/auth checks it).
 */
export function rolesTable(service: DescService): string {
  const rows = service.methods.map((method) => {
    const rule = getOption(method, http);
    const rest =
      rule.pattern.case === undefined || rule.pattern.case === "custom"
        ? "(none)"
        : `\`${rule.pattern.case.toUpperCase()} ${rule.pattern.value}\``;
    const user = roleAllows("user", method) ? "yes" : "no";
    return `| \`${method.name}\` | ${rest} | ${user} | yes |`;
  });
  return ["| RPC | REST | user | admin |", "|---|---|---|---|", ...rows].join("\n");
}

/** When each authentication and authorization error is answered. */
const AUTH_ERRORS: readonly [HuaweiErrorCode, string][] = [
  [
    "APIGW.0301",
    "No credential; a malformed `Authorization` header; a bad signature (unknown, disabled or deleted access key, wrong secret key, tampered method, path, query, signed header or body); `X-Sdk-Date` missing, malformed or not signed; `X-Sdk-Content-Sha256` not the body's hash or not signed; an unknown or revoked token.",
  ],
  ["APIGW.0303", "`X-Sdk-Date` is more than 15 minutes away from the server's clock."],
  ["KMS.0303", "The token has expired."],
  [
    "KMS.0321",
    "The request's `project_id` (REST: the one in the path) or an `X-Project-Id` header is not the credential's project.",
  ],
  ["KMS.0307", "The credential's role may not call this RPC (see the roles table)."],
];

/** docs/authentication.md's table of authentication errors, from the error code table. */
export function authErrorsTable(): string {
  const rows = AUTH_ERRORS.map(([code, when]) => {
    const entry = huaweiCodes[code];
    const body = "flatBody" in entry ? "flat" : "nested";
    return `| \`${code}\` | ${entry.httpStatus} | ${body} | \`${Code[entry.connectCode]}\` | ${when} |`;
  });
  return [
    "| Huawei code | HTTP status (REST) | REST body | Connect / gRPC code | When |",
    "|---|---|---|---|---|",
    ...rows,
  ].join("\n");
}
