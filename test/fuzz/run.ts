/**
 * `npm run fuzz`: the fuzzing properties of test/fuzz/properties.ts at
 * length against a real `kmsd serve` process. FUZZ_RUNS cases in all
 * (default 100,000), split evenly over REST JSON, Connect JSON and gRPC
 * binary; FUZZ_SEED picks the first seed (default: from the clock). Prints
 * the count, the time taken and every failure with the seed and path that
 * replay it; exits 1 if anything failed or the server did not come through
 * unharmed.
 */
import { performance } from "node:perf_hooks";
import { type FuzzReport, runFuzz } from "./properties.js";
import type { Protocol } from "./requests.js";
import { serverProblems, startFuzzTarget } from "./target.js";

const PROTOCOLS: readonly Protocol[] = ["rest", "connect", "grpc"];
const total = Number(process.env.FUZZ_RUNS ?? 100_000);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
if (!Number.isInteger(total) || total < PROTOCOLS.length) {
  throw new Error(`FUZZ_RUNS must be an integer of at least ${PROTOCOLS.length}`);
}

const sum = (report: FuzzReport) => Object.values(report.runs).reduce((a, b) => a + b, 0);

const target = await startFuzzTarget();
console.log(
  `fuzz: ${total} cases against kmsd (pid ${target.process.child.pid}), first seed ${seed}`,
);
const started = performance.now();
let exitCode = 0;
try {
  const rssBefore = await target.rssBytes();
  let lastPrint = 0;
  const report = await runFuzz({
    url: target.url,
    context: target,
    protocols: PROTOCOLS,
    runsPerProtocol: Math.ceil(total / PROTOCOLS.length),
    batchSize: 1000,
    concurrency: 2,
    seed,
    async afterBatch(progress) {
      if (!target.alive()) throw new Error("kmsd exited during the run");
      const done = sum(progress);
      if (done - lastPrint >= 10_000) {
        lastPrint = done;
        const seconds = (performance.now() - started) / 1000;
        const rss = (await target.rssBytes()) / 2 ** 20;
        console.log(
          `${done} cases, ${progress.failures.length} failures, ${seconds.toFixed(0)} s, kmsd RSS ${rss.toFixed(0)} MiB`,
        );
      }
    },
  });
  const seconds = (performance.now() - started) / 1000;
  const rssAfter = await target.rssBytes();
  console.log(
    `\nfuzz: ${sum(report)} cases (rest ${report.runs.rest}, connect ${report.runs.connect}, grpc ${report.runs.grpc}) in ${seconds.toFixed(1)} s, first seed ${seed}`,
  );
  console.log(
    `kmsd resident memory: ${(rssBefore / 2 ** 20).toFixed(0)} MiB before, ${(rssAfter / 2 ** 20).toFixed(0)} MiB after`,
  );
  for (const failure of report.failures) {
    exitCode = 1;
    console.log(
      `\nFAILED ${failure.protocol} seed=${failure.seed} path=${failure.path ?? ""}\n  ${failure.error}\n  ${failure.counterexample}`,
    );
  }
  const problems = await serverProblems(target);
  for (const problem of problems) {
    exitCode = 1;
    console.log(`\nSERVER: ${problem}`);
  }
  console.log(exitCode === 0 ? "\nno failures" : `\n${report.failures.length} failures`);
} catch (error) {
  exitCode = 1;
  console.log(
    `fuzz run stopped: ${(error as Error).message}\n${target.process.stderr().slice(-4000)}`,
  );
} finally {
  await target.stop();
}
process.exit(exitCode);
