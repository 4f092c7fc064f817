import type { AddressInfo } from "node:net";
import { KmsService } from "../gen/kms/v1/kms_pb.js";
import { auditRejection } from "./audit/rejections.js";
import { bootstrapCredentials } from "./auth/bootstrap.js";
import { defaultConfig, type KmsdConfig } from "./config/settings.js";
import { type KmsCore, openKmsCore } from "./core/kms-core.js";
import { keyVersionMaker } from "./keys/key-version-factory.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { DeletionSweeper } from "./service/deletion-sweeper.js";
import { RotationSweeper } from "./service/rotation-sweeper.js";
import { createHttpHandler } from "./transport/http-handler.js";
import { createListener, type Listener } from "./transport/listener.js";
import { registerService } from "./transport/request-limits.js";
import { createRestGateway } from "./transport/rest/gateway.js";
import { RouteTable } from "./transport/rest/route-table.js";
import { RpcRoutes } from "./transport/rpc/rpc-routes.js";

export interface KmsdServer {
  /** Opens the store and starts serving; resolves to the bound address. */
  start(): Promise<AddressInfo>;
  /**
   * Graceful stop: stops accepting, lets in-flight requests finish (up to
   * shutdownGraceMs), writes the audit trail out, closes the store.
   */
  stop(): Promise<void>;
}

export interface ServerOptions {
  readonly logger?: Logger;
}

/** Builds a kmsd server; settings not given take their defaults. */
export function createServer(
  overrides: Partial<KmsdConfig> = {},
  options: ServerOptions = {},
): KmsdServer {
  const config: KmsdConfig = { ...defaultConfig(), ...overrides };
  const logger = options.logger ?? createLogger(config.logLevel);
  let core: KmsCore | undefined;
  let listener: Listener | undefined;
  let sweepers: (DeletionSweeper | RotationSweeper)[] = [];

  return {
    async start() {
      core = await openKmsCore(config, logger);
      const { store, rootKey, service, interceptors, invoke, auditLog, keyRing } = core;
      await core.watchChanges();
      const bootstrapFile = await bootstrapCredentials(
        store,
        rootKey,
        config.dataDir,
        config.bootstrapProject,
      );
      if (bootstrapFile !== undefined) {
        logger.warn(
          { file: bootstrapFile, project: config.bootstrapProject },
          "new data directory: wrote an admin credential and token to the bootstrap file (mode 0600)",
        );
      }
      sweepers = [
        new DeletionSweeper(store, keyRing, config.deletionSweepMs, logger),
        new RotationSweeper(
          store,
          keyRing,
          keyVersionMaker(rootKey),
          config.rotationSweepMs,
          logger,
        ),
      ];
      for (const sweeper of sweepers) sweeper.start();
      const handler = createHttpHandler({
        routes: (router) => registerService(router, KmsService, service, config.maxBodyBytes),
        fastRoutes: new RpcRoutes([KmsService]),
        interceptors,
        invoke,
        rest: createRestGateway({
          routes: new RouteTable([KmsService]),
          invoke,
          maxBodyBytes: config.maxBodyBytes,
          onRejected: (call, projectId, code) => auditRejection(auditLog, call, projectId, code),
        }),
        maxBodyBytes: config.maxBodyBytes,
        onRejected: (call, code) => auditRejection(auditLog, call, "", code),
      });
      listener = createListener({
        handler: handler.request,
        streamHandler: handler.stream,
        firstByteTimeoutMs: 10_000,
      });
      const address = await listener.listen(config.port, config.host);
      logger.info({ host: address.address, port: address.port }, "kmsd serving");
      return address;
    },

    async stop() {
      await listener?.close(config.shutdownGraceMs);
      for (const sweeper of sweepers) await sweeper.stop();
      await core?.close();
      listener = undefined;
      sweepers = [];
      core = undefined;
    },
  };
}
