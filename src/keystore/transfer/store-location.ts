import { existsSync } from "node:fs";
import { join } from "node:path";
import { openPostgresStore } from "../postgres/postgres-store.js";
import { openSqliteStore } from "../sqlite/sqlite-store.js";
import type { Store } from "../types.js";

/** Where a store lives: a SQLite data directory or a PostgreSQL database. */
export type StoreLocation =
  | { readonly kind: "sqlite"; readonly dataDir: string }
  | { readonly kind: "postgres"; readonly url: string };

const POSTGRES_URL = /^postgres(ql)?:\/\//;

/** A postgres:// or postgresql:// URL names a database; anything else is a data directory. */
export function parseStoreLocation(text: string): StoreLocation {
  return POSTGRES_URL.test(text)
    ? { kind: "postgres", url: text }
    : { kind: "sqlite", dataDir: text };
}

/** For messages and reports: a URL's password is never shown. */
export function describeLocation(location: StoreLocation): string {
  if (location.kind === "sqlite") return location.dataDir;
  try {
    const url = new URL(location.url);
    if (url.password !== "") url.password = "***";
    return url.toString();
  } catch {
    return "(an unparsable PostgreSQL URL)";
  }
}

export class NoStoreError extends Error {
  constructor(location: StoreLocation) {
    super(`there is no kmsd store at ${describeLocation(location)}`);
    this.name = "NoStoreError";
  }
}

/**
 * Opens the store at the location (migrating it as every kmsd start does).
 * `mustExist` refuses a data directory without a store file, rather than
 * creating an empty one where a source was expected.
 */
export async function openStoreAt(
  location: StoreLocation,
  options: { readonly mustExist: boolean },
): Promise<Store> {
  // A database always "exists": an empty one is recognised by its contents.
  if (location.kind === "postgres") return openPostgresStore({ url: location.url });
  if (options.mustExist && !existsSync(join(location.dataDir, "kmsd.db"))) {
    throw new NoStoreError(location);
  }
  return openSqliteStore({ dataDir: location.dataDir });
}
