import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parseDatabaseUrl } from "../keystore/postgres/database-url.js";

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

/** A PostgreSQL URL, checked as the store will read it (errors never quote it: it may hold a password). */
function databaseUrl(raw: string): string {
  if (raw !== "") parseDatabaseUrl(raw);
  return raw;
}

function defineSettings<T extends Record<string, SettingSpec<unknown>>>(specs: T): T {
  return specs;
}

export const settings = defineSettings({
  config: {
    flag: "--config",
    env: "KMSD_CONFIG",
    description:
      "JSON file of settings, keyed by flag name without dashes; flags and environment override it",
    default: "",
    parse: text,
  },
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
  tlsCert: {
    flag: "--tls-cert",
    env: "KMSD_TLS_CERT",
    description:
      "PEM certificate chain file: serve TLS (h2 and HTTP/1.1 by ALPN) instead of plaintext",
    default: "",
    parse: text,
  },
  tlsKey: {
    flag: "--tls-key",
    env: "KMSD_TLS_KEY",
    description: "PEM private key file of --tls-cert",
    default: "",
    parse: text,
  },
  tlsClientCa: {
    flag: "--tls-client-ca",
    env: "KMSD_TLS_CLIENT_CA",
    description: "PEM CA certificates file: require client certificates they issued (mutual TLS)",
    default: "",
    parse: text,
  },
  dataDir: {
    flag: "--data-dir",
    env: "KMSD_DATA_DIR",
    description:
      "Directory of the embedded SQLite store (unless --database-url is set), the bootstrap credentials and a development root key",
    default: "./data",
    parse: text,
  },
  databaseUrl: {
    flag: "--database-url",
    env: "KMSD_DATABASE_URL",
    description:
      "PostgreSQL store instead of SQLite: postgres://user@host:5432/db, optionally ?schema=<name> (created if missing) and libpq parameters such as sslmode; give a password by KMSD_DATABASE_URL, PGPASSWORD or ~/.pgpass, not the flag",
    default: "",
    parse: databaseUrl,
  },
  databasePoolSize: {
    flag: "--database-pool-size",
    env: "KMSD_DATABASE_POOL_SIZE",
    description:
      "Most PostgreSQL connections each process opens (one more listens for changes; idle ones close after 30 s): with --workers, each worker has its own",
    default: 5,
    parse: integer(1, 1000),
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
  previousRootKeys: {
    flag: "",
    env: "KMSD_PREVIOUS_ROOT_KEYS",
    description:
      "Previous root keys, base64, comma-separated: they only unwrap, during a root key rotation (environment only)",
    default: "",
    parse: text,
    envOnly: true,
  },
  previousRootKeysFile: {
    flag: "--previous-root-keys-file",
    env: "KMSD_PREVIOUS_ROOT_KEYS_FILE",
    description:
      "File holding previous root keys, one base64 key per line: they only unwrap (see docs/root-key.md)",
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
  maxHeaderBytes: {
    flag: "--max-header-bytes",
    env: "KMSD_MAX_HEADER_BYTES",
    description: "Largest request header block accepted (HTTP/1.1 and HTTP/2), in bytes",
    default: 16 * 1024,
    parse: integer(1024, 1024 * 1024),
  },
  maxJsonDepth: {
    flag: "--max-json-depth",
    env: "KMSD_MAX_JSON_DEPTH",
    description: "Deepest nesting of objects and arrays accepted in a JSON body",
    default: 32,
    parse: integer(2, 1000),
  },
  maxConcurrentStreams: {
    flag: "--max-concurrent-streams",
    env: "KMSD_MAX_CONCURRENT_STREAMS",
    description: "HTTP/2 streams a client may have open at once on one connection",
    default: 100,
    parse: integer(1, 10_000),
  },
  requestTimeoutMs: {
    flag: "--request-timeout-ms",
    env: "KMSD_REQUEST_TIMEOUT_MS",
    description: "Longest a request may run once received (shorter client deadlines win), in ms",
    default: 30_000,
    parse: integer(100, 600_000),
  },
  slowClientTimeoutMs: {
    flag: "--slow-client-timeout-ms",
    env: "KMSD_SLOW_CLIENT_TIMEOUT_MS",
    description:
      "Longest a client may take to send a whole request (headers and body) before it is cut off, in ms",
    default: 10_000,
    parse: integer(100, 600_000),
  },
  rateLimitPerSecond: {
    flag: "--rate-limit-per-second",
    env: "KMSD_RATE_LIMIT_PER_SECOND",
    description:
      "Cryptographic operations a project may make per second, per kmsd instance (0: no limit; see docs/operations.md)",
    default: 1000,
    parse: integer(0, 10_000_000),
  },
  rateLimitBurst: {
    flag: "--rate-limit-burst",
    env: "KMSD_RATE_LIMIT_BURST",
    description:
      "Cryptographic operations a project may make at once after being idle (0: the same as --rate-limit-per-second)",
    default: 0,
    defaultText: "the rate",
    parse: integer(0, 10_000_000),
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
  cacheOfflineMs: {
    flag: "--cache-offline-ms",
    env: "KMSD_CACHE_OFFLINE_MS",
    description:
      "How long keys and credentials already in memory keep serving while the store cannot be reached (changes made elsewhere meanwhile go unseen), in ms",
    default: 30_000,
    parse: integer(0, 3_600_000),
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
  healthCheckMs: {
    flag: "--health-check-ms",
    env: "KMSD_HEALTH_CHECK_MS",
    description: "How often the store is pinged for health checks and readiness, in ms",
    default: 1000,
    parse: integer(100, 60_000),
  },
  auditFlushMs: {
    flag: "--audit-flush-ms",
    env: "KMSD_AUDIT_FLUSH_MS",
    description: "Longest an audit record waits in memory before it is written, in ms",
    // Each write has a fixed cost on a cache gone cold since the last one:
    // at 5 ms the server's writes cost ~1.5 µs more per record than at 20
    // (docs/benchmarks.md#audit-write-batches), and 20 ms of records is still
    // well inside what a power loss can take from an unsynced WAL anyway.
    default: 20,
    parse: integer(1, 1000),
  },
  auditBacklogMax: {
    flag: "--audit-backlog-max",
    env: "KMSD_AUDIT_BACKLOG_MAX",
    description:
      "Audit records that may wait unwritten (the store unreachable) before requests are refused with KMS.0104",
    default: 100_000,
    parse: integer(1000, 10_000_000),
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
    description: "Log level; debug adds a line per successful request (see docs/operations.md)",
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

/** A raw value and where it came from, for the error that names it. */
interface RawSetting {
  readonly raw: string;
  readonly source: string;
}

/**
 * Resolves settings by precedence: flags over environment over the config
 * file (--config / KMSD_CONFIG) over defaults. `flags` holds raw flag values
 * by setting name.
 */
export function resolveConfig(
  flags: Partial<Record<SettingName, string>>,
  env: NodeJS.ProcessEnv,
): KmsdConfig {
  const config = defaultConfig() as Record<string, unknown>;
  const file = readConfigFile(flags.config, env);
  for (const [name, spec] of Object.entries(settings) as [SettingName, SettingSpec<unknown>][]) {
    const fromFlag = spec.envOnly ? undefined : flags[name];
    const fromEnv = env[spec.env];
    const chosen: RawSetting | undefined =
      fromFlag !== undefined
        ? { raw: fromFlag, source: spec.flag }
        : fromEnv !== undefined
          ? { raw: fromEnv, source: spec.env }
          : file.get(name);
    if (chosen === undefined) continue;
    try {
      config[name] = spec.parse(chosen.raw);
    } catch (error) {
      throw new SettingError(chosen.source, (error as Error).message);
    }
  }
  return config as KmsdConfig;
}

const settingOfFileKey = new Map(
  (Object.entries(settings) as [SettingName, SettingSpec<unknown>][])
    // The file sets what a flag can, but not the file itself; a secret
    // without a flag (the root key) has a file setting of its own.
    .filter(([name, spec]) => spec.flag !== "" && name !== "config")
    .map(([name, spec]) => [spec.flag.slice(2), name]),
);

/**
 * The config file's settings, by setting name. The file is one JSON object
 * whose keys are flag names without the dashes ({"port": 8443}) and whose
 * values are strings or numbers, checked like the flag's; an unknown key is
 * an error rather than a silently ignored typo.
 */
function readConfigFile(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
): Map<SettingName, RawSetting> {
  const values = new Map<SettingName, RawSetting>();
  const fromEnv = env[settings.config.env];
  const path = flag ?? fromEnv;
  if (path === undefined || path === "") return values;
  const source = flag !== undefined ? settings.config.flag : settings.config.env;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    const reason =
      error instanceof SyntaxError ? `not valid JSON (${error.message})` : (error as Error).message;
    throw new SettingError(source, `cannot read ${path}: ${reason}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new SettingError(source, `${path} must hold a JSON object`);
  }
  for (const [key, value] of Object.entries(json)) {
    const name = settingOfFileKey.get(key);
    const where = `${JSON.stringify(key)} in ${path}`;
    if (name === undefined) {
      throw new SettingError(
        where,
        `unknown setting; keys are flag names without dashes: ${[...settingOfFileKey.keys()].join(", ")}`,
      );
    }
    if (typeof value !== "string" && typeof value !== "number") {
      throw new SettingError(where, "must be a string or a number");
    }
    values.set(name, { raw: String(value), source: where });
  }
  return values;
}
