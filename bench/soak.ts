/**
 * `npm run soak`: kmsd in its production setup (authentication and audit
 * on, SQLite, --workers 1) under a steady load for SOAK_SECONDS (default
 * 600) at SOAK_LOAD (default 0.7) of the capacity measured first, sampling
 * the server's resident memory. Passes (exit 0) with zero failed requests
 * and resident memory growing less than 10% after the warm-up; writes the
 * result into docs/soak.md either way (exit 1 on a failure).
 *
 * Needs h2load (Debian: nghttp2-client); taskset pins the server to core 0
 * and the load generator to core 1 when present.
 *
 *   npm run soak                    # 10 minutes
 *   SOAK_SECONDS=60 npm run soak    # a short check that it works
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, release, tmpdir, totalmem } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ROOT, type Running, startKmsd } from "./kmsd-process.js";
import {
  corePins,
  h2load,
  h2loadPaced,
  type LoadResult,
  missingTools,
  type Target,
} from "./load.js";
import { writeResults } from "./report.js";
import { median } from "./stats.js";
import { connectTarget, createKey, encryptOnce, PROJECT, projectToken } from "./targets.js";

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const LOAD_SHARE = Number(process.env.SOAK_LOAD ?? 0.7);
const CAPACITY_SECONDS = Number(process.env.SOAK_CAPACITY_SECONDS ?? 10);
const SAMPLE_SECONDS = Number(process.env.SOAK_SAMPLE_SECONDS ?? 5);
/** Memory grows while caches, pools and the JIT warm up: growth counts from here. */
const WARMUP_SECONDS = Number(
  process.env.SOAK_WARMUP_SECONDS ?? Math.min(60, Math.round(SOAK_SECONDS / 5)),
);
const MAX_GROWTH = 0.1;
/** Per load stream (encrypt, decrypt): connections and requests in flight on each. */
const CLIENTS = 4;
const STREAMS = 16;
const PLAINTEXT = "soak test plaintext, 64 bytes long.............................";

interface Sample {
  readonly second: number;
  readonly rssMb: number;
}

function progress(message: string): void {
  process.stderr.write(`[soak] ${message}\n`);
}

/** Sums two concurrent runs into one result (latencies: the worse of the two). */
function combined(a: LoadResult, b: LoadResult): LoadResult {
  const requests = a.requests + b.requests;
  return {
    requests,
    seconds: Math.max(a.seconds, b.seconds),
    rps: a.rps + b.rps,
    p50Ms: Math.max(a.p50Ms, b.p50Ms),
    p99Ms: Math.max(a.p99Ms, b.p99Ms),
    cpuUsPerRequest: (a.cpuUsPerRequest * a.requests + b.cpuUsPerRequest * b.requests) / requests,
    systemUsPerRequest:
      (a.systemUsPerRequest * a.requests + b.systemUsPerRequest * b.requests) / requests,
    failures: a.failures + b.failures,
  };
}

