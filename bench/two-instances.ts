/**
 * EncryptData throughput of one kmsd instance and of two instances sharing
 * one PostgreSQL schema (load spread evenly over both), with one SQLite
 * instance for reference. Quoted in docs/deployment.md.
 *
 * Every run drives the same load: two h2load processes, each one HTTP/2
 * (h2c) connection with IN_FLIGHT streams of Huawei REST encrypt-data
 * (8 bytes; REST so that a refused request is a non-2xx status h2load
 * counts, where gRPC would answer HTTP 200 with an error status); for one
 * instance both aim at it, for two each aims at its own. No pinning: the
 * instances, the load generators and PostgreSQL share whatever cores the
 * machine has. The audit trail is on, as in production; the outcomes it
 * recorded are printed as a cross-check.
 *
 *   npm run build && npx tsx bench/two-instances.ts
 *   BENCH_SECONDS=10 BENCH_DATABASE_URL=postgres://... npx tsx bench/two-instances.ts
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { type Running, startKmsd } from "./kmsd-process.js";
import { h2load, type LoadResult, missingTools } from "./load.js";
import { createKey, projectToken, restTarget } from "./targets.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
/** Streams per load generator (two generators in every run). */
const IN_FLIGHT = 16;
const BASE_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

interface Run {
  readonly name: string;
  readonly results: readonly LoadResult[];
}

function progress(message: string): void {
  process.stderr.write(`[two-instances] ${message}\n`);
}

/** Both generators at once, each against its instance; the results of each. */
async function drive(
  targets: readonly Running[],
  token: string,
  keyId: string,
  workDir: string,
): Promise<LoadResult[]> {
  return Promise.all(
    targets.map(async (instance, i) => {
      const dir = path.join(workDir, `gen-${i}-${instance.port}`);
      await mkdir(dir, { recursive: true });
      const target = restTarget(
        instance.port,
        "encrypt-data",
        { key_id: keyId, plain_text: "xxxxxxxx" },
        token,
      );
      return h2load(target, {
        seconds: SECONDS,
        warmupSeconds: WARMUP,
        concurrency: IN_FLIGHT,
        serverPids: () => instance.pids(),
        pin: [],
        workDir: dir,
      });
    }),
  );
}

/** A port nothing listens on now (other benchmarks may run on this machine). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: BASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

function databaseUrl(schema: string): string {
  const url = new URL(BASE_URL);
  url.searchParams.set("schema", schema);
  return url.toString();
}

async function main(): Promise<void> {
  const missing = missingTools().filter((tool) => tool === "h2load");
  if (missing.length > 0) {
    console.error("missing h2load: apt-get install -y nghttp2-client");
    process.exit(2);
  }
  const workDir = await mkdtemp(path.join(tmpdir(), "kmsd-two-instances-"));
  const rootKey = randomBytes(32).toString("base64");
  const schema = `bench_${randomBytes(6).toString("hex")}`;
  const url = databaseUrl(schema);
  const runs: Run[] = [];
  let outcomes: { outcome: string; n: string }[] = [];
  const started: Running[] = [];
  const start = async (args: readonly string[], dataDir: string) => {
    const port = await freePort();
    const instance = await startKmsd({ pin: [], dataDir, rootKey, port, args });
    started.push(instance);
    return instance;
  };
  try {
    // Reference: one instance on its embedded SQLite store.
    const sqliteDir = path.join(workDir, "sqlite");
    const sqlite = await start([], sqliteDir);
    const sqliteToken = await projectToken(sqliteDir, rootKey);
    const sqliteKey = await createKey(sqlite.port, sqliteToken);
    progress("one instance, SQLite");
    runs.push({
      name: "1 instance, SQLite",
      results: await drive([sqlite, sqlite], sqliteToken, sqliteKey, workDir),
    });
    await sqlite.stop();

    const pgArgs = ["--database-url", url];
    const a = await start(pgArgs, path.join(workDir, "a"));
    const token = await projectToken(path.join(workDir, "a"), rootKey, pgArgs);
    const keyId = await createKey(a.port, token);
    progress("one instance, PostgreSQL");
    runs.push({
      name: "1 instance, PostgreSQL",
      results: await drive([a, a], token, keyId, workDir),
    });
    const b = await start(pgArgs, path.join(workDir, "b"));
    progress("two instances, PostgreSQL");
    runs.push({
      name: "2 instances, PostgreSQL",
      results: await drive([a, b], token, keyId, workDir),
    });
  } finally {
    for (const instance of started) await instance.stop();
    outcomes = await withAdmin(
      async (client) =>
        (
          await client.query<{ outcome: string; n: string }>(
            `SELECT outcome, count(*) AS n FROM ${schema}.audit_records
              WHERE operation = 'EncryptData' GROUP BY outcome ORDER BY outcome`,
          )
        ).rows,
    ).catch(() => []);
    await withAdmin((client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)).catch(
      (error: unknown) => progress(`could not drop schema ${schema}: ${String(error)}`),
    );
    await rm(workDir, { recursive: true, force: true });
  }

  const lines = [
    `${cpus().length} CPUs (${cpus()[0]?.model ?? "unknown"}), ${SECONDS} s per run after ${WARMUP} s warm-up, 2 × ${IN_FLIGHT} streams, REST encrypt-data 8 B over h2c, audit on`,
    "",
    "| Setup | req/s | p50 ms | p99 ms | failures |",
    "|---|---:|---:|---:|---:|",
    ...runs.map((run) => {
      const rps = run.results.reduce((sum, r) => sum + r.rps, 0);
      const p50 = Math.max(...run.results.map((r) => r.p50Ms));
      const p99 = Math.max(...run.results.map((r) => r.p99Ms));
      const failures = run.results.reduce((sum, r) => sum + r.failures, 0);
      return `| ${run.name} | ${rps.toFixed(0)} | ${p50.toFixed(2)} | ${p99.toFixed(2)} | ${failures} |`;
    }),
  ];
  lines.push(
    "",
    `EncryptData outcomes in the PostgreSQL audit trail (warm-ups included): ${outcomes.map((o) => `${o.outcome} ${o.n}`).join(", ")}`,
  );
  console.log(lines.join("\n"));
}

await main();
