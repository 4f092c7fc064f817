import { type DescMethod, getOption } from "@bufbuild/protobuf";
import { minimum_role, Role as ProtoRole } from "../../gen/kms/v1/rules_pb.js";
import { kmsError } from "../errors/kms-error.js";
import type { Principal } from "./principal.js";

/**
 * May this principal call this RPC for this project? The least role each RPC
 * needs is declared in the proto ((kms.v1.minimum_role)); RPCs without one
 * are for admins only.
 */
export function authorize(principal: Principal, method: DescMethod, projectId: string): void {
  if (principal.projectId !== undefined && projectId !== principal.projectId) {
    throw kmsError("KMS.0321", "the request's project_id is not the credential's project");
  }
  const needed = getOption(method, minimum_role);
  const allowed = principal.role === "admin" || needed === ProtoRole.USER;
  if (!allowed) {
    throw kmsError("KMS.0307", `role ${principal.role} may not call ${method.name}`);
  }
}
