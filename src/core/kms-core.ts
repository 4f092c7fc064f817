import type { Interceptor, ServiceImpl } from "@connectrpc/connect";
import type { KmsService } from "../../gen/kms/v1/kms_pb.js";
import type { KmsdConfig } from "../config/settings.js";
import { errorsInterceptor } from "../interceptors/errors.js";
import { validationInterceptor } from "../interceptors/validation.js";
import { KeyRing } from "../keys/key-ring.js";
import { RandomPool } from "../keys/random-pool.js";
import { type RootKey, resolveRootKey } from "../keys/root-key.js";
import { openSqliteStore } from "../keystore/sqlite/sqlite-store.js";
import type { KeyStore } from "../keystore/types.js";
import type { Logger } from "../observability/logger.js";
import { createKmsService } from "../service/kms-service.js";
import { createUnaryInvoker, type UnaryInvoker } from "../transport/unary-invoker.js";
import { createRequestValidator } from "../validation/request-validator.js";

/**
 * What the server and the admin CLI share: the store, the root key checked
 * against it, the key ring, the service and its interceptor chain. Admin
 * commands call the service through the same chain as network requests, so
 * they obey the same rules.
 */
export interface KmsCore {
  readonly store: KeyStore;
  readonly rootKey: RootKey;
  readonly keyRing: KeyRing;
  readonly service: ServiceImpl<typeof KmsService>;
  readonly interceptors: Interceptor[];
  readonly invoke: UnaryInvoker;
  close(): Promise<void>;
}

export async function openKmsCore(config: KmsdConfig, logger: Logger): Promise<KmsCore> {
  const store = await openSqliteStore({ dataDir: config.dataDir });
  try {
    const rootKey = await resolveRootKey(config, store, (message) => logger.warn(message));
    const keyRing = new KeyRing(store, rootKey, {
      maxKeys: config.keyCacheSize,
      pollIntervalMs: config.changePollMs,
    });
    const service = createKmsService({
      store,
      keyRing,
      rootKey,
      randomPool: new RandomPool(),
      realm: config.realm,
      now: Date.now,
    });
    const interceptors = [
      errorsInterceptor(logger),
      validationInterceptor(createRequestValidator()),
    ];
    return {
      store,
      rootKey,
      keyRing,
      service,
      interceptors,
      invoke: createUnaryInvoker(service, interceptors),
      async close() {
        await keyRing.stop();
        await store.close();
      },
    };
  } catch (error) {
    await store.close();
    throw error;
  }
}
