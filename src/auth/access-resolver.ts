import { unwrapSecret } from "../crypto/key-wrap.js";
import type { RootKey } from "../keys/root-key.js";
import type { AccessStore, CredentialRecord, TokenRecord } from "../keystore/access-types.js";
import type { KeyChange } from "../keystore/types.js";

export interface ResolvedCredential {
  readonly record: CredentialRecord;
  /** The clear secret key: kept only in this process's memory. */
  readonly secret: string;
}

/** Most credentials and tokens kept in memory each. */
const CACHE_SIZE = 10_000;

/**
 * Looks up credentials (with their secret unwrapped) and tokens, caching
 * both so that an authenticated request costs no store round trip. Entries
 * are dropped when the change feed reports a change to them.
 */
export class AccessResolver {
  private readonly credentials = new Map<string, ResolvedCredential>();
  private readonly tokens = new Map<string, TokenRecord>();

  constructor(
    private readonly store: AccessStore,
    private readonly rootKey: RootKey,
  ) {}

  async credential(accessKey: string): Promise<ResolvedCredential | undefined> {
    const cached = this.credentials.get(accessKey);
    if (cached !== undefined) return cached;
    const record = await this.store.getCredential(accessKey);
    if (record === undefined) return undefined;
    const secret = unwrapSecret(
      this.rootKey.bytes,
      { purpose: "credential secret", id: record.accessKey, version: 1 },
      record.wrappedSecret,
    ).toString("utf8");
    const resolved = { record, secret };
    remember(this.credentials, accessKey, resolved);
    return resolved;
  }

  async token(hash: string): Promise<TokenRecord | undefined> {
    const cached = this.tokens.get(hash);
    if (cached !== undefined) return cached;
    const record = await this.store.getTokenByHash(hash);
    if (record !== undefined) remember(this.tokens, hash, record);
    return record;
  }

  /** Drops what a change names (fed by the store's change feed). */
  onChange(change: KeyChange): void {
    if (change.kind === "credential") this.credentials.delete(change.keyId);
    if (change.kind === "token") {
      for (const [hash, token] of this.tokens) {
        if (token.tokenId === change.keyId) this.tokens.delete(hash);
      }
    }
  }
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.set(key, value);
  if (map.size > CACHE_SIZE) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
}
