import { randomBytes } from "node:crypto";
import { kmsError } from "../errors/kms-error.js";
import { CredentialState, type TokenRecord } from "../keystore/access-types.js";
import type { AccessResolver } from "./access-resolver.js";
import type { Principal } from "./principal.js";
import {
  headerOrdersDiffer,
  parseAuthorization,
  parseSdkDate,
  type SignedRequestParts,
  sign,
  signaturesEqual,
} from "./sdk-hmac-sha256.js";

/** What authentication reads of a request, on every protocol alike. */
export interface AuthenticationInput {
  readonly httpMethod: string;
  /** The request target as sent: path and query, still percent-encoded. */
  readonly rawTarget: string;
  /** A request header by lower-case name (for HTTP/2, "host" is the :authority). */
  readonly header: (name: string) => string | undefined;
  /** Hex SHA-256 of the request message bytes as sent. */
  readonly bodyHash: () => string;
}

/** Huawei's window for X-Sdk-Date. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

// One message for every AK/SK failure, so that no answer tells whether an
// access key exists, is disabled, or merely signed badly.
const BAD_SIGNATURE = "the request signature is invalid";

/**
 * Establishes who sent a request: Huawei's AK/SK signature
 * (SDK-HMAC-SHA256) or a bearer token (X-Auth-Token, or on gRPC and
 * Connect also `authorization: Bearer`).
 */
export class RequestAuthenticator {
  // Verifying a signature for an unknown access key runs the same HMAC under
  // this throwaway secret, so that timing does not reveal whether it exists.
  private readonly decoySecret = randomBytes(30).toString("base64");

  constructor(
    private readonly access: AccessResolver,
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate(input: AuthenticationInput): Promise<Principal> {
    const authorization = input.header("authorization");
    if (authorization?.startsWith("SDK-HMAC-SHA256"))
      return this.verifySignature(input, authorization);
    const bearer = authorization?.startsWith("Bearer ") ? authorization.slice(7).trim() : undefined;
    const token = input.header("x-auth-token") ?? bearer;
    if (token !== undefined && token !== "") return this.verifyToken(token);
    throw kmsError(
      "APIGW.0301",
      "no credential: sign the request with an access key (SDK-HMAC-SHA256) or send X-Auth-Token",
    );
  }

  private async verifyToken(token: string): Promise<Principal> {
    const record = await this.access.token(token);
    if (record === undefined || record.revokedAt !== null) {
      throw kmsError("APIGW.0301", "the token is invalid or has been revoked");
    }
    if (record.expiresAt <= this.now()) throw kmsError("KMS.0303", "the token has expired");
    return this.tokenPrincipal(record);
  }

  /**
   * One principal per token record, made once: records are immutable (a
   * change to a token is a new record from the store), and a token is
   * presented on request after request.
   */
  private readonly tokenPrincipals = new WeakMap<TokenRecord, Principal>();

  private tokenPrincipal(record: TokenRecord): Principal {
    let principal = this.tokenPrincipals.get(record);
    if (principal === undefined) {
      principal = {
        kind: "token",
        id: record.tokenId,
        projectId: record.projectId,
        role: record.role,
      };
      this.tokenPrincipals.set(record, principal);
    }
    return principal;
  }

  private async verifySignature(
    input: AuthenticationInput,
    authorization: string,
  ): Promise<Principal> {
    const parsed = parseAuthorization(authorization);
    if (parsed === undefined) throw kmsError("APIGW.0301", "the Authorization header is malformed");
    const signed = new Set(parsed.signedHeaders);
    const sdkDate = input.header("x-sdk-date");
    const time = sdkDate === undefined ? undefined : parseSdkDate(sdkDate);
    if (sdkDate === undefined || time === undefined || !signed.has("x-sdk-date")) {
      throw kmsError("APIGW.0301", "X-Sdk-Date (YYYYMMDDTHHMMSSZ) must be sent and signed");
    }
    if (Math.abs(time - this.now()) > MAX_CLOCK_SKEW_MS) {
      throw kmsError(
        "APIGW.0303",
        "X-Sdk-Date is more than 15 minutes away from the server's time",
      );
    }
    // Every header the client lists as signed must have arrived: a signature
    // speaks only for headers the request carries.
    if (parsed.signedHeaders.some((name) => input.header(name) === undefined)) {
      throw kmsError("APIGW.0301", BAD_SIGNATURE);
    }
    const bodyHash = input.bodyHash();
    const declaredHash = input.header("x-sdk-content-sha256");
    // A declared body hash (how gRPC clients sign, see docs/authentication.md)
    // must be signed and must be the body's: UNSIGNED-PAYLOAD is refused, as
    // it would let the body be changed in flight.
    if (
      declaredHash !== undefined &&
      (declaredHash !== bodyHash || !signed.has("x-sdk-content-sha256"))
    ) {
      throw kmsError("APIGW.0301", BAD_SIGNATURE);
    }
    const [path = "", query = ""] = splitTarget(input.rawTarget);
    const parts: SignedRequestParts = {
      method: input.httpMethod,
      rawPath: path,
      rawQuery: query,
      // Bound: the input may be an object whose header() is a method (a CallInfo).
      header: (name) => input.header(name),
      signedHeaders: parsed.signedHeaders,
      payloadHash: bodyHash,
    };
    const resolved = await this.access.credential(parsed.accessKey);
    const usable = resolved !== undefined && resolved.record.state === CredentialState.Enabled;
    const secret = usable ? resolved.secret : this.decoySecret;
    let valid = signaturesEqual(sign(secret, sdkDate, parts), parsed.signature);
    // The Node SDK orders header lines its own way when a name holds "_" and
    // the like: try its order too. Whether this second HMAC runs depends on
    // the header names alone, never on the access key.
    if (!valid && headerOrdersDiffer(parsed.signedHeaders)) {
      valid = signaturesEqual(sign(secret, sdkDate, parts, "locale"), parsed.signature);
    }
    if (!usable || !valid) throw kmsError("APIGW.0301", BAD_SIGNATURE);
    const { record } = resolved;
    const projectHeader = input.header("x-project-id");
    if (projectHeader !== undefined && projectHeader !== record.projectId) {
      throw kmsError("KMS.0321", "X-Project-Id does not match the credential's project");
    }
    return {
      kind: "access-key",
      id: record.accessKey,
      projectId: record.projectId,
      role: record.role,
    };
  }
}

function splitTarget(target: string): [string, string] {
  const question = target.indexOf("?");
  return question < 0 ? [target, ""] : [target.slice(0, question), target.slice(question + 1)];
}
