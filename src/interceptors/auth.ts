import type { Interceptor } from "@connectrpc/connect";
import { authorize } from "../auth/authorize.js";
import { principalKey } from "../auth/principal.js";
import type { RequestAuthenticator } from "../auth/request-authenticator.js";
import { kmsError } from "../errors/kms-error.js";
import { callInfoKey } from "../transport/call-info.js";
import { guardInterceptor } from "./guard.js";

/**
 * Establishes who sent the request (AK/SK signature or token). It runs
 * before validation, so that an unauthenticated caller learns nothing about
 * the request rules.
 */
export function authenticationInterceptor(authenticator: RequestAuthenticator): Interceptor {
  return (next) => async (request) => {
    const call = request.contextValues.get(callInfoKey);
    if (call === undefined) throw kmsError("APIGW.0301", "the request cannot be authenticated");
    // The call is what authentication reads (method, target, headers, body hash).
    const principal = await authenticator.authenticate(call);
    request.contextValues.set(principalKey, principal);
    return next(request);
  };
}

/**
 * Checks the authenticated principal may call this RPC on this project. It
 * runs after validation, so the project_id it compares is well formed.
 */
export function authorizationInterceptor(): Interceptor {
  return guardInterceptor((request) => {
    const principal = request.contextValues.get(principalKey);
    if (principal === undefined) throw kmsError("APIGW.0301", "the request is not authenticated");
    authorize(principal, request.method, request.stream ? "" : projectIdOf(request.message));
  });
}

/** The request's project_id; "" when the message has none. */
export function projectIdOf(message: unknown): string {
  const value = (message as { projectId?: unknown }).projectId;
  return typeof value === "string" ? value : "";
}
