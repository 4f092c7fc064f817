import { randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { ROOT_KEY_LENGTH, rootKeyId } from "../crypto/key-wrap.js";
import type { KeyStore } from "../keystore/types.js";

/** The key every piece of key material at rest is wrapped under. */
export interface RootKey {
  readonly bytes: Buffer;
  /** Public fingerprint (src/crypto/key-wrap.ts rootKeyId). */
  readonly id: string;
}

export interface RootKeySettings {
  /** Base64 of 32 bytes (KMSD_ROOT_KEY). */
  readonly rootKey?: string | undefined;
  /** A file holding the base64 key (KMSD_ROOT_KEY_FILE). */
  readonly rootKeyFile?: string | undefined;
  readonly dataDir: string;
}

/** The file a development setup keeps its generated root key in. */
export const DEV_ROOT_KEY_FILE = "root-key.dev";
/** The metadata entry holding the fingerprint of the root key the store was made with. */
export const ROOT_KEY_META = "root_key_id";

export class RootKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RootKeyError";
  }
}

/**
 * Finds the root key (KMSD_ROOT_KEY, else KMSD_ROOT_KEY_FILE, else the
 * development key file in the data directory) and checks it is the key the
 * store was made with. A store without a root key yet adopts this one; on a
 * new store with no key configured, a development key file is created.
 * `warn` receives the one-line warning printed when that happens.
 */
export async function resolveRootKey(
  settings: RootKeySettings,
  store: KeyStore,
  warn: (message: string) => void,
): Promise<RootKey> {
  const expectedId = await store.getMeta(ROOT_KEY_META);
  const key = await loadConfiguredKey(settings, expectedId === undefined, warn);
  const id = rootKeyId(key);
  if (expectedId !== undefined && expectedId !== id) {
    throw new RootKeyError(
      `the root key (fingerprint ${id}) is not the one this store was created with (fingerprint ${expectedId}); ` +
        "check KMSD_ROOT_KEY / KMSD_ROOT_KEY_FILE and the data directory. Nothing was changed.",
    );
  }
  // A new store adopts this key; if another process adopted a different one
  // first, refuse as above.
  if (expectedId === undefined && (await store.initMeta(ROOT_KEY_META, id)) !== id) {
    throw new RootKeyError("another process initialised this store with a different root key");
  }
  return { bytes: key, id };
}

async function loadConfiguredKey(
  settings: RootKeySettings,
  storeIsNew: boolean,
  warn: (message: string) => void,
): Promise<Buffer> {
  if (settings.rootKey !== undefined && settings.rootKey !== "") {
    return decodeRootKey(settings.rootKey, "KMSD_ROOT_KEY");
  }
  if (settings.rootKeyFile !== undefined && settings.rootKeyFile !== "") {
    return readRootKeyFile(settings.rootKeyFile, "KMSD_ROOT_KEY_FILE");
  }
  const devFile = path.join(settings.dataDir, DEV_ROOT_KEY_FILE);
  if (await exists(devFile)) return readRootKeyFile(devFile, "the development root key file");
  if (!storeIsNew) {
    throw new RootKeyError(
      "this store was created with a root key, but none is configured: set KMSD_ROOT_KEY or KMSD_ROOT_KEY_FILE",
    );
  }
  const key = randomBytes(ROOT_KEY_LENGTH);
  await fs.writeFile(devFile, `${key.toString("base64")}\n`, { mode: 0o600, flag: "wx" });
  warn(
    `no root key configured: created ${devFile} (mode 0600). This is a development setup: ` +
      "anyone who can read the data directory can decrypt everything. Set KMSD_ROOT_KEY or KMSD_ROOT_KEY_FILE in production.",
  );
  return key;
}

async function readRootKeyFile(file: string, what: string): Promise<Buffer> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (error) {
    throw new RootKeyError(`cannot read ${what} ${file}: ${(error as NodeJS.ErrnoException).code}`);
  }
  return decodeRootKey(text.trim(), `${what} ${file}`);
}

export function decodeRootKey(base64: string, what: string): Buffer {
  const key = Buffer.from(base64, "base64");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || key.length !== ROOT_KEY_LENGTH) {
    throw new RootKeyError(
      `${what} must be the base64 encoding of exactly ${ROOT_KEY_LENGTH} bytes`,
    );
  }
  return key;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}
