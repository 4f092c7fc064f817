import type Database from "better-sqlite3";
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
import type { ChangeFeed } from "./change-feed.js";
import { isConstraintViolation, writeTransaction } from "./sql.js";

/**
 * The credentials and tokens tables, on the store's main connection: like
 * key writes they are synchronous=FULL, since a credential an administrator
 * was shown must still work after a power loss.
 */
export class AccessTables {
  readonly #db: Database.Database;
  readonly #changes: ChangeFeed;
  readonly #sql;

  constructor(db: Database.Database, changes: ChangeFeed) {
    this.#db = db;
    this.#changes = changes;
    // One project's list and the full list are separate statements: with an
    // `@projectId IS NULL OR` filter SQLite would not use the project index.
    this.#sql = {
      insertCredential: db.prepare<[CredentialRecord]>(
        `INSERT INTO credentials (${CREDENTIAL_COLUMNS}) VALUES (@accessKey, @projectId, @role,
          @wrappedSecret, @rootKeyId, @state, @createdAt, @description)`,
      ),
      getCredential: db.prepare<[string], CredentialRow>(
        `SELECT ${CREDENTIAL_COLUMNS} FROM credentials WHERE access_key = ?`,
      ),
      listCredentials: db.prepare<[], CredentialRow>(
        `SELECT ${CREDENTIAL_COLUMNS} FROM credentials ORDER BY created_at, access_key`,
      ),
      listProjectCredentials: db.prepare<[string], CredentialRow>(
        `SELECT ${CREDENTIAL_COLUMNS} FROM credentials WHERE project_id = ?
          ORDER BY created_at, access_key`,
      ),
      setCredentialState: db
        .prepare<[CredentialState, string], string>(
          "UPDATE credentials SET state = ? WHERE access_key = ? RETURNING project_id",
        )
        .pluck(),
      deleteCredential: db
        .prepare<[string], string>(
          "DELETE FROM credentials WHERE access_key = ? RETURNING project_id",
        )
        .pluck(),
      insertToken: db.prepare<[TokenRecord]>(
        `INSERT INTO tokens (${TOKEN_COLUMNS}) VALUES (@tokenId, @tokenHash, @projectId, @role,
          @createdAt, @expiresAt, @revokedAt, @description)`,
      ),
      getTokenByHash: db.prepare<[string], TokenRow>(
        `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?`,
      ),
      listTokens: db.prepare<[], TokenRow>(
        `SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at, token_id`,
      ),
      listProjectTokens: db.prepare<[string], TokenRow>(
        `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE project_id = ? ORDER BY created_at, token_id`,
      ),
      // coalesce keeps the first revocation time: the one the audit trail agrees with.
      revokeToken: db
        .prepare<[number, string], string>(
          `UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE token_id = ?
            RETURNING project_id`,
        )
        .pluck(),
    };
  }

  createCredential(credential: CredentialRecord): void {
    writeTransaction(this.#db, () => {
      try {
        this.#sql.insertCredential.run(credential);
      } catch (error) {
        if (isConstraintViolation(error, "PRIMARYKEY")) {
          throw new CredentialExistsError(credential.accessKey);
        }
        throw error;
      }
      this.#changes.record("credential", credential.projectId, credential.accessKey);
    });
  }

  getCredential(accessKey: string): CredentialRecord | undefined {
    const row = this.#sql.getCredential.get(accessKey);
    return row && toCredentialRecord(row);
  }

  listCredentials(projectId?: string): CredentialRecord[] {
    const rows =
      projectId === undefined
        ? this.#sql.listCredentials.all()
        : this.#sql.listProjectCredentials.all(projectId);
    return rows.map(toCredentialRecord);
  }

  setCredentialState(accessKey: string, state: CredentialState): boolean {
    return writeTransaction(this.#db, () => {
      const projectId = this.#sql.setCredentialState.get(state, accessKey);
      if (projectId === undefined) return false;
      this.#changes.record("credential", projectId, accessKey);
      return true;
    });
  }

  deleteCredential(accessKey: string): boolean {
    return writeTransaction(this.#db, () => {
      const projectId = this.#sql.deleteCredential.get(accessKey);
      if (projectId === undefined) return false;
      this.#changes.record("credential", projectId, accessKey);
      return true;
    });
  }

  createToken(token: TokenRecord): void {
    writeTransaction(this.#db, () => {
      this.#sql.insertToken.run(token);
      this.#changes.record("token", token.projectId, token.tokenId);
    });
  }

  getTokenByHash(tokenHash: string): TokenRecord | undefined {
    const row = this.#sql.getTokenByHash.get(tokenHash);
    return row && toTokenRecord(row);
  }

  listTokens(projectId?: string): TokenRecord[] {
    const rows =
      projectId === undefined
        ? this.#sql.listTokens.all()
        : this.#sql.listProjectTokens.all(projectId);
    return rows.map(toTokenRecord);
  }

  revokeToken(tokenId: string, now: number): boolean {
    return writeTransaction(this.#db, () => {
      const projectId = this.#sql.revokeToken.get(now, tokenId);
      if (projectId === undefined) return false;
      this.#changes.record("token", projectId, tokenId);
      return true;
    });
  }
}
