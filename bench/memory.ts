/**
 * Resident memory at many keys under sustained load: seeds MEMORY_KEYS keys
 * (100,000), starts kmsd pinned to core 0 with a key cache that holds them
 * all, encrypts once under every key, then runs MEMORY_ROUNDS rounds (8) of
 * MEMORY_SECONDS (10) of REST EncryptData spread over all keys, and after
 * each prints the resident set and the V8 heap (from /metrics): whether
 * memory stays bounded, and whether what grows is the heap or the rest.
 *
 *   npx tsx bench/memory.ts
 *   MEMORY_KEYS=20000 MEMORY_ROUNDS=3 npx tsx bench/memory.ts
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Running, startKmsd } from "./kmsd-process.js";
import { corePins, missingTools, wrk } from "./load.js";
import { seedKeys } from "./seed.js";
import { PROJECT, projectToken, restTarget, spreadScript } from "./targets.js";
import { encryptUnderEveryKey } from "./warm-keys.js";

const KEYS = Number(process.env.MEMORY_KEYS ?? 100_000);
const ROUNDS = Number(process.env.MEMORY_ROUNDS ?? 8);
const SECONDS = Number(process.env.MEMORY_SECONDS ?? 10);
const MB = 1024 * 1024;

async function main(): Promise<void> {
  if (missingTools().includes("wrk")) {
    console.error("missing wrk: apt-get install -y wrk");
    process.exit(2);
  }
  const pins = corePins();
  const workDir = await mkdtemp(path.join(tmpdir(), "kmsd-memory-"));
  const dataDir = path.join(workDir, "data");
  const rootKey = randomBytes(32).toString("base64");
  let server: Running | undefined;
  try {
    const token = await projectToken(dataDir, rootKey);
    const keyIds = await seedKeys(dataDir, rootKey, PROJECT, KEYS);
    server = await startKmsd({
      pin: pins.server,
      dataDir,
      rootKey,
      port: 19_350,
      args: ["--key-cache-size", String(KEYS + 100)],
    });
    const running = server;
    const target = restTarget(running.port, "encrypt-data", {}, token);
    console.log(
      "| After | req/s | resident MB | V8 heap total MB | heap used MB | outside the heap MB |",
    );
    console.log("|---|---:|---:|---:|---:|---:|");
    const sample = async (label: string, rate: string) => {
      const rss = await running.rssMb();
      const metrics = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text();
      const total = gauge(metrics, "nodejs_heap_size_total_bytes") / MB;
      const used = gauge(metrics, "nodejs_heap_size_used_bytes") / MB;
      console.log(
        `| ${label} | ${rate} | ${rss.toFixed(0)} | ${total.toFixed(0)} | ${used.toFixed(0)} | ${(rss - total).toFixed(0)} |`,
      );
    };
    await sample("start", "");
    const warm = await encryptUnderEveryKey(target, keyIds, 32);
    await sample(
      `a pass over ${KEYS.toLocaleString("en")} keys`,
      (warm.requests / warm.seconds).toFixed(0),
    );
    for (let round = 1; round <= ROUNDS; round++) {
      const result = await wrk(
        target,
        {
          seconds: SECONDS,
          warmupSeconds: 1,
          concurrency: 32,
          serverPids: () => running.pids(),
          pin: pins.load,
          workDir,
        },
        spreadScript(keyIds, token),
      );
      await sample(`round ${round} (${SECONDS} s)`, result.rps.toFixed(0));
    }
  } finally {
    await server?.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

/** A Prometheus gauge's value (the first sample of that name). */
function gauge(metrics: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+]+)$`, "m").exec(metrics)?.[1] ?? NaN);
}

await main();
