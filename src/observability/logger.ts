import { type DestinationStream, type Logger as PinoLogger, pino } from "pino";

/** kmsd's structured JSON logger (pino). Log objects must never hold a secret. */
export type Logger = Pick<
  PinoLogger,
  "debug" | "info" | "warn" | "error" | "fatal" | "child" | "isLevelEnabled"
>;

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "kmsd" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}
