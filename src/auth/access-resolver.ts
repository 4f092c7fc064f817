import { unwrapSecret } from "../crypto/key-wrap.js";
import type { RootKey } from "../keys/root-key.js";
import type { AccessStore, CredentialRecord, TokenRecord } from "../keystore/access-types.js";
import type { KeyChange } from "../keystore/types.js";
import { tokenHash } from "./secrets.js";

export interface ResolvedCredential {
  readonly record: CredentialRecord;
  /** The clear secret key: kept only in this process's memory. */
  readonly secret: string;
}

/** Most credentials and tokens kept in memory each (and most unknown access keys). */
const CACHE_SIZE = 10_000;

/**
 * Looks up credentials (with their secret unwrapped) and tokens, caching
 * both so that an authenticated request costs no store round trip. Entries
 * are dropped when the change feed reports a change to them.
 *
 * Access keys the store does not have are remembered too (in a map of their
 * own, so that a flood of made-up keys cannot push real credentials out):
 * after the first request, an unknown key is answered from memory like a
 * known one, so response timing does not tell whether an access key exists.
 */
export class AccessResolver {
  private readonly credentials = new Map<string, ResolvedCredential>();
  private readonly unknownCredentials = new Map<string, true>();
  private readonly tokens = new Map<string, TokenRecord>();
  // Bumped by every change of the kind. A lookup that raced a change (it
  // read the store before the change, the change feed was applied before it
  // returned) must not cache what it read: that could keep a disabled
  // credential or a revoked token working until it is evicted.
  private credentialGeneration = 0;
  private tokenGeneration = 0;

  constructor(
    private readonly store: AccessStore,
    private readonly rootKey: RootKey,
  ) {}

  async credential(accessKey: string): Promise<ResolvedCredential | undefined> {
    const cached = this.credentials.get(accessKey);
    if (cached !== undefined) return cached;
    if (this.unknownCredentials.has(accessKey)) return undefined;
    const generation = this.credentialGeneration;
    const record = await this.store.getCredential(accessKey);
    const current = generation === this.credentialGeneration;
    if (record === undefined) {
      if (current) remember(this.unknownCredentials, accessKey, true);
      return undefined;
    }
    const secret = unwrapSecret(
      this.rootKey.bytes,
      { purpose: "credential secret", id: record.accessKey, version: 1 },
      record.wrappedSecret,
    ).toString("utf8");
    const resolved = { record, secret };
    if (current) remember(this.credentials, accessKey, resolved);
    return resolved;
  }

  /**
   * The token's record, by the token itself. The cache is keyed by the token
   * (this process already holds secret keys in memory): a hit costs no
   * SHA-256, which was a measurable share of an authenticated request.
   */
  async token(token: string): Promise<TokenRecord | undefined> {
    const cached = this.tokens.get(token);
    if (cached !== undefined) return cached;
    const generation = this.tokenGeneration;
    const record = await this.store.getTokenByHash(tokenHash(token));
    if (record !== undefined && generation === this.tokenGeneration) {
      remember(this.tokens, token, record);
    }
    return record;
  }

  /** Drops everything (the change feed could not be followed: any entry may be stale). */
  clear(): void {
    this.credentialGeneration += 1;
    this.tokenGeneration += 1;
    this.credentials.clear();
    this.unknownCredentials.clear();
    this.tokens.clear();
  }

  /** Drops what a change names (fed by the store's change feed). */
  onChange(change: KeyChange): void {
    if (change.kind === "credential") {
      this.credentialGeneration += 1;
      this.credentials.delete(change.keyId);
      this.unknownCredentials.delete(change.keyId);
    }
    if (change.kind === "token") {
      this.tokenGeneration += 1;
      for (const [token, record] of this.tokens) {
        if (record.tokenId === change.keyId) this.tokens.delete(token);
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
