import cluster from "node:cluster";
import { bootstrapCredentials } from "../../auth/bootstrap.js";
import { type KmsdConfig, type SettingName, settings } from "../../config/settings.js";
import { openKmsCore } from "../../core/kms-core.js";
import { createLogger, type Logger } from "../../observability/logger.js";
import { createServer } from "../../server.js";
import { loadTlsOptions } from "../../transport/tls-options.js";
import type { Command } from "../command.js";

export const serveCommand: Command = {
  path: ["serve"],
  summary: "Serve gRPC, gRPC-Web, Connect and Huawei's REST API on one port.",
  options: {},
  // The server reads every setting.
  settings: Object.keys(settings) as SettingName[],
  async run({ config }) {
    const logger = createLogger(config.logLevel);
    if (config.audit === "off" && !cluster.isWorker) {
      logger.warn("the audit trail is off (--audit off): no request will be recorded");
    }
    if (cluster.isPrimary && config.workers > 1) return superviseWorkers(config, logger);
    return serve(config, logger);
  },
};

/**
 * Resolves to the first SIGTERM or SIGINT. Later ones are ignored: a
 * graceful stop is already under way and bounded by --shutdown-grace-ms
 * (Ctrl-C reaches the workers and the primary, which then signals them too).
 */
function nextStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.on("SIGTERM", resolve);
    process.on("SIGINT", resolve);
  });
}

/** One server process: serves until SIGTERM or SIGINT, then stops gracefully. */
async function serve(config: KmsdConfig, logger: Logger): Promise<number> {
  const server = createServer(config, { logger });
  // Listen for the signals before serving, so that a signal arriving the
  // moment the server is up still stops it gracefully.
  const stopped = nextStopSignal();
  await server.start();
  const signal = await stopped;
  logger.info(
    { signal, graceMs: config.shutdownGraceMs },
    "shutting down: refusing new connections, finishing requests in flight",
  );
  await server.stop();
  logger.info("stopped");
  return 0;
}

/**
 * --workers N: N server processes accepting on the same port. The primary
 * prepares the data directory once (migrations, root key, bootstrap
 * credentials) so that the workers do not race to, restarts a worker that
 * dies, and on SIGTERM/SIGINT stops them all gracefully.
 */
async function superviseWorkers(config: KmsdConfig, logger: Logger): Promise<number> {
  // Settings the workers would each fail on are checked once, here.
  loadTlsOptions(config);
  const core = await openKmsCore(config, logger);
  try {
    const file = await bootstrapCredentials(
      core.store,
      core.rootKey,
      config.dataDir,
      config.bootstrapProject,
    );
    if (file !== undefined) {
      logger.warn(
        { file, project: config.bootstrapProject },
        "new data directory: wrote an admin credential and token to the bootstrap file (mode 0600)",
      );
    }
  } finally {
    await core.close();
  }
  // The primary accepts and hands each connection to the worker that has
  // waited longest for one (node's round-robin). With the workers accepting on the
  // shared socket themselves, the kernel at times gave one worker a whole
  // burst of connections (all 32 of a benchmark's) and left the other idle;
  // the primary's hand-off costs it an accept per connection, not per request
  // (docs/benchmarks.md#workers-connections-handed-out-by-the-primary).
  cluster.schedulingPolicy = cluster.SCHED_RR;
  let stopping = false;
  // A worker that dies before it ever served (a bad setting, a port in use)
  // would die again: give up instead of restarting it forever.
  let startFailure = 1;
  const failedToStart = new Promise<"failed">((resolve) => {
    cluster.on("exit", (worker, code, signal) => {
      if (stopping) return;
      if (!servedBy.has(worker.id)) {
        logger.error({ pid: worker.process.pid, code, signal }, "a worker failed to start");
        // Its exit code says why (2: a setting, such as a port in use).
        startFailure = code ?? 1;
        resolve("failed");
        return;
      }
      logger.error({ pid: worker.process.pid, code, signal }, "a worker died; starting another");
      cluster.fork();
    });
  });
  const servedBy = new Set<number>();
  const listening = Promise.all(
    Array.from(
      { length: config.workers },
      () =>
        new Promise<void>((resolve) => {
          const worker = cluster.fork();
          worker.once("listening", () => {
            servedBy.add(worker.id);
            resolve();
          });
        }),
    ),
  );
  const outcome = await Promise.race([nextStopSignal(), failedToStart]);
  // A worker that is still starting has no signal handler yet: a SIGTERM
  // would kill it outright. Let them all come up, then stop them all.
  if (outcome !== "failed") await Promise.race([listening, failedToStart]);
  stopping = true;
  logger.info({ reason: outcome, workers: config.workers }, "shutting down the workers");
  const codes = await Promise.all(
    Object.values(cluster.workers ?? {}).map(
      (worker) =>
        new Promise<number>((resolve) => {
          if (worker === undefined || worker.isDead()) return resolve(0);
          worker.once("exit", (code) => resolve(code ?? 1));
          worker.process.kill("SIGTERM");
        }),
    ),
  );
  logger.info("stopped");
  if (outcome === "failed") return startFailure;
  return codes.some((code) => code !== 0) ? 1 : 0;
}
