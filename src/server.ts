import cluster from "node:cluster";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { KmsService } from "../gen/kms/v1/kms_pb.js";
import { auditRejection } from "./audit/rejections.js";
import { bootstrapCredentials } from "./auth/bootstrap.js";
import { defaultConfig, type KmsdConfig, SettingError, settings } from "./config/settings.js";
import { type KmsCore, openKmsCore } from "./core/kms-core.js";
import { createHealthService } from "./health/health-service.js";
import { HealthState } from "./health/health-state.js";
import { StoreMonitor } from "./health/store-monitor.js";
import { standardErrorsInterceptor } from "./interceptors/errors.js";
import { observeInterceptor } from "./interceptors/observe.js";
import { processRateLimit } from "./interceptors/rate-limit.js";
import { keyVersionMaker } from "./keys/key-version-factory.js";
import type { Store } from "./keystore/types.js";
import { AccessLog } from "./observability/access-log.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { KmsdMetrics } from "./observability/metrics.js";
import { createOpsEndpoints } from "./observability/ops-endpoints.js";
import type { RequestObserver } from "./observability/request-observer.js";
import { timeStore } from "./observability/timed-store.js";
import { DescriptorIndex } from "./reflection/descriptor-index.js";
import { createReflectionV1, createReflectionV1alpha } from "./reflection/reflection-service.js";
import { DeletionSweeper } from "./service/deletion-sweeper.js";
import { RotationSweeper } from "./service/rotation-sweeper.js";
import type { CallInfo } from "./transport/call-info.js";
import { createHttpHandler } from "./transport/http-handler.js";
import { createListener, type Listener } from "./transport/listener.js";
import {
  maxRequestBytes,
  type RequestLimits,
  registerService,
} from "./transport/request-limits.js";
import { createRestGateway } from "./transport/rest/gateway.js";
import { openApiJson } from "./transport/rest/openapi.js";
import { RouteTable } from "./transport/rest/route-table.js";
import { RpcRoutes } from "./transport/rpc/rpc-routes.js";
import { loadTlsOptions } from "./transport/tls-options.js";

export interface KmsdServer {
  /** Opens the store and starts serving; resolves to the bound address. */
  start(): Promise<AddressInfo>;
  /**
   * Graceful stop: reports NOT_SERVING (health, /readyz) at once, stops
   * accepting, lets in-flight requests finish (up to shutdownGraceMs),
   * writes the audit trail out, closes the store.
   */
  stop(): Promise<void>;
}

export interface ServerOptions {
  readonly logger?: Logger;
  /** Wraps the store once opened, inside kmsd's own instrumentation (e.g. fault injection). */
  readonly decorateStore?: (store: Store) => Store;
}

/** What reflection describes: every service kmsd serves. */
const REFLECTED_SERVICES: readonly DescService[] = [
  KmsService,
  Health,
  ServerReflectionV1,
  ServerReflectionV1alpha,
];

