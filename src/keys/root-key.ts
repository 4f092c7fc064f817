import { randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { ROOT_KEY_LENGTH, rootKeyId, UnwrapError } from "../crypto/key-wrap.js";
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
  /** Previous root keys, base64, comma-separated (KMSD_PREVIOUS_ROOT_KEYS). */
  readonly previousRootKeys?: string | undefined;
  /** A file of previous root keys, one base64 key per line (KMSD_PREVIOUS_ROOT_KEYS_FILE). */
  readonly previousRootKeysFile?: string | undefined;
  readonly dataDir: string;
}

/** The file a development setup keeps its generated root key in. */
export const DEV_ROOT_KEY_FILE = "root-key.dev";
/**
 * The root key check value: the fingerprint of the root key everything in
 * the store is wrapped under. Root key rotation replaces it once everything
 * is rewrapped (docs/root-key.md).
 */
export const ROOT_KEY_META = "root_key_id";
/**
 * Fingerprints of root keys a rotation moved the store away from,
 * space-separated: such a key may still unwrap (as a previous key) but may
 * never again be the primary, which wraps everything new.
 */
export const RETIRED_ROOT_KEYS_META = "root_keys_retired";

export class RootKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RootKeyError";
  }
}

/**
 * The configured root keys: the primary wraps everything new; previous keys
 * only unwrap what is still wrapped under them (during a rotation). Each
 * wrapped record names its root key by fingerprint, so unwrapping never
 * has to guess.
 */
export class RootKeySet {
  readonly #byId: ReadonlyMap<string, RootKey>;

  constructor(
    readonly primary: RootKey,
    readonly previous: readonly RootKey[] = [],
  ) {
    this.#byId = new Map([...previous, primary].map((key) => [key.id, key]));
  }

  /** Primary first, then the previous keys. */
  get all(): RootKey[] {
    return [this.primary, ...this.previous];
  }

  /** The configured key with this fingerprint, or undefined. */
  byId(id: string): RootKey | undefined {
    return this.#byId.get(id);
  }

  /**
   * The key a record names, for unwrapping it.
   * @throws UnwrapError when no configured key has that fingerprint.
   */
  forRecord(rootKeyId: string, what: string): RootKey {
    const key = this.#byId.get(rootKeyId);
    if (key === undefined) {
      throw new UnwrapError(
        `${what} is wrapped under root key ${rootKeyId}, which is not configured ` +
          "(give it as a previous root key until a root key rotation has rewrapped it)",
      );
    }
    return key;
  }
}

/** A root key from its base64 text. */
export function rootKeyOf(base64: string, what: string): RootKey {
  const bytes = decodeRootKey(base64, what);
  return { bytes, id: rootKeyId(bytes) };
}

/**
 * Finds the root keys: the primary (KMSD_ROOT_KEY, else KMSD_ROOT_KEY_FILE,
 * else the development key file in the data directory) and the previous
 * ones, and checks them against the store: the store's root key must be
 * among them, and the primary must not be a key a rotation retired. A store
 * without a root key yet adopts the primary; on a new store with no key
 * configured, a development key file is created. `warn` receives the
 * one-line warning printed when that happens.
 */
export async function resolveRootKeys(
  settings: RootKeySettings,
  store: KeyStore,
  warn: (message: string) => void,
): Promise<RootKeySet> {
  const expectedId = await store.getMeta(ROOT_KEY_META);
  const bytes = await loadConfiguredKey(settings, expectedId === undefined, warn);
  const primary = { bytes, id: rootKeyId(bytes) };
  // The same key listed twice, or the primary listed again, counts once.
  const previous = new Map((await loadPreviousKeys(settings)).map((key) => [key.id, key]));
  previous.delete(primary.id);
  const keys = new RootKeySet(primary, [...previous.values()]);
  if (expectedId !== undefined && keys.byId(expectedId) === undefined) {
    throw new RootKeyError(
      `the root key (fingerprint ${primary.id}) is not the one this store was created with (fingerprint ${expectedId})` +
        (keys.previous.length > 0 ? ", nor is any previous root key" : "") +
        "; check KMSD_ROOT_KEY / KMSD_ROOT_KEY_FILE, KMSD_PREVIOUS_ROOT_KEYS and the data directory " +
        "(during a root key rotation the old key stays needed, as a previous root key, until `kmsd root-key rotate` has finished). Nothing was changed.",
    );
  }
  if ((await retiredRootKeys(store)).includes(primary.id)) {
    throw new RootKeyError(
      `the root key (fingerprint ${primary.id}) was retired by a root key rotation: it may only be given ` +
        "as a previous root key, and the new root key as KMSD_ROOT_KEY. Nothing was changed.",
    );
  }
  // A new store adopts this key; if another process adopted a different one
  // first, refuse as above.
  if (
    expectedId === undefined &&
    (await store.initMeta(ROOT_KEY_META, primary.id)) !== primary.id
  ) {
    throw new RootKeyError("another process initialised this store with a different root key");
  }
  return keys;
}

/** Fingerprints of the root keys rotations retired (RETIRED_ROOT_KEYS_META). */
export async function retiredRootKeys(store: KeyStore): Promise<string[]> {
  const value = (await store.getMeta(RETIRED_ROOT_KEYS_META)) ?? "";
  return value.split(" ").filter(Boolean);
}

async function loadPreviousKeys(settings: RootKeySettings): Promise<RootKey[]> {
  const keys: RootKey[] = [];
  const listed = settings.previousRootKeys ?? "";
  for (const [index, text] of listed.split(",").entries()) {
    if (text.trim() === "") continue;
    keys.push(rootKeyOf(text.trim(), `KMSD_PREVIOUS_ROOT_KEYS (key ${index + 1})`));
  }
  const file = settings.previousRootKeysFile ?? "";
  if (file !== "") {
    const lines = (await readKeyFile(file, "KMSD_PREVIOUS_ROOT_KEYS_FILE")).split("\n");
    for (const [index, line] of lines.entries()) {
      const text = line.trim();
      // Blank lines and # comments (e.g. when each key was retired).
      if (text === "" || text.startsWith("#")) continue;
      keys.push(rootKeyOf(text, `KMSD_PREVIOUS_ROOT_KEYS_FILE ${file} (line ${index + 1})`));
    }
  }
  return keys;
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
  // Written whole under a temporary name, then linked into place: a crash
  // never leaves a short key file behind, and of two processes racing to
  // create it, the second fails here (EEXIST) instead of replacing the key.
  const temporary = `${devFile}.${process.pid}.tmp`;
  try {
    await fs.writeFile(temporary, `${key.toString("base64")}\n`, { mode: 0o600, flag: "wx" });
    await fs.link(temporary, devFile);
  } finally {
    await fs.rm(temporary, { force: true });
  }
  warn(
    `no root key configured: created ${devFile} (mode 0600). This is a development setup: ` +
      "anyone who can read the data directory can decrypt everything. Set KMSD_ROOT_KEY or KMSD_ROOT_KEY_FILE in production.",
  );
  return key;
}

async function readKeyFile(file: string, what: string): Promise<string> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (error) {
    throw new RootKeyError(`cannot read ${what} ${file}: ${(error as NodeJS.ErrnoException).code}`);
  }
}

async function readRootKeyFile(file: string, what: string): Promise<Buffer> {
  return decodeRootKey((await readKeyFile(file, what)).trim(), `${what} ${file}`);
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
