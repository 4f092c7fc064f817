/**
 * Alternating A/B runs: the way to tell whether a change or a setting
 * helps on a machine whose speed drifts by tens of percent from one minute
 * to the next (docs/benchmarks.md). Starts one kmsd per build and setting,
 * one data directory per build (builds may differ in schema), each with its
 * own key and token, pinned to core 0 like `npm run bench`; each
 * round loads every server once, in alternating order, with h2load
 * on core 1; prints each server's CPU µs per request (mean and lowest of
 * its rounds, and the system part), its best rate and that run's p99.
 *
 *   npx tsx bench/compare.ts                                    # this build: gRPC and REST
 *   COMPARE_ARGS="; --audit off" npx tsx bench/compare.ts       # audit on and off
 *   COMPARE_BUILDS=/tmp/before,. COMPARE_SCENARIOS=rest,connect-h1 npx tsx bench/compare.ts
 *
 * COMPARE_BUILDS: checkouts to compare, each built (`npm run build`);
 * COMPARE_ARGS: ";"-separated kmsd argument lists, each run on every build;
 * COMPARE_SCENARIOS: grpc, connect-h2, connect-h1, rest;
 * COMPARE_BASELINE=1 also loads bench/baseline-server.ts (gRPC) in every
 * round, so that a series carries the ratio the targets are stated in;
 * COMPARE_NODE_FLAGS: ";"-separated flag lists for kmsd's node, each run on
 * every build and argument list, e.g. "; --max-semi-space-size=2", or
 * "--cpu-prof --cpu-prof-dir=/tmp/p" (profiles are written when the servers stop);
 * COMPARE_SERVER_LOGS: a directory to keep each server's output in, as
 * server-<port>.log (with e.g. COMPARE_NODE_FLAGS=--trace-gc-nvp);
 * COMPARE_OPERATION: encrypt (EncryptData, the default) or decrypt
 * (DecryptData of a ciphertext of COMPARE_BYTES bytes; the baseline still encrypts);
 * COMPARE_BYTES (8), COMPARE_ROUNDS (3), COMPARE_SECONDS (5).
 * After the table, each server's per-round ratios to the first server, then
 * each server's audit writes as its metrics report them
 * (records per write, µs per record in the store's append): a measurement
 * made inside the server, far steadier than the CPU columns.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type AuditWrites, auditWrites, describeAuditWrites } from "./audit-writes.js";
import { type Running, startBaseline, startKmsd } from "./kmsd-process.js";
import { corePins, type LoadResult, loadOver, missingTools } from "./load.js";
import {
  httpVersionOf,
  type Load,
  type LoadRequest,
  loadFor,
  loadTarget,
  SCENARIOS,
  type Scenario,
  wordLists,
} from "./load-request.js";
import { failedRpcs } from "./rpc-failures.js";
import { median } from "./stats.js";

const BUILDS = (process.env.COMPARE_BUILDS ?? ".").split(",").map((dir) => path.resolve(dir));
const ARG_LISTS = wordLists(process.env.COMPARE_ARGS);
const SCENARIO_NAMES = (process.env.COMPARE_SCENARIOS ?? "grpc,rest").split(",");
const OPERATION = process.env.COMPARE_OPERATION ?? "encrypt";
const BYTES = Number(process.env.COMPARE_BYTES ?? 8);
const ROUNDS = Number(process.env.COMPARE_ROUNDS ?? 3);
const SECONDS = Number(process.env.COMPARE_SECONDS ?? 5);
const WITH_BASELINE = process.env.COMPARE_BASELINE === "1";
const NODE_FLAG_LISTS = wordLists(process.env.COMPARE_NODE_FLAGS);
const SERVER_LOGS = process.env.COMPARE_SERVER_LOGS;

interface Server {
  readonly label: string;
  readonly running: Running;
  /** What it is loaded with each round: the baseline serves gRPC only. */
  readonly scenarios: readonly Scenario[];
  /** The request it is loaded with, and the token that authenticates it. */
  readonly load: Load;
}

