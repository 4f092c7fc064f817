import { randomUUID } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { RootKey } from "../keys/root-key.js";
import type { Store } from "../keystore/types.js";
import { issueCredential, issueToken } from "./issue-credentials.js";

export const BOOTSTRAP_FILE = "bootstrap-credentials.json";
const BOOTSTRAP_META = "bootstrapped_at";
/** The bootstrap token lasts long enough to get started; make real ones with `kmsd tokens create`. */
const BOOTSTRAP_TOKEN_TTL_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * On a new store, creates one admin credential and token for the bootstrap
 * project and writes them to <data dir>/bootstrap-credentials.json (mode
 * 0600), so that getting started stays two commands. Returns the file's path
 * when it was written, undefined when the store was bootstrapped before (by
 * this process or another).
 */
export async function bootstrapCredentials(
  store: Store,
  rootKey: RootKey,
  dataDir: string,
  projectId: string,
): Promise<string | undefined> {
  const now = Date.now();
  // Unique, so that of two processes starting in the same millisecond only
  // one finds its own marker: exactly one process bootstraps a store.
  const marker = `${now} ${randomUUID()}`;
  if ((await store.initMeta(BOOTSTRAP_META, marker)) !== marker) return undefined;
  const credential = await issueCredential(store, rootKey, {
    projectId,
    role: "admin",
    description: "bootstrap",
    now,
  });
  const token = await issueToken(store, {
    projectId,
    role: "admin",
    ttlMs: BOOTSTRAP_TOKEN_TTL_MS,
    description: "bootstrap",
    now,
  });
  const file = path.join(dataDir, BOOTSTRAP_FILE);
  const content = {
    ...credential,
    token: token.token,
    token_id: token.token_id,
    token_expires_at: token.expires_at,
  };
  // Written whole under a temporary name, then renamed: the file is never
  // seen half-written, is 0600 from its first byte, and replaces a stale file
  // left by a store that was deleted (its credentials are useless now).
  const temporary = `${file}.${randomUUID()}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(content, null, 2)}\n`, {
      mode: 0o600,
      flag: "wx",
    });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return file;
}
