import { userInfo } from "node:os";
import {
  type ContextValues,
  createContextValues,
  type Interceptor,
  type ServiceImpl,
} from "@connectrpc/connect";
import type { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { type AuditKeys, loadAuditKeys } from "../audit/audit-keys.js";
import { AuditLog } from "../audit/audit-log.js";
import { AccessResolver } from "../auth/access-resolver.js";
import { principalKey } from "../auth/principal.js";
import { RequestAuthenticator } from "../auth/request-authenticator.js";
import type { KmsdConfig } from "../config/settings.js";
import { auditInterceptor } from "../interceptors/audit.js";
import { authenticationInterceptor, authorizationInterceptor } from "../interceptors/auth.js";
import { decodeErrorInterceptor } from "../interceptors/decode.js";
import { errorsInterceptor } from "../interceptors/errors.js";
import { rateLimitInterceptor } from "../interceptors/rate-limit.js";
import { type RateLimit, TokenBuckets } from "../interceptors/token-buckets.js";
import { validationInterceptor } from "../interceptors/validation.js";
import { ChangeWatcher } from "../keys/change-watcher.js";
import { KeyRing } from "../keys/key-ring.js";
import { RandomPool } from "../keys/random-pool.js";
import { type RootKey, type RootKeySet, resolveRootKeys } from "../keys/root-key.js";
import { openStore } from "../keystore/open-store.js";
import type { Store } from "../keystore/types.js";
import type { Logger } from "../observability/logger.js";
import { createKmsService } from "../service/kms-service.js";
import { createUnaryInvoker, type UnaryInvoker } from "../transport/unary-invoker.js";
import { createRequestValidator } from "../validation/request-validator.js";

/**
 * Records per audit write at most. Timed in the server, a write costs least
 * per record at a few hundred: each has a fixed cost of ~190 µs, and rows of
 * 500 or more cost more per record again (2.86 µs against 2.26 at ~250). So
 * at high rates the trail is written more often than every --audit-flush-ms
 * (docs/benchmarks.md#audit-write-batches).
 */
const AUDIT_WRITE_RECORDS = 256;

/**
 * What the server and the admin CLI share: the store, the root key checked
 * against it, the caches kept coherent with the store's change feed, the
 * service, the audit trail and the interceptor chains. Admin commands call
 * the service through the same chain as network requests, but for
 * authentication: whoever can open the store and the root key is an admin.
 */
export interface KmsCore {
  readonly store: Store;
  /** The primary root key: it wraps everything new. */
  readonly rootKey: RootKey;
  /** The primary and the previous root keys (these only unwrap), during a root key rotation. */
  readonly rootKeys: RootKeySet;
  readonly keyRing: KeyRing;
  readonly access: AccessResolver;
  readonly auditKeys: AuditKeys;
  readonly auditLog: AuditLog;
  readonly service: ServiceImpl<typeof KmsService>;
  /**
   * (the outer interceptors →) audit → errors → authentication → decode
   * errors → validation → authorization (→ rate limit): every network protocol.
   */
  readonly interceptors: Interceptor[];
  /** The network chain, without a network transport (the REST gateway's way in). */
  readonly invoke: UnaryInvoker;
  /** The chain without authentication, as the local admin (the CLI's way in). */
  readonly invokeAsAdmin: UnaryInvoker;
  /** Context values that mark a call as made by the local admin. */
  adminContext(): ContextValues;
  /** Follows the change feed until close(); the CLI's short runs skip it. */
  watchChanges(): Promise<void>;
  close(): Promise<void>;
}

export interface KmsCoreOptions {
  /** Interceptors put in front of the network chain (the server's metrics and access log). */
  readonly outerInterceptors?: readonly Interceptor[];
  /** Wraps the store once opened (the server times its operations). */
  readonly decorateStore?: (store: Store) => Store;
  /** The per-project limit of cryptographic operations on the network chain (none if absent). */
  readonly rateLimit?: RateLimit | undefined;
  /** A server process (not one CLI command): the store may start background work. */
  readonly serving?: boolean;
}

export async function openKmsCore(
  config: KmsdConfig,
  logger: Logger,
  options: KmsCoreOptions = {},
): Promise<KmsCore> {
  const opened = await openStore(config, { serving: options.serving });
  const store = options.decorateStore?.(opened) ?? opened;
  try {
    const rootKeys = await resolveRootKeys(config, store, (message) => logger.warn(message));
    const rootKey = rootKeys.primary;
    const keyRing = new KeyRing(store, rootKeys, { maxKeys: config.keyCacheSize });
    const access = new AccessResolver(store, rootKeys);
    const watcher = new ChangeWatcher(
      store,
      [(change) => keyRing.onChange(change), (change) => access.onChange(change)],
      config.changePollMs,
      {
        // Cached keys and credentials keep serving through a short store
        // outage (nobody can change them while it lasts, unless only this
        // process lost the store); past the bound they are dropped, and what
        // needs them fails with KMS.0104 until the store answers.
        staleAfterMs: config.cacheOfflineMs,
        onStale: () => {
          keyRing.clear();
          access.clear();
          logger.warn(
            { afterMs: config.cacheOfflineMs },
            "the store's change feed is unreachable: dropped the cached keys and credentials",
          );
        },
      },
    );
    const auditKeys = await loadAuditKeys(store, rootKeys);
    const auditLog = new AuditLog(
      store,
      auditKeys,
      {
        flushMs: config.auditFlushMs,
        maxBatch: AUDIT_WRITE_RECORDS,
        maxBacklog: config.auditBacklogMax,
        enabled: config.audit === "on",
      },
      logger,
    );
    const validator = createRequestValidator();
    const service = createKmsService({
      store,
      keyRing,
      rootKey,
      randomPool: new RandomPool(),
      validator,
      logger,
      realm: config.realm,
      now: Date.now,
    });
    const errors = errorsInterceptor(logger);
    const validation = validationInterceptor(validator);
    // With the audit trail off (an operator's explicit choice, warned about
    // at start) the chain simply has no audit interceptor.
    const audit = config.audit === "on" ? [auditInterceptor(auditLog, auditKeys)] : [];
    const interceptors = [
      ...(options.outerInterceptors ?? []),
      ...audit,
      errors,
      authenticationInterceptor(new RequestAuthenticator(access)),
      decodeErrorInterceptor(),
      validation,
      authorizationInterceptor(),
      // Last: only requests that would otherwise run take a token.
      ...(options.rateLimit === undefined
        ? []
        : [rateLimitInterceptor(new TokenBuckets(options.rateLimit))]),
    ];
    const adminName = userInfo().username;
    return {
      store,
      rootKey,
      rootKeys,
      keyRing,
      access,
      auditKeys,
      auditLog,
      service,
      interceptors,
      invoke: createUnaryInvoker(service, interceptors),
      invokeAsAdmin: createUnaryInvoker(service, [
        ...audit,
        errors,
        validation,
        authorizationInterceptor(),
      ]),
      adminContext: () =>
        createContextValues().set(principalKey, {
          kind: "cli",
          id: adminName,
          projectId: undefined,
          role: "admin",
        }),
      watchChanges: () => watcher.start(),
      async close() {
        await watcher.stop();
        await auditLog.close();
        await store.close();
      },
    };
  } catch (error) {
    await store.close();
    throw error;
  }
}