async function main(): Promise<void> {
  const missing = missingTools();
  if (missing.length > 0) {
    console.error(`missing ${missing.join(", ")}: apt-get install -y nghttp2-client wrk`);
    process.exit(2);
  }
  const unknown = SCENARIO_NAMES.filter((name) => !SCENARIOS.some((known) => known === name));
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(", ")}`);
  const scenarios = SCENARIO_NAMES as Scenario[];
  if (OPERATION !== "encrypt" && OPERATION !== "decrypt") {
    throw new Error(`COMPARE_OPERATION must be encrypt or decrypt, not ${OPERATION}`);
  }
  const pins = corePins();
  const workDir = await mkdtemp(path.join(tmpdir(), "kmsd-compare-"));
  const rootKey = randomBytes(32).toString("base64");
  const plainText = "x".repeat(BYTES);
  const servers: Server[] = [];
  try {
    let port = 19_400;
    for (const [build, root] of BUILDS.entries()) {
      const dataDir = path.join(workDir, `data-${build}`);
      const started: { label: string; running: Running }[] = [];
      for (const args of ARG_LISTS) {
        for (const nodeArgs of NODE_FLAG_LISTS) {
          const serverPort = port++;
          const running = await startKmsd({
            pin: pins.server,
            dataDir,
            rootKey,
            port: serverPort,
            args,
            root,
            nodeArgs,
            outputFile:
              SERVER_LOGS === undefined
                ? undefined
                : path.join(SERVER_LOGS, `server-${serverPort}.log`),
          });
          const label =
            [BUILDS.length > 1 ? root : "", ...nodeArgs, ...args].filter(Boolean).join(" ") ||
            "kmsd";
          started.push({ label, running });
          if (SERVER_LOGS !== undefined) {
            console.error(`[compare] ${label}: output in server-${serverPort}.log`);
          }
        }
      }
      const port0 = started[0]?.running.port ?? 0;
      const load = await loadFor(OPERATION, root, dataDir, rootKey, port0, plainText);
      for (const server of started) servers.push({ ...server, scenarios, load });
    }
    if (WITH_BASELINE) {
      servers.push({
        label: "baseline",
        running: await startBaseline({ pin: pins.server, port: port++ }),
        scenarios: ["grpc"],
        // The baseline checks nothing: any build's request does.
        load: (servers[0] as Server).load,
      });
    }
    const kmsdServers = servers.filter((server) => server.label !== "baseline");
    const writesBefore = await Promise.all(
      kmsdServers.map((server) => auditWrites(server.running.port)),
    );
    const runs = new Map<string, LoadResult[]>();
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const server of order) {
        for (const scenario of server.scenarios) {
          const { request, token } = server.load;
          const isKmsd = server.label !== "baseline";
          const run = await measure(
            server.running,
            isKmsd,
            scenario,
            request,
            token,
            workDir,
            pins.load,
          );
          const key = `${scenario}\t${server.label}`;
          runs.set(key, [...(runs.get(key) ?? []), run]);
          process.stderr.write(
            `[compare] round ${round + 1}, ${scenario}, ${server.label}: ${run.rps.toFixed(0)} req/s, ${run.cpuUsPerRequest.toFixed(1)} µs/req, p99 ${run.p99Ms.toFixed(2)} ms${run.failures > 0 ? `, ${run.failures} FAILED` : ""}\n`,
          );
        }
      }
    }
    console.log(
      "| Scenario | Server | CPU µs/req, mean | lowest | of it system, mean | best req/s | its p99 ms | failures |",
    );
    console.log("|---|---|---:|---:|---:|---:|---:|---:|");
    for (const [key, list] of [...runs].sort(([a], [b]) => a.localeCompare(b))) {
      const [scenario, label] = key.split("\t");
      const cpu = list.map((run) => run.cpuUsPerRequest);
      const best = [...list].sort((a, b) => b.rps - a.rps)[0];
      const failures = list.reduce((sum, run) => sum + run.failures, 0);
      console.log(
        `| ${scenario} | ${label} | ${mean(cpu).toFixed(1)} | ${Math.min(...cpu).toFixed(1)} | ${mean(list.map((run) => run.systemUsPerRequest)).toFixed(1)} | ${best?.rps.toFixed(0)} | ${best?.p99Ms.toFixed(2)} | ${failures} |`,
      );
    }
    printRoundRatios(runs, servers[0]?.label ?? "");
    console.log("\nThe audit trail's writes in each server, all rounds (from its metrics):");
    for (const [i, server] of kmsdServers.entries()) {
      const before = writesBefore[i] as AuditWrites;
      const after = await auditWrites(server.running.port);
      console.log(`- ${server.label}: ${describeAuditWrites(before, after)}`);
    }
  } finally {
    await Promise.all(servers.map((server) => server.running.stop()));
    await rm(workDir, { recursive: true, force: true });
  }
}

/** One run of a scenario against one server, 32 requests in flight. */
function measure(
  server: Running,
  /** kmsd, whose metrics count the errors it answered (the baseline has none). */
  isKmsd: boolean,
  scenario: Scenario,
  request: LoadRequest,
  token: string,
  workDir: string,
  loadPin: readonly string[],
): Promise<LoadResult> {
  const options = {
    seconds: SECONDS,
    warmupSeconds: 1,
    concurrency: 32,
    serverPids: () => server.pids(),
    pin: loadPin,
    workDir,
    ...(isKmsd ? { failedRequests: () => failedRpcs(server.port) } : {}),
  };
  const target = loadTarget(scenario, server.port, request, token);
  return loadOver(httpVersionOf(scenario), target, options);
}

/**
 * Each server's runs against the first server's in the same round: the
 * machine's slow spells hit servers measured minutes apart unequally, and a
 * ratio within a round cancels what they share. Median and range per pair.
 */
function printRoundRatios(runs: ReadonlyMap<string, LoadResult[]>, reference: string): void {
  const lines: string[] = [];
  for (const [key, list] of [...runs].sort(([a], [b]) => a.localeCompare(b))) {
    const [scenario, label] = key.split("\t");
    const base = runs.get(`${scenario}\t${reference}`);
    if (label === reference || base === undefined) continue;
    const ratios = (of: (run: LoadResult) => number) => {
      const values = list.map((run, round) => of(run) / of(base[round] as LoadResult));
      return `${median(values).toFixed(2)} (${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)})`;
    };
    lines.push(
      `| ${scenario} | ${label} | ${ratios((run) => run.rps)} | ${ratios((run) => run.cpuUsPerRequest)} |`,
    );
  }
  if (lines.length === 0) return;
  console.log(`\nPer round, against ${reference} in the same round (median, and range):`);
  console.log("| Scenario | Server | req/s ratio | CPU µs/req ratio |");
  console.log("|---|---|---:|---:|");
  for (const line of lines) console.log(line);
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

await main();
