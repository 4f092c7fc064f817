import type { SettingName } from "../../config/settings.js";
import { createLogger } from "../../observability/logger.js";
import { createServer } from "../../server.js";
import type { Command } from "../command.js";

const serveSettings: SettingName[] = [
  "host",
  "port",
  "tlsCert",
  "tlsKey",
  "tlsClientCa",
  "dataDir",
  "rootKey",
  "rootKeyFile",
  "realm",
  "maxBodyBytes",
  "keyCacheSize",
  "changePollMs",
  "deletionSweepMs",
  "shutdownGraceMs",
  "healthCheckMs",
  "auditFlushMs",
  "bootstrapProject",
  "logLevel",
];

export const serveCommand: Command = {
  path: ["serve"],
  summary: "Serve gRPC, gRPC-Web, Connect and Huawei's REST API on one port.",
  options: {},
  settings: serveSettings,
  async run({ config }) {
    const logger = createLogger(config.logLevel);
    const server = createServer(config, { logger });
    await server.start();
    await new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        logger.info(
          { signal, graceMs: config.shutdownGraceMs },
          "shutting down: refusing new connections, finishing requests in flight",
        );
        process.off("SIGTERM", stop);
        process.off("SIGINT", stop);
        resolve();
      };
      process.on("SIGTERM", stop);
      process.on("SIGINT", stop);
    });
    await server.stop();
    logger.info("stopped");
    return 0;
  },
};
