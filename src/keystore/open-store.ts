import { mkdir } from "node:fs/promises";
import type { KmsdConfig } from "../config/settings.js";
import { openPostgresStore } from "./postgres/postgres-store.js";
import { openSqliteStore } from "./sqlite/sqlite-store.js";
import type { Store } from "./types.js";

/** The settings that choose and reach the store. */
export type StoreSettings = Pick<KmsdConfig, "dataDir" | "databaseUrl" | "databasePoolSize">;

/** The names of those settings, for the commands that open the store. */
export const STORE_SETTING_NAMES = [
  "dataDir",
  "databaseUrl",
  "databasePoolSize",
] as const satisfies readonly (keyof KmsdConfig)[];

/**
 * The one way the server and every CLI command open the store: PostgreSQL
 * when a database URL is set, else SQLite in the data directory. The data
 * directory is created either way: it also holds the bootstrap credentials
 * and a development root key. `serving`: for a server process rather than
 * one CLI command (SQLite then checkpoints on a worker thread).
 */
export async function openStore(
  settings: StoreSettings,
  use: { readonly serving?: boolean } = {},
): Promise<Store> {
  if (settings.databaseUrl === "") {
    return openSqliteStore({ dataDir: settings.dataDir, backgroundCheckpoints: use.serving });
  }
  await mkdir(settings.dataDir, { recursive: true, mode: 0o700 });
  return openPostgresStore({ url: settings.databaseUrl, poolSize: settings.databasePoolSize });
}
