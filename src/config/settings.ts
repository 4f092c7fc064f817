import { availableParallelism } from "node:os";

/**
 * Every setting kmsd reads, in one table: its flag, its environment
 * variable, its default and how it is checked. The CLI's help and the
 * README's configuration table are written from it.
 */

export class SettingError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`invalid setting ${setting}: ${message}`);
    this.name = "SettingError";
  }
}

interface SettingSpec<T> {
  readonly flag: string;
  readonly env: string;
  readonly description: string;
  readonly default: T;
  readonly parse: (raw: string) => T;
  /** Secrets are read from the environment only: flags show up in `ps`. */
  readonly envOnly?: true;
  /** How the default is shown in help and docs, when it depends on the machine. */
  readonly defaultText?: string;
}

function integer(min: number, max: number) {
  return (raw: string): number => {
    if (!/^[0-9]+$/.test(raw)) throw new Error(`expected an integer, got ${JSON.stringify(raw)}`);
    const value = Number(raw);
    if (value < min || value > max) throw new Error(`must be between ${min} and ${max}`);
    return value;
  };
}

function text(raw: string): string {
  return raw;
}

function oneOf<T extends string>(...values: T[]) {
  return (raw: string): T => {
    if (!(values as string[]).includes(raw)) throw new Error(`must be one of ${values.join(", ")}`);
    return raw as T;
  };
}

function defineSettings<T extends Record<string, SettingSpec<unknown>>>(specs: T): T {
  return specs;
}

export const settings = defineSettings({
  host: {
    flag: "--host",
    env: "KMSD_HOST",
    description: "Address to listen on",
    default: "127.0.0.1",
    parse: text,
  },
  port: {
    flag: "--port",
    env: "KMSD_PORT",
    description: "Port for gRPC, gRPC-Web, Connect and REST (0 picks a free one)",
    default: 8080,
    parse: integer(0, 65535),
  },
  dataDir: {
    flag: "--data-dir",
    env: "KMSD_DATA_DIR",
    description: "Directory of the embedded SQLite store",
    default: "./data",
    parse: text,
  },
  rootKey: {
    flag: "",
    env: "KMSD_ROOT_KEY",
    description: "Root key, base64 of 32 bytes (environment only)",
    default: "",
    parse: text,
    envOnly: true,
  },
  rootKeyFile: {
    flag: "--root-key-file",
    env: "KMSD_ROOT_KEY_FILE",
    description: "File holding the base64 root key",
    default: "",
    parse: text,
  },
  realm: {
    flag: "--realm",
    env: "KMSD_REALM",
    description: "Region name reported as each key's realm",
    default: "kmsd-local",
    parse: text,
  },
  maxBodyBytes: {
    flag: "--max-body-bytes",
    env: "KMSD_MAX_BODY_BYTES",
    description: "Largest request body accepted, in bytes",
    default: 64 * 1024,
    parse: integer(1024, 16 * 1024 * 1024),
  },
  keyCacheSize: {
    flag: "--key-cache-size",
    env: "KMSD_KEY_CACHE_SIZE",
    description: "Most keys kept unwrapped in memory",
    default: 10_000,
    parse: integer(1, 10_000_000),
  },
  changePollMs: {
    flag: "--change-poll-ms",
    env: "KMSD_CHANGE_POLL_MS",
    description: "How often to pick up key changes made by other processes, in ms",
    default: 250,
    parse: integer(10, 60_000),
  },
  deletionSweepMs: {
    flag: "--deletion-sweep-ms",
    env: "KMSD_DELETION_SWEEP_MS",
    description: "How often to destroy keys whose deletion date has passed, in ms",
    default: 60_000,
    parse: integer(100, 86_400_000),
  },
  rotationSweepMs: {
    flag: "--rotation-sweep-ms",
    env: "KMSD_ROTATION_SWEEP_MS",
    description: "How often to rotate keys whose rotation interval has passed, in ms",
    default: 60_000,
    parse: integer(100, 86_400_000),
  },
  shutdownGraceMs: {
    flag: "--shutdown-grace-ms",
    env: "KMSD_SHUTDOWN_GRACE_MS",
    description: "How long in-flight requests may finish after SIGTERM, in ms",
    default: 10_000,
    parse: integer(0, 600_000),
  },
  audit: {
    flag: "--audit",
    env: "KMSD_AUDIT",
    description:
      "The audit trail: on, or off (no records at all; for measurements and throwaway setups)",
    default: "on" as "on" | "off",
    parse: oneOf("on", "off"),
  },
  workers: {
    flag: "--workers",
    env: "KMSD_WORKERS",
    description: "Server processes sharing the port",
    default: availableParallelism(),
    defaultText: "the number of CPUs",
    parse: integer(1, 256),
  },
  auditFlushMs: {
    flag: "--audit-flush-ms",
    env: "KMSD_AUDIT_FLUSH_MS",
    description: "Longest an audit record waits in memory before it is written, in ms",
    default: 5,
    parse: integer(1, 1000),
  },
  bootstrapProject: {
    flag: "--bootstrap-project",
    env: "KMSD_BOOTSTRAP_PROJECT",
    description: "Project of the admin credential created on a new data directory",
    default: "default",
    parse: (raw: string) => {
      if (!/^[0-9a-zA-Z_-]{1,64}$/.test(raw)) throw new Error("must match ^[0-9a-zA-Z_-]{1,64}$");
      return raw;
    },
  },
  logLevel: {
    flag: "--log-level",
    env: "KMSD_LOG_LEVEL",
    description: "Log level",
    default: "info" as "debug" | "info" | "warn" | "error" | "silent",
    parse: oneOf("debug", "info", "warn", "error", "silent"),
  },
});

export type SettingName = keyof typeof settings;
export type KmsdConfig = { -readonly [K in SettingName]: (typeof settings)[K]["default"] };

export function defaultConfig(): KmsdConfig {
  const config = {} as Record<string, unknown>;
  for (const [name, spec] of Object.entries(settings)) config[name] = spec.default;
  return config as KmsdConfig;
}

/**
 * Resolves settings by precedence: flags over environment over defaults.
 * `flags` holds raw flag values by setting name.
 */
export function resolveConfig(
  flags: Partial<Record<SettingName, string>>,
  env: NodeJS.ProcessEnv,
): KmsdConfig {
  const config = defaultConfig() as Record<string, unknown>;
  for (const [name, spec] of Object.entries(settings) as [SettingName, SettingSpec<unknown>][]) {
    const fromFlag = spec.envOnly ? undefined : flags[name];
    const raw = fromFlag ?? env[spec.env];
    if (raw === undefined) continue;
    try {
      config[name] = spec.parse(raw);
    } catch (error) {
      const source = fromFlag === undefined ? spec.env : spec.flag;
      throw new SettingError(source, (error as Error).message);
    }
  }
  return config as KmsdConfig;
}
