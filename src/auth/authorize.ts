import type { DescMethod } from "@bufbuild/protobuf";
import { kmsError } from "../errors/kms-error.js";
import type { Principal } from "./principal.js";
import { roleAllows } from "./roles.js";

/**
 * May this principal call this RPC for this project? The least role each RPC
 * needs is declared in the proto ((kms.v1.minimum_role)); RPCs without one
 * are for admins only.
 */
export function authorize(principal: Principal, method: DescMethod, projectId: string): void {
  if (principal.projectId !== undefined && projectId !== principal.projectId) {
    throw kmsError("KMS.0321", "the request's project_id is not the credential's project");
  }
  if (!roleAllows(principal.role, method)) {
    throw kmsError("KMS.0307", `role ${principal.role} may not call ${method.name}`);
  }
}
