/**
 * What one audit record costs to write, in CPU µs per record, through the
 * real SQLite store, at the batch sizes the audit log writes (one per flush:
 * ~300 records at 15,000 requests/s and the default 20 ms): the whole append
 * as AuditLog makes it (texts, seal, transaction), and its parts, each run
 * in alternating rounds in one process so that drift on a shared machine
 * hits them alike (each on a fresh store, closed within its round, so that
 * the work a store's checkpointer thread does counts to its own variant):
 * - the texts alone (auditText), and the texts with the append's seal;
 * - the append with format 1's per-record HMAC added on top, to show what
 *   sealing once per append instead saves;
 * - the append on a store that checkpoints in its commits (as the CLI's
 *   does) rather than on a worker thread (as the server's does): wall time
 *   per record shows what the event loop no longer waits for.
 *
 *   npx tsx bench/audit-cost.ts [records per round] [rounds] [batch size]
 */
import { createSecretKey, randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { formatOneHash, sealEntries } from "../src/audit/chain.js";
import { auditText } from "../src/audit/record-text.js";
import { type AuditEntry, GENESIS_HASH, NO_CONTEXT } from "../src/keystore/audit-types.js";
import { openSqliteStore, type SqliteStore } from "../src/keystore/sqlite/sqlite-store.js";
import { median } from "./stats.js";

const PER_ROUND = Number(process.argv[2] ?? 100_000);
const ROUNDS = Number(process.argv[3] ?? 7);
const BATCH = Number(process.argv[4] ?? 300);
const chainKey = createSecretKey(randomBytes(32));

/** An EncryptData record as the interceptor makes it: token principal, no context. */
function entry(i: number): AuditEntry {
  return {
    time: Date.now(),
    requestId: randomUUID(),
    protocol: "grpc",
    projectId: "bench",
    principal: "token:tok-0123456789abcdef",
    operation: "EncryptData",
    keyId: "0f8d7d4e-1b7a-4c55-9f0e-3c2b1a096e11",
    sequence: "",
    outcome: "OK",
    latencyUs: 40 + (i % 200),
    context: NO_CONTEXT,
  };
}

const dir = await mkdtemp(path.join(tmpdir(), "kmsd-audit-cost-"));
type Open = () => Promise<SqliteStore | undefined>;
type Variant = {
  /** A store of its own, opened before and closed inside each measured round. */
  readonly open: Open;
  readonly append: (batch: AuditEntry[], store: SqliteStore | undefined) => unknown;
};
let opened = 0;
const openServing: Open = () =>
  openSqliteStore({ dataDir: path.join(dir, String(opened++)), backgroundCheckpoints: true });
const noStore: Open = async () => undefined;

const variants: Record<string, Variant> = {
  "append (texts, seal, SQLite transaction)": {
    open: openServing,
    append: (batch, store) => store?.appendAudit(sealEntries(chainKey, batch)),
  },
  "texts only": { open: noStore, append: (batch) => batch.map(auditText) },
  "texts and seal, no store": {
    open: noStore,
    append: (batch) => sealEntries(chainKey, batch)(undefined),
  },
  "append + a per-record HMAC as format 1 had": {
    open: openServing,
    append: (batch, store) => {
      let prev = GENESIS_HASH;
      for (const [i, record] of batch.entries()) prev = formatOneHash(chainKey, prev, i, record);
      return store?.appendAudit(sealEntries(chainKey, batch));
    },
  },
  "append, checkpoints in the commits (CLI store)": {
    open: () => openSqliteStore({ dataDir: path.join(dir, String(opened++)) }),
    append: (batch, store) => store?.appendAudit(sealEntries(chainKey, batch)),
  },
};

const samples = new Map<string, { cpu: number; wall: number }[]>(
  Object.keys(variants).map((name) => [name, []]),
);
for (let round = 0; round < ROUNDS; round++) {
  const names = Object.keys(variants);
  for (const name of round % 2 === 0 ? names : names.reverse()) {
    const variant = variants[name];
    if (variant === undefined) continue;
    const entries = Array.from({ length: PER_ROUND }, (_, i) => entry(i));
    const store = await variant.open();
    // The checkpointer thread's start-up is not the append's cost.
    await sleep(300);
    const before = process.cpuUsage();
    const started = performance.now();
    for (let from = 0; from < entries.length; from += BATCH) {
      await variant.append(entries.slice(from, from + BATCH), store);
    }
    const wall = ((performance.now() - started) * 1000) / PER_ROUND;
    // Its checkpoints, the background ones included, count to this round.
    await store?.close();
    const used = process.cpuUsage(before);
    samples.get(name)?.push({ cpu: (used.user + used.system) / PER_ROUND, wall });
  }
}
await rm(dir, { recursive: true, force: true });

const [fullName] = Object.keys(variants);
const full = median((samples.get(fullName ?? "") ?? []).map((sample) => sample.cpu));
console.log(
  `µs per audit record, batches of ${BATCH}, median of ${ROUNDS} rounds of ${PER_ROUND}; CPU ratio to the first row`,
);
console.log(`${"".padEnd(48)}    CPU   wall  ratio`);
for (const [name, values] of samples) {
  const cpu = median(values.map((sample) => sample.cpu));
  const wall = median(values.map((sample) => sample.wall));
  console.log(
    `${name.padEnd(48)} ${cpu.toFixed(2).padStart(6)} ${wall.toFixed(2).padStart(6)}  ${(cpu / full).toFixed(2)}x`,
  );
}
