/**
 * What metrics and the access log cost each request: a cached EncryptData
 * run through the network interceptor chain in process (no sockets, so
 * the difference is not lost in transport noise), with and without the
 * observe interceptor that feeds them, in alternating rounds. Also the
 * per-request metric update alone, kmsd's slots against prom-client's
 * observe() on the same labels.
 *
 *   npx tsx bench/observe-overhead.ts [calls per round] [rounds]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { create } from "@bufbuild/protobuf";
import { createContextValues } from "@connectrpc/connect";
import { Counter, Histogram, Registry } from "prom-client";
import { EncryptDataRequestSchema, KmsService } from "../gen/kms/v1/kms_pb.js";
import { issueToken } from "../src/auth/issue-credentials.js";
import { callRpc } from "../src/cli/admin-call.js";
import { defaultConfig } from "../src/config/settings.js";
import { type KmsCore, openKmsCore } from "../src/core/kms-core.js";
import { observeInterceptor } from "../src/interceptors/observe.js";
import { AccessLog } from "../src/observability/access-log.js";
import { createLogger } from "../src/observability/logger.js";
import { KmsdMetrics } from "../src/observability/metrics.js";
import { RpcMetrics } from "../src/observability/rpc-metrics.js";
import { callInfoKey } from "../src/transport/call-info.js";
import { NodeCall } from "../src/transport/node-call.js";
import { createUnaryInvoker } from "../src/transport/unary-invoker.js";
import { median } from "./stats.js";

const callsPerRound = Number(process.argv[2] ?? 50_000);
const rounds = Number(process.argv[3] ?? 7);
const PROJECT = "bench";

// The default level: successes are not logged. Failures would go to /dev/null.
const logger = createLogger("info", { write: () => {} });

async function open(dataDir: string, observed: boolean): Promise<KmsCore> {
  const config = {
    ...defaultConfig(),
    dataDir,
    rootKey: Buffer.alloc(32, 7).toString("base64"),
    logLevel: "silent" as const,
  };
  const outerInterceptors = observed
    ? [observeInterceptor([new KmsdMetrics(), new AccessLog(logger)])]
    : [];
  return openKmsCore(config, logger, { outerInterceptors });
}

/** Calls per second through `core.invoke`, all sequential (one core, no overlap). */
async function round(core: KmsCore, keyId: string, token: string, calls: number): Promise<number> {
  const message = create(EncryptDataRequestSchema, {
    projectId: PROJECT,
    keyId,
    plainText: "benchmark plaintext",
  });
  const headers = { "x-auth-token": token, "content-type": "application/json" };
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    const call = new NodeCall(headers, "POST", "/kms.v1.KmsService/EncryptData", "connect");
    await core.invoke({
      method: KmsService.method.encryptData,
      message,
      protocolName: "connect",
      requestMethod: "POST",
      url: call.rawTarget,
      headers,
      contextValues: createContextValues().set(callInfoKey, call),
    });
  }
  return calls / ((performance.now() - started) / 1000);
}

/** Median and best of per-call times (µs): on a shared machine the best is the least disturbed. */
function summary(label: string, without: number[], withObserve: number[]): void {
  const [a, b] = [median(without), median(withObserve)];
  const [bestA, bestB] = [Math.min(...without), Math.min(...withObserve)];
  console.log(`  without observe: median ${a.toFixed(2)} us/call, best ${bestA.toFixed(2)}`);
  console.log(`  with observe:    median ${b.toFixed(2)} us/call, best ${bestB.toFixed(2)}`);
  console.log(
    `  ${label}: ${(b - a).toFixed(2)} us/call by medians, ${(bestB - bestA).toFixed(2)} by bests ` +
      `(a 15k req/s core has ${(1e6 / 15_000).toFixed(1)} us per request)`,
  );
}

