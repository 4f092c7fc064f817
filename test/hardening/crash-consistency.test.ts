import { afterAll, describe, expect, it } from "vitest";
import { unwrapKeyMaterial } from "../../src/crypto/key-wrap.js";
import { rootKeyOf } from "../../src/keys/root-key.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import type { KeyRecord } from "../../src/keystore/types.js";
import {
  exportAudit,
  killIfRunning,
  postJson,
  readBootstrap,
  type ServeProcess,
  spawnServe,
  verifyAudit,
} from "../audit/cli-helpers.js";
import { removeDir, TEST_ROOT_KEY, tempDataDir } from "../support/kmsd.js";

/**
 * Crash consistency: `kmsd serve` is killed with SIGKILL at a random moment
 * while clients create keys, rotate them on demand and encrypt, again and
 * again on the same data directory. Afterwards the store must open; every
 * ciphertext a client got a 200 for must decrypt to its plaintext; no key
 * or version may be half there (every listed key has every version from 1 to
 * its primary, each unwrapping, and nothing else); and the audit trail must
 * be a valid chain missing at most the documented tail of each crash
 * (docs/audit.md, "Batching and crashes"): requests answered within the
 * last auditFlushMs before the kill, plus one write in progress.
 */

const CYCLES = 20;
/** How long the load runs before the kill: drawn from this range, in ms. */
const LOAD_MS = [100, 350] as const;
const WORKERS = 4;
/** As test/audit/crash.test.ts: the flush interval, and slack for a late timer and the write in progress. */
const FLUSH_MS = 20;
const MARGIN_MS = 50;

interface Answered {
  readonly requestId: string;
  readonly arrivedAt: number;
  readonly killAt: () => number;
}

interface Sealed {
  readonly cipherText: string;
  readonly plainText: string;
}

/** The root key the servers get (cli-helpers' environment): the test unwraps with it too. */
const ROOT_KEY = rootKeyOf(TEST_ROOT_KEY, "the tests' root key");

const dirs: string[] = [];
const servers: ServeProcess[] = [];

afterAll(async () => {
  for (const server of servers) killIfRunning(server);
  for (const dir of dirs) await removeDir(dir);
});

async function serve(dataDir: string): Promise<ServeProcess> {
  const server = await spawnServe(dataDir, { KMSD_AUDIT_FLUSH_MS: String(FLUSH_MS) });
  servers.push(server);
  return server;
}

/** Everything the clients were told, over all cycles. */
class Ledger {
  readonly keys = new Set<string>();
  readonly sealed: Sealed[] = [];
  readonly answered: Answered[] = [];
  readonly failures: string[] = [];
  rotations = 0;
}

/**
 * Runs WORKERS clients against the server, each creating keys, rotating
 * them and encrypting, until the server is killed (a random moment in
 * LOAD_MS). Requests failing before the kill are failures.
 */
async function loadThenKill(
  server: ServeProcess,
  token: string,
  project: string,
  ledger: Ledger,
  cycle: number,
): Promise<void> {
  let killAt = Number.POSITIVE_INFINITY;
  const killedAt = () => killAt;
  const call = async (operation: string, body: Record<string, unknown>) => {
    const answer = await postJson(`${server.url}/v1.0/${project}/kms/${operation}`, body, {
      "x-auth-token": token,
    });
    if (answer.status !== 200) {
      ledger.failures.push(`${operation}: ${answer.status} ${answer.text}`);
      return undefined;
    }
    ledger.answered.push({ requestId: answer.requestId, arrivedAt: Date.now(), killAt: killedAt });
    return answer.json as Record<string, unknown>;
  };
  const known = () => [...ledger.keys];
  const worker = async (n: number) => {
    for (let i = 0; ; i++) {
      try {
        const draw = Math.random();
        const keys = known();
        const keyId = keys[Math.floor(Math.random() * keys.length)];
        if (keyId === undefined || draw < 0.15) {
          const created = await call("create-key", { key_alias: `c${cycle}-${n}-${i}` });
          const info = created?.key_info as { key_id: string } | undefined;
          if (info !== undefined) ledger.keys.add(info.key_id);
        } else if (draw < 0.3) {
          if ((await call("rotate-on-demand", { key_id: keyId })) !== undefined) {
            ledger.rotations++;
          }
        } else {
          const plainText = `cycle ${cycle} worker ${n} request ${i}`;
          const encrypted = await call("encrypt-data", { key_id: keyId, plain_text: plainText });
          if (encrypted !== undefined) {
            ledger.sealed.push({ cipherText: String(encrypted.cipher_text), plainText });
          }
        }
      } catch (error) {
        // Refused or cut off: only once the server is being killed.
        if (killAt !== Number.POSITIVE_INFINITY) return;
        ledger.failures.push(`request failed before the kill: ${(error as Error).message}`);
        return;
      }
    }
  };
  const load = Promise.all(Array.from({ length: WORKERS }, (_, n) => worker(n)));
  const [low, high] = LOAD_MS;
  await new Promise((resolve) => setTimeout(resolve, low + Math.random() * (high - low)));
  killAt = Date.now();
  server.proc.kill("SIGKILL");
  expect((await server.exited).signal).toBe("SIGKILL");
  await load;
}

