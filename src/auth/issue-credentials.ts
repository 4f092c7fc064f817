import { randomBytes } from "node:crypto";
import { credentialSecretBinding, WRAP_IV_LENGTH, wrapSecret } from "../crypto/key-wrap.js";
import type { RootKey } from "../keys/root-key.js";
import { type AccessStore, CredentialState, type Role } from "../keystore/access-types.js";
import { newAccessKey, newSecretKey, newToken, newTokenId, tokenHash } from "./secrets.js";

/** A new access key pair: the secret is shown to its owner once, then kept only wrapped. */
export interface IssuedCredential {
  readonly access_key: string;
  readonly secret_key: string;
  readonly project_id: string;
  readonly role: Role;
}

export interface IssuedToken {
  readonly token: string;
  readonly token_id: string;
  readonly project_id: string;
  readonly role: Role;
  /** ISO 8601. */
  readonly expires_at: string;
}

export async function issueCredential(
  store: AccessStore,
  rootKey: RootKey,
  request: { projectId: string; role: Role; description?: string; now: number },
): Promise<IssuedCredential> {
  const accessKey = newAccessKey();
  const secretKey = newSecretKey();
  await store.createCredential({
    accessKey,
    projectId: request.projectId,
    role: request.role,
    wrappedSecret: wrapSecret(
      rootKey.bytes,
      credentialSecretBinding(accessKey),
      Buffer.from(secretKey, "utf8"),
      randomBytes(WRAP_IV_LENGTH),
    ),
    rootKeyId: rootKey.id,
    state: CredentialState.Enabled,
    createdAt: request.now,
    description: request.description ?? "",
  });
  return {
    access_key: accessKey,
    secret_key: secretKey,
    project_id: request.projectId,
    role: request.role,
  };
}

export async function issueToken(
  store: AccessStore,
  request: { projectId: string; role: Role; ttlMs: number; description?: string; now: number },
): Promise<IssuedToken> {
  const token = newToken();
  const tokenId = newTokenId();
  const expiresAt = request.now + request.ttlMs;
  await store.createToken({
    tokenId,
    tokenHash: tokenHash(token),
    projectId: request.projectId,
    role: request.role,
    createdAt: request.now,
    expiresAt,
    revokedAt: null,
    description: request.description ?? "",
  });
  return {
    token,
    token_id: tokenId,
    project_id: request.projectId,
    role: request.role,
    expires_at: new Date(expiresAt).toISOString(),
  };
}
