/**
 * The store's contract for who may call kmsd: access keys (AK/SK pairs) and
 * bearer tokens. Secrets never cross it in the clear: an access key's secret
 * is wrapped under the root key, a token is kept only as its SHA-256.
 */

export type Role = "admin" | "user";

export const CredentialState = { Enabled: "enabled", Disabled: "disabled" } as const;
export type CredentialState = (typeof CredentialState)[keyof typeof CredentialState];

export interface CredentialRecord {
  /** Public identifier (Huawei's AK). */
  readonly accessKey: string;
  readonly projectId: string;
  readonly role: Role;
  /** The secret key (SK), wrapped under the root key named by rootKeyId. */
  readonly wrappedSecret: Uint8Array;
  readonly rootKeyId: string;
  readonly state: CredentialState;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  readonly description: string;
}

export interface TokenRecord {
  /** Public identifier, recorded in the audit trail instead of the token. */
  readonly tokenId: string;
  /** Hex SHA-256 of the token: the token itself is never stored. */
  readonly tokenHash: string;
  readonly projectId: string;
  readonly role: Role;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly revokedAt: number | null;
  readonly description: string;
}

export interface AccessStore {
  /** @throws CredentialExistsError when the access key is taken. */
  createCredential(credential: CredentialRecord): Promise<void>;
  getCredential(accessKey: string): Promise<CredentialRecord | undefined>;
  /** Every credential, or those of one project; oldest first. */
  listCredentials(projectId?: string): Promise<CredentialRecord[]>;
  /** False when there is no such credential. */
  setCredentialState(accessKey: string, state: CredentialState): Promise<boolean>;
  /** False when there is no such credential. */
  deleteCredential(accessKey: string): Promise<boolean>;

  /**
   * Up to `limit` credentials whose secret key is wrapped under a root key
   * other than `rootKeyId` (root key rotation's work list; any order).
   */
  listCredentialsNotWrappedBy(rootKeyId: string, limit: number): Promise<CredentialRecord[]>;
  /**
   * Compare-and-set as KeyStore.rewrapKeyVersion, for a credential's wrapped
   * secret key: false when it is no longer wrapped under `expectedRootKeyId`
   * or is gone. Appends nothing to the change feed (the secret is unchanged).
   */
  rewrapCredential(
    accessKey: string,
    expectedRootKeyId: string,
    wrappedSecret: Uint8Array,
    rootKeyId: string,
  ): Promise<boolean>;

  createToken(token: TokenRecord): Promise<void>;
  getTokenByHash(tokenHash: string): Promise<TokenRecord | undefined>;
  /** Every token, or those of one project; oldest first. */
  listTokens(projectId?: string): Promise<TokenRecord[]>;
  /** Marks the token revoked at `now`; false when there is no such token. */
  revokeToken(tokenId: string, now: number): Promise<boolean>;
}

export class CredentialExistsError extends Error {
  constructor(readonly accessKey: string) {
    super(`access key ${accessKey} already exists`);
    this.name = "CredentialExistsError";
  }
}