/** Checks every key and version in the store itself: complete, unwrapping, nothing extra. */
async function expectNoHalfCreatedKeys(dataDir: string, project: string): Promise<KeyRecord[]> {
  const store = await openSqliteStore({ dataDir });
  try {
    const keys: KeyRecord[] = [];
    let marker: string | undefined;
    do {
      const page = await store.listKeys({
        projectId: project,
        limit: 1000,
        ...(marker === undefined ? {} : { marker }),
      });
      keys.push(...page.keys);
      marker = page.nextMarker;
    } while (marker !== undefined);
    const byId = new Map(keys.map((key) => [key.keyId, key]));
    for (const key of keys) {
      expect(key.rotationCount).toBe(key.primaryVersion - 1);
      for (let version = 1; version <= key.primaryVersion; version++) {
        const stored = await store.getKeyVersion(key.keyId, version);
        expect(stored, `${key.keyId} v${version}`).toBeDefined();
        if (stored === undefined) continue;
        const material = unwrapKeyMaterial(
          ROOT_KEY.bytes,
          { keyId: key.keyId, version },
          stored.wrappedMaterial,
        );
        expect(material).toHaveLength(32);
      }
    }
    // No version without its key, none beyond its key's primary (no record is under "-").
    for (const version of await store.listVersionsNotWrappedBy("-", 1_000_000)) {
      const key = byId.get(version.keyId);
      expect(key, `version ${version.version} of a key not listed: ${version.keyId}`).toBeDefined();
      expect(version.version).toBeLessThanOrEqual(key?.primaryVersion ?? 0);
    }
    return keys;
  } finally {
    await store.close();
  }
}

/** Runs `work` over the items, `concurrency` at a time. */
async function eachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++];
      if (item !== undefined) await work(item);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

describe("crash consistency", () => {
  it(`${CYCLES} SIGKILLs during key creation, rotation and encryption lose no answered ciphertext, leave no half-created key, and keep the audit chain`, async () => {
    const dataDir = await tempDataDir();
    dirs.push(dataDir);
    const ledger = new Ledger();
    let token = "";
    let project = "";
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const server = await serve(dataDir);
      if (cycle === 0) ({ token, project_id: project } = await readBootstrap(dataDir));
      await loadThenKill(server, token, project, ledger, cycle);
    }
    expect(ledger.failures).toEqual([]);
    // Unless every kind of write was under way, the test proved little.
    expect(ledger.keys.size).toBeGreaterThan(CYCLES);
    expect(ledger.rotations).toBeGreaterThan(CYCLES);
    expect(ledger.sealed.length).toBeGreaterThan(4 * CYCLES);

    // The store opens, and what is in it is whole.
    const keys = await expectNoHalfCreatedKeys(dataDir, project);
    const listed = new Set(keys.map((key) => key.keyId));
    expect([...ledger.keys].filter((keyId) => !listed.has(keyId))).toEqual([]);

    // Every ciphertext a client was given decrypts; every key encrypts.
    const server = await serve(dataDir);
    const post = (operation: string, body: Record<string, unknown>) =>
      postJson(`${server.url}/v1.0/${project}/kms/${operation}`, body, {
        "x-auth-token": token,
      });
    const wrong: string[] = [];
    await eachConcurrently(ledger.sealed, 4, async ({ cipherText, plainText }) => {
      const answer = await post("decrypt-data", { cipher_text: cipherText });
      const got = (answer.json as { plain_text?: string } | undefined)?.plain_text;
      if (answer.status !== 200 || got !== plainText) wrong.push(`${answer.status} ${answer.text}`);
    });
    await eachConcurrently(keys, 4, async (key) => {
      const encrypted = await post("encrypt-data", { key_id: key.keyId, plain_text: "after" });
      const cipherText = (encrypted.json as { cipher_text?: string } | undefined)?.cipher_text;
      const decrypted = await post("decrypt-data", { cipher_text: cipherText });
      if ((decrypted.json as { plain_text?: string } | undefined)?.plain_text !== "after") {
        wrong.push(`${key.keyId}: ${encrypted.text} ${decrypted.text}`);
      }
    });
    expect(wrong).toEqual([]);
    server.proc.kill("SIGTERM");
    expect((await server.exited).code).toBe(0);

    // The audit trail: a valid chain, missing at most each crash's documented tail.
    const { code, report } = await verifyAudit(dataDir);
    expect(code, JSON.stringify(report)).toBe(0);
    const { records } = await exportAudit(dataDir);
    const recorded = new Set(records.map((record) => record.request_id));
    const lost = ledger.answered.filter((request) => !recorded.has(request.requestId));
    expect(
      lost
        .filter((request) => request.arrivedAt <= request.killAt() - (FLUSH_MS + MARGIN_MS))
        .map((request) => `${request.requestId}: ${request.killAt() - request.arrivedAt} ms`),
    ).toEqual([]);
    // About 20 s on a quiet 2-core machine (each cycle starts a server); more on a busy one.
  }, 180_000);
});