/** Builds a kmsd server; settings not given take their defaults. */
export function createServer(
  overrides: Partial<KmsdConfig> = {},
  options: ServerOptions = {},
): KmsdServer {
  const config: KmsdConfig = { ...defaultConfig(), ...overrides };
  const logger = options.logger ?? createLogger(config.logLevel);
  const metrics = new KmsdMetrics();
  const observers: RequestObserver[] = [metrics, new AccessLog(logger)];
  const observe = observeInterceptor(observers);
  const health = new HealthState([KmsService.typeName]);
  const routes = new RouteTable([KmsService]);
  let core: KmsCore | undefined;
  let monitor: StoreMonitor | undefined;
  let listener: Listener | undefined;
  let sweepers: (DeletionSweeper | RotationSweeper)[] = [];

  async function stop(): Promise<void> {
    health.beginShutdown();
    await monitor?.stop();
    const cut = (await listener?.close(config.shutdownGraceMs)) ?? 0;
    if (cut > 0) {
      logger.warn(
        { connections: cut, graceMs: config.shutdownGraceMs },
        "shutdown grace period over: closed the connections still open",
      );
    }
    for (const sweeper of sweepers) await sweeper.stop();
    await core?.close();
    monitor = undefined;
    listener = undefined;
    sweepers = [];
    core = undefined;
  }

  return {
    async start() {
      // Before anything opens: a bad certificate must not leave a store open.
      const tls = loadTlsOptions(config);
      core = await openKmsCore(config, logger, {
        serving: true,
        outerInterceptors: [observe],
        // A worker of `kmsd serve --workers N` enforces its share of the limit.
        rateLimit: processRateLimit(config, cluster.isWorker ? config.workers : 1),
        decorateStore: (store) =>
          timeStore(options.decorateStore?.(store) ?? store, metrics.storeOperation),
      });
      try {
        return await serve(core, tls);
      } catch (error) {
        await stop();
        throw error;
      }
    },
    stop,
  };

  async function serve(
    opened: KmsCore,
    tls: ReturnType<typeof loadTlsOptions>,
  ): Promise<AddressInfo> {
    const { store, rootKey, service, interceptors, invoke, auditLog, keyRing } = opened;
    await opened.watchChanges();
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
      new RotationSweeper(store, keyRing, keyVersionMaker(rootKey), config.rotationSweepMs, logger),
    ];
    for (const sweeper of sweepers) sweeper.start();
    monitor = new StoreMonitor(store, health, config.healthCheckMs, logger);
    await monitor.start();
    metrics.watch({
      keyCache: keyRing,
      auditBacklog: () => auditLog.backlog,
      auditWritten: () => auditLog.written,
      serving: () => health.serving,
    });
    const rejected = (call: CallInfo, projectId: string, code: string) => {
      auditRejection(auditLog, call, projectId, code);
      for (const observer of observers) observer.rejected(call, projectId, code);
    };
    const index = new DescriptorIndex(REFLECTED_SERVICES);
    const limits: RequestLimits = {
      maxBodyBytes: config.maxBodyBytes,
      slowClientTimeoutMs: config.slowClientTimeoutMs,
      maxJsonDepth: config.maxJsonDepth,
      requestTimeoutMs: config.requestTimeoutMs,
    };
    const handler = createHttpHandler({
      routes: (router) => registerService(router, KmsService, service, config.maxBodyBytes),
      fastRoutes: new RpcRoutes([KmsService]),
      interceptors,
      invoke,
      rest: createRestGateway({ routes, invoke, limits, onRejected: rejected }),
      limits,
      onRejected: (call, code) => rejected(call, "", code),
      openServices: {
        services: [Health, ServerReflectionV1, ServerReflectionV1alpha],
        routes: (router) =>
          router
            .service(Health, createHealthService(health))
            .service(ServerReflectionV1, createReflectionV1(index))
            .service(ServerReflectionV1alpha, createReflectionV1alpha(index)),
        // Not audited (they touch no key, and probes would flood the trail) and not authenticated.
        interceptors: [observe, standardErrorsInterceptor(logger)],
      },
      endpoints: createOpsEndpoints({ health, metrics, openApiJson: openApiJson(routes) }),
    });
    listener = createListener({
      handler: handler.request,
      http2: { take: handler.http2 },
      http1: {
        take: handler.http1,
        maxBodyBytes: Math.max(
          ...KmsService.methods.map((method) => maxRequestBytes(method, config.maxBodyBytes)),
        ),
      },
      slowClientTimeoutMs: config.slowClientTimeoutMs,
      maxHeaderBytes: config.maxHeaderBytes,
      maxConcurrentStreams: config.maxConcurrentStreams,
      tls,
    });
    let address: AddressInfo;
    try {
      address = await listener.listen(config.port, config.host);
    } catch (error) {
      throw listenError(error, config);
    }
    logger.info(
      { host: address.address, port: address.port, tls: tls !== undefined },
      "kmsd serving",
    );
    return address;
  }
}

/** A port or address kmsd cannot listen on is a configuration error: exit code 2, naming it. */
function listenError(error: unknown, config: KmsdConfig): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  const where = `${config.host}:${config.port}`;
  switch (code) {
    case "EADDRINUSE":
      return new SettingError(settings.port.flag, `${where} is already in use`);
    case "EACCES":
      return new SettingError(settings.port.flag, `no permission to listen on ${where}`);
    case "EADDRNOTAVAIL":
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new SettingError(settings.host.flag, `cannot listen on ${config.host} (${code})`);
    default:
      return error;
  }
}
