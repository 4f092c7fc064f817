import type { AddressInfo } from "node:net";
import { KmsService } from "../gen/kms/v1/kms_pb.js";
import { defaultConfig, type KmsdConfig } from "./config/settings.js";
import { type KmsCore, openKmsCore } from "./core/kms-core.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { DeletionSweeper } from "./service/deletion-sweeper.js";
import { createHttpHandler } from "./transport/http-handler.js";
import { createListener, type Listener } from "./transport/listener.js";
import { createRestGateway } from "./transport/rest/gateway.js";
import { RouteTable } from "./transport/rest/route-table.js";

export interface KmsdServer {
  /** Opens the store and starts serving; resolves to the bound address. */
  start(): Promise<AddressInfo>;
  /** Graceful stop: in-flight requests finish (up to shutdownGraceMs), then everything closes. */
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
  let sweeper: DeletionSweeper | undefined;

  return {
    async start() {
      core = await openKmsCore(config, logger);
      await core.keyRing.start();
      sweeper = new DeletionSweeper(core.store, core.keyRing, config.deletionSweepMs, logger);
      sweeper.start();
      const { service, interceptors, invoke } = core;
      const handler = createHttpHandler({
        routes: (router) => router.service(KmsService, service),
        interceptors,
        rest: createRestGateway({
          routes: new RouteTable([KmsService]),
          invoke,
          maxBodyBytes: config.maxBodyBytes,
        }),
        maxBodyBytes: config.maxBodyBytes,
      });
      listener = createListener({ handler, firstByteTimeoutMs: 10_000 });
      const address = await listener.listen(config.port, config.host);
      logger.info({ host: address.address, port: address.port }, "kmsd serving");
      return address;
    },

    async stop() {
      await listener?.close(config.shutdownGraceMs);
      await sweeper?.stop();
      await core?.close();
      listener = undefined;
      sweeper = undefined;
      core = undefined;
    },
  };
}
