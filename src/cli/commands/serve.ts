import { type SettingName, settings } from "../../config/settings.js";
import { createLogger } from "../../observability/logger.js";
import { createServer } from "../../server.js";
import type { Command } from "../command.js";

export const serveCommand: Command = {
  path: ["serve"],
  summary: "Serve gRPC, gRPC-Web, Connect and Huawei's REST API on one port.",
  options: {},
  // The server reads every setting.
  settings: Object.keys(settings) as SettingName[],
  async run({ config }) {
    const logger = createLogger(config.logLevel);
    const server = createServer(config, { logger });
    // Listen for the signals before serving, so that a signal arriving the
    // moment the server is up still stops it gracefully.
    const stopped = new Promise<NodeJS.Signals>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        process.off("SIGTERM", stop);
        process.off("SIGINT", stop);
        resolve(signal);
      };
      process.on("SIGTERM", stop);
      process.on("SIGINT", stop);
    });
    await server.start();
    const signal = await stopped;
    logger.info({ signal }, "shutting down");
    await server.stop();
    logger.info("stopped");
    return 0;
  },
};