async function main(): Promise<number> {
  if (missingTools().includes("h2load")) {
    console.error("missing h2load: install it with\n  apt-get install -y nghttp2-client");
    return 2;
  }
  const { pinned: pinning, server: serverPin, load: loadPin } = corePins();
  const workDir = await mkdtemp(path.join(tmpdir(), "kmsd-soak-"));
  const rootKey = randomBytes(32).toString("base64");
  const dataDir = path.join(workDir, "data");
  const dirs = { encrypt: path.join(workDir, "encrypt"), decrypt: path.join(workDir, "decrypt") };
  for (const dir of Object.values(dirs)) await mkdir(dir);
  let kmsd: Running | undefined;
  try {
    kmsd = await startKmsd({ pin: serverPin, dataDir, rootKey, port: 19_300 });
    const server = kmsd;
    const token = await projectToken(dataDir, rootKey);
    const keyId = await createKey(server.port, token);
    const cipherText = await encryptOnce(server.port, token, keyId, PLAINTEXT);
    const encrypt = connectTarget(
      server.port,
      "EncryptData",
      { project_id: PROJECT, key_id: keyId, plain_text: PLAINTEXT },
      token,
    );
    const decrypt = connectTarget(
      server.port,
      "DecryptData",
      { project_id: PROJECT, cipher_text: cipherText },
      token,
    );

    progress(`measuring capacity for ${CAPACITY_SECONDS} s (encrypt and decrypt, unpaced)`);
    const flatOut = (target: Target, workDir: string) =>
      h2load(target, {
        seconds: CAPACITY_SECONDS,
        warmupSeconds: 2,
        concurrency: STREAMS,
        serverPids: () => server.pids(),
        pin: loadPin,
        workDir,
      });
    const capacity = combined(
      ...(await Promise.all([flatOut(encrypt, dirs.encrypt), flatOut(decrypt, dirs.decrypt)])),
    );
    const rate = Math.floor(capacity.rps * LOAD_SHARE);
    progress(
      `capacity ${Math.round(capacity.rps)} req/s; soaking at ${rate} req/s for ${SOAK_SECONDS} s`,
    );

    const samples: Sample[] = [];
    const started = Date.now();
    let soaking = true;
    const sampler = (async () => {
      while (soaking) {
        samples.push({
          second: Math.round((Date.now() - started) / 1000),
          rssMb: await server.rssMb(),
        });
        await sleep(SAMPLE_SECONDS * 1000);
      }
    })();
    const paced = (target: Target, workDir: string) =>
      h2loadPaced(target, {
        seconds: SOAK_SECONDS,
        rps: rate / 2,
        clients: CLIENTS,
        streams: STREAMS,
        pin: loadPin,
        workDir,
      });
    const soak = combined(
      ...(await Promise.all([paced(encrypt, dirs.encrypt), paced(decrypt, dirs.decrypt)])),
    );
    soaking = false;
    await sampler;
    await server.stop();
    kmsd = undefined;

    // Medians of the first and the last tenth after the warm-up (three
    // samples at least): the heap's sawtooth must not decide the verdict.
    const afterWarmup = samples.filter((sample) => sample.second >= WARMUP_SECONDS);
    const window = Math.max(3, Math.ceil(afterWarmup.length / 10));
    const baseline = median(afterWarmup.slice(0, window).map((sample) => sample.rssMb));
    const final = median(afterWarmup.slice(-window).map((sample) => sample.rssMb));
    const peak = Math.max(...afterWarmup.map((sample) => sample.rssMb));
    const growth = (final - baseline) / baseline;
    const passed = soak.failures === 0 && soak.requests > 0 && growth < MAX_GROWTH;
    await writeReport({
      pinning,
      capacity,
      rate,
      soak,
      samples,
      baseline,
      final,
      peak,
      growth,
      passed,
    });
    return passed ? 0 : 1;
  } finally {
    await kmsd?.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

function fmt(value: number, digits = 0): string {
  return Number.isFinite(value)
    ? value.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "n/a";
}

/** At most ~20 rows: every sample when few, else evenly spaced ones plus the last. */
function rssRows(samples: readonly Sample[]): Sample[] {
  const step = Math.max(1, Math.ceil(samples.length / 20));
  const rows = samples.filter((_, index) => index % step === 0);
  const last = samples.at(-1);
  if (last !== undefined && rows.at(-1) !== last) rows.push(last);
  return rows;
}

async function writeReport(result: {
  pinning: boolean;
  capacity: LoadResult;
  rate: number;
  soak: LoadResult;
  samples: readonly Sample[];
  baseline: number;
  final: number;
  peak: number;
  growth: number;
  passed: boolean;
}): Promise<void> {
  const { version } = JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")) as {
    version: string;
  };
  const h2loadVersion = execFileSync("h2load", ["--version"]).toString().trim();
  const { soak } = result;
  const lines = [
    `- Date: ${new Date().toISOString()}; verdict: **${result.passed ? "pass" : "FAIL"}**`,
    `- Machine: ${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${fmt(totalmem() / 2 ** 30, 1)} GiB, Linux ${release()}`,
    `- Versions: kmsd ${version}, Node.js ${process.version}, ${h2loadVersion}; ${result.pinning ? "server pinned to core 0, load generator to core 1 (taskset)" : "nothing pinned (no taskset)"}`,
    `- Command: \`SOAK_SECONDS=${SOAK_SECONDS} npm run soak\` (load ${LOAD_SHARE}, warm-up ${WARMUP_SECONDS} s, a sample every ${SAMPLE_SECONDS} s)`,
    `- Capacity: ${fmt(result.capacity.rps)} req/s (Connect JSON over h2c, EncryptData and DecryptData side by side, ${STREAMS} in flight each, ${CAPACITY_SECONDS} s; ${result.capacity.failures} errors)`,
    `- Soak: ${SOAK_SECONDS} s at ${fmt(result.rate)} req/s asked, ${fmt(soak.rps)} req/s served; ${fmt(soak.requests)} requests, **${soak.failures} errors**; p50 ${fmt(soak.p50Ms, 2)} ms, p99 ${fmt(soak.p99Ms, 2)} ms`,
    `- Resident memory (every kmsd process; medians of the first and last tenth after the warm-up): ${fmt(result.baseline, 1)} MB, at the end ${fmt(result.final, 1)} MB, peak ${fmt(result.peak, 1)} MB: **growth ${fmt(result.growth * 100, 1)}%** (limit ${MAX_GROWTH * 100}%)`,
    "",
    "| second | RSS MB |",
    "|---:|---:|",
    ...rssRows(result.samples).map((sample) => `| ${sample.second} | ${fmt(sample.rssMb, 1)} |`),
  ];
  const report = `${lines.join("\n")}\n`;
  await writeResults(path.join(ROOT, "docs/soak.md"), "Sustained load", report);
  console.log(report);
}

process.exitCode = await main();
