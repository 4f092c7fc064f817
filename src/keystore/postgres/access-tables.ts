import {
  CredentialExistsError,
  type CredentialRecord,
  type CredentialState,
  type TokenRecord,
} from "../access-types.js";
import {
  CREDENTIAL_COLUMNS,
  type CredentialRow,
  TOKEN_COLUMNS,
  type TokenRow,
  toCredentialRecord,
  toTokenRecord,
} from "../rows.js";
import type { ChangeKind } from "../types.js";
import type { PgChangeFeed } from "./change-feed.js";
import { isUniqueViolation } from "./connection.js";
import type { PgDatabase, Statement } from "./database.js";

/** The credentials and tokens tables; every mutation appends to the change feed. */
export class PgAccessTables {
  constructor(
    private readonly db: PgDatabase,
    private readonly changes: PgChangeFeed,
  ) {}

  async createCredential(credential: CredentialRecord): Promise<void> {
    const c = credential;
    await this.db.transaction(async (tx) => {
      try {
        await tx.count({
          text: `INSERT INTO credentials (${CREDENTIAL_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          values: [
            c.accessKey,
            c.projectId,
            c.role,
            c.wrappedSecret,
            c.rootKeyId,
            c.state,
            c.createdAt,
            c.description,
          ],
        });
      } catch (error) {
        if (isUniqueViolation(error, "credentials_pkey")) {
          throw new CredentialExistsError(c.accessKey);
        }
        throw error;
      }
      this.changes.record(tx, "credential", c.projectId, c.accessKey);
    });
  }

  async getCredential(accessKey: string): Promise<CredentialRecord | undefined> {
    const [row] = await this.db.rows<CredentialRow>({
      name: "kmsd_get_credential",
      text: `SELECT ${CREDENTIAL_COLUMNS} FROM credentials WHERE access_key = $1`,
      values: [accessKey],
    });
    return row && toCredentialRecord(row);
  }

  async listCredentials(projectId?: string): Promise<CredentialRecord[]> {
    const rows = await this.db.rows<CredentialRow>({
      text: `SELECT ${CREDENTIAL_COLUMNS} FROM credentials
        WHERE $1::text IS NULL OR project_id = $1 ORDER BY created_at, access_key`,
      values: [projectId ?? null],
    });
    return rows.map(toCredentialRecord);
  }

  setCredentialState(accessKey: string, state: CredentialState): Promise<boolean> {
    return this.#mutate("credential", accessKey, {
      text: "UPDATE credentials SET state = $2 WHERE access_key = $1 RETURNING project_id",
      values: [accessKey, state],
    });
  }

  deleteCredential(accessKey: string): Promise<boolean> {
    return this.#mutate("credential", accessKey, {
      text: "DELETE FROM credentials WHERE access_key = $1 RETURNING project_id",
      values: [accessKey],
    });
  }

  async createToken(token: TokenRecord): Promise<void> {
    const t = token;
    await this.db.transaction(async (tx) => {
      await tx.count({
        text: `INSERT INTO tokens (${TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        values: [
          t.tokenId,
          t.tokenHash,
          t.projectId,
          t.role,
          t.createdAt,
          t.expiresAt,
          t.revokedAt,
          t.description,
        ],
      });
      this.changes.record(tx, "token", t.projectId, t.tokenId);
    });
  }

  async getTokenByHash(tokenHash: string): Promise<TokenRecord | undefined> {
    const [row] = await this.db.rows<TokenRow>({
      name: "kmsd_get_token",
      text: `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE token_hash = $1`,
      values: [tokenHash],
    });
    return row && toTokenRecord(row);
  }

  async listTokens(projectId?: string): Promise<TokenRecord[]> {
    const rows = await this.db.rows<TokenRow>({
      text: `SELECT ${TOKEN_COLUMNS} FROM tokens
        WHERE $1::text IS NULL OR project_id = $1 ORDER BY created_at, token_id`,
      values: [projectId ?? null],
    });
    return rows.map(toTokenRecord);
  }

  revokeToken(tokenId: string, now: number): Promise<boolean> {
    // coalesce keeps the first revocation time: the one the audit trail agrees with.
    return this.#mutate("token", tokenId, {
      text: `UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE token_id = $1
        RETURNING project_id`,
      values: [tokenId, now],
    });
  }

  /** Compare-and-set of a credential's wrapped secret (root-key rotation); no change is recorded. */
  async rewrapCredential(
    accessKey: string,
    expectedRootKeyId: string,
    wrappedSecret: Uint8Array,
    rootKeyId: string,
  ): Promise<boolean> {
    const changed = await this.db.count({
      text: `UPDATE credentials SET wrapped_secret = $3, root_key_id = $4
        WHERE access_key = $1 AND root_key_id = $2`,
      values: [accessKey, expectedRootKeyId, wrappedSecret, rootKeyId],
    });
    return changed === 1;
  }

  async listCredentialsNotWrappedBy(rootKeyId: string, limit: number): Promise<CredentialRecord[]> {
    const rows = await this.db.rows<CredentialRow>({
      // Not "<>": the two ranges can use the root_key_id index (migration 2).
      text: `SELECT ${CREDENTIAL_COLUMNS} FROM credentials
        WHERE root_key_id < $1 OR root_key_id > $1 LIMIT $2`,
      values: [rootKeyId, limit],
    });
    return rows.map(toCredentialRecord);
  }

  /** Runs a statement RETURNING project_id of the row it changed; records the change if there was one. */
  async #mutate(kind: ChangeKind, id: string, statement: Statement): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx.rows<{ project_id: string }>(statement);
      if (row === undefined) return false;
      this.changes.record(tx, kind, row.project_id, id);
      return true;
    });
  }
}