async function chain(): Promise<void> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "kmsd-bench-"));
  try {
    const plain = await open(dataDir, false);
    const observed = await open(dataDir, true);
    const created = await callRpc(plain, KmsService.method.createKey, {
      project_id: PROJECT,
      key_alias: "bench",
    });
    const keyId = String((created.key_info as { key_id: string }).key_id);
    const { token } = await issueToken(plain.store, {
      projectId: PROJECT,
      role: "user",
      ttlMs: 3_600_000,
      now: Date.now(),
    });
    await round(plain, keyId, token, 5000);
    await round(observed, keyId, token, 5000);
    const without: number[] = [];
    const withObserve: number[] = [];
    for (let i = 0; i < rounds; i++) {
      without.push(1e6 / (await round(plain, keyId, token, callsPerRound)));
      withObserve.push(1e6 / (await round(observed, keyId, token, callsPerRound)));
    }
    console.log(
      `interceptor chain, cached EncryptData, ${rounds} rounds x ${callsPerRound} calls:`,
    );
    summary("cost", without, withObserve);
    await plain.close();
    await observed.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

function perCall(name: string, calls: number, work: (i: number) => void): void {
  for (let i = 0; i < 100_000; i++) work(i);
  const started = performance.now();
  for (let i = 0; i < calls; i++) work(i);
  console.log(`  ${name}: ${(((performance.now() - started) * 1e6) / calls).toFixed(0)} ns/call`);
}

function metricUpdates(): void {
  const method = KmsService.method.encryptData;
  const slots = new RpcMetrics();
  const registry = new Registry();
  const counter = new Counter({
    name: "requests_total",
    help: "h",
    labelNames: ["service", "method", "protocol", "code"],
    registers: [registry],
  });
  const histogram = new Histogram({
    name: "duration_seconds",
    help: "h",
    labelNames: ["service", "method", "protocol"],
    registers: [registry],
  });
  const labels = { service: KmsService.typeName, method: method.name, protocol: "grpc" };
  const counted = { ...labels, code: "OK" };
  console.log("one request's metric update:");
  perCall("kmsd slots (RpcMetrics.record)", 2_000_000, (i) =>
    slots.record(method, "grpc", "OK", 80 + (i % 50)),
  );
  perCall("prom-client counter.inc + histogram.observe", 2_000_000, (i) => {
    counter.inc(counted);
    histogram.observe(labels, (80 + (i % 50)) / 1e6);
  });
}

/**
 * The observe interceptor alone, around an RPC that does nothing: the
 * chain measurement above carries the audit writer's and the crypto's
 * noise, this one only the interceptor's own work.
 */
async function isolated(): Promise<void> {
  const message = create(EncryptDataRequestSchema, {
    projectId: PROJECT,
    keyId: "k",
    plainText: "p",
  });
  const service = { encryptData: () => ({ keyId: "k", cipherText: "c" }) };
  const observe = observeInterceptor([new KmsdMetrics(), new AccessLog(logger)]);
  const bare = createUnaryInvoker(service, []);
  const observed = createUnaryInvoker(service, [observe]);
  const run = async (invoke: typeof bare, calls: number) => {
    const started = performance.now();
    for (let i = 0; i < calls; i++) {
      const call = new NodeCall({}, "POST", "/kms.v1.KmsService/EncryptData", "grpc");
      await invoke({
        method: KmsService.method.encryptData,
        message,
        protocolName: "grpc",
        requestMethod: "POST",
        url: call.rawTarget,
        contextValues: createContextValues().set(callInfoKey, call),
      });
    }
    return ((performance.now() - started) * 1000) / calls;
  };
  await run(bare, 100_000);
  await run(observed, 100_000);
  const without: number[] = [];
  const withObserve: number[] = [];
  for (let i = 0; i < rounds; i++) {
    without.push(await run(bare, 200_000));
    withObserve.push(await run(observed, 200_000));
  }
  console.log(`observe interceptor around a no-op RPC, ${rounds} rounds x 200000 calls:`);
  summary("cost", without, withObserve);
}

metricUpdates();
await isolated();
await chain();
