/**
 * EncryptData throughput of one kmsd instance and of two instances sharing
 * one PostgreSQL schema (load spread evenly over both), with one SQLite
 * instance for reference. Quoted in docs/deployment.md.
 *
 * Every run drives the same load: two h2load processes, each one HTTP/2
 * connection with IN_FLIGHT streams of gRPC EncryptData (8 bytes); for one
 * instance both aim at it, for two each aims at its own. No pinning: the
 * instances, the load generators and PostgreSQL share whatever cores the
 * machine has.
 *
 *   npm run build && npx tsx bench/two-instances.ts
 *   BENCH_SECONDS=10 BENCH_DATABASE_URL=postgres://... npx tsx bench/two-instances.ts
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import pg from "pg";
import { EncryptDataRequestSchema } from "../gen/kms/v1/kms_pb.js";
import { type Running, startKmsd } from "./kmsd-process.js";
import { h2load, type LoadResult, missingTools } from "./load.js";
import { createKey, grpcTarget, PROJECT, projectToken } from "./targets.js";

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
  const message = toBinary(
    EncryptDataRequestSchema,
    create(EncryptDataRequestSchema, { projectId: PROJECT, keyId, plainText: "xxxxxxxx" }),
  );
  return Promise.all(
    targets.map(async (instance, i) => {
      const dir = path.join(workDir, `gen-${i}-${instance.port}`);
      await mkdir(dir, { recursive: true });
      return h2load(grpcTarget(instance.port, "EncryptData", message, { "x-auth-token": token }), {
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
  const started: Running[] = [];
  let port = 19_300;
  const start = async (args: readonly string[], dataDir: string) => {
    const instance = await startKmsd({ pin: [], dataDir, rootKey, port: port++, args });
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
    await withAdmin((client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)).catch(
      (error: unknown) => progress(`could not drop schema ${schema}: ${String(error)}`),
    );
    await rm(workDir, { recursive: true, force: true });
  }

  const lines = [
    `${cpus().length} CPUs (${cpus()[0]?.model ?? "unknown"}), ${SECONDS} s per run after ${WARMUP} s warm-up, 2 × ${IN_FLIGHT} streams, gRPC EncryptData 8 B, audit on`,
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
  console.log(lines.join("\n"));
}

await main();
