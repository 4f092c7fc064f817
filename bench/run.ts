/**
 * `npm run bench`: kmsd's throughput, latency and CPU cost per request, as
 * ratios to a baseline measured in the same run, written to
 * docs/benchmarks.md. See docs/benchmarks.md for what each row means.
 *
 * Needs h2load (Debian: nghttp2-client) and wrk; taskset (util-linux) pins
 * the server to core 0 and the load generator to core 1 when present.
 *
 *   npm run bench                  # everything (~6 minutes)
 *   BENCH_SECONDS=3 npm run bench  # shorter runs
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { DecryptDataRequestSchema, EncryptDataRequestSchema } from "../gen/kms/v1/kms_pb.js";
import { ROOT, type Running, startBaseline, startKmsd } from "./kmsd-process.js";
import {
  canPin,
  h2load,
  type LoadOptions,
  type LoadResult,
  luaString,
  missingTools,
  type Target,
  wrk,
} from "./load.js";
import { writeResults } from "./report.js";
import { seedKeys } from "./seed.js";
import {
  connectTarget,
  createKey,
  encryptOnce,
  grpcTarget,
  PROJECT,
  projectToken,
  restTarget,
} from "./targets.js";
import { encryptUnderEveryKey } from "./warm-keys.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const IN_FLIGHT = 32;
const SPREAD_KEYS = Number(process.env.BENCH_KEYS ?? 100_000);

interface Row {
  readonly group: string;
  readonly name: string;
  readonly result: LoadResult;
  /** The result this row is a ratio to. */
  readonly baseline?: LoadResult;
  readonly note?: string;
}

const rows: Row[] = [];

function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}
let nextPort = 19_100;

async function main(): Promise<void> {
  const missing = missingTools();
  if (missing.length > 0) {
    console.error(
      `missing ${missing.join(", ")}: install them with\n  apt-get install -y nghttp2-client wrk   # h2load comes with nghttp2-client`,
    );
    process.exit(2);
  }
  const pinning = canPin();
  const serverPin = pinning ? ["taskset", "-c", "0"] : [];
  const loadPin = pinning ? ["taskset", "-c", "1"] : [];
  const workDir = await mkdtemp(path.join(tmpdir(), "kmsd-bench-"));
  const rootKey = randomBytes(32).toString("base64");
  const dataDir = path.join(workDir, "data");
  const load = (server: Running): LoadOptions => ({
    seconds: SECONDS,
    warmupSeconds: WARMUP,
    concurrency: IN_FLIGHT,
    serverPids: () => server.pids(),
    pin: loadPin,
    workDir,
  });

  try {
    // Baseline: grpc-js doing the same AES-GCM work, nothing else.
    const baseline = await startBaseline({ pin: serverPin, port: nextPort++ });
    const baselineResults = new Map<string, LoadResult>();
    try {
      for (const size of [8, 4096]) {
        const plain = "x".repeat(size);
        const encrypt = grpcTarget(
          baseline.port,
          "EncryptData",
          toBinary(
            EncryptDataRequestSchema,
            create(EncryptDataRequestSchema, { keyId: "k", plainText: plain }),
          ),
          {},
        );
        progress(`baseline EncryptData ${size} B`);
        const encrypted = await h2load(encrypt, load(baseline));
        baselineResults.set(`encrypt-${size}`, encrypted);
        rows.push({
          group: "baseline",
          name: `grpc-js + AES-GCM, EncryptData ${size} B`,
          result: encrypted,
        });
      }
    } finally {
      await baseline.stop();
    }

    // kmsd, production setup: authentication, validation and audit on, SQLite.
    let kmsd = await startKmsd({ pin: serverPin, dataDir, rootKey, port: nextPort++ });
    const idleRss = await kmsd.rssMb();
    const token = await projectToken(dataDir, rootKey);
    const keyId = await createKey(kmsd.port, token);
    try {
      for (const size of [8, 4096]) {
        const plain = "x".repeat(size);
        const base = baselineResults.get(`encrypt-${size}`);
        const cipherText = await encryptOnce(kmsd.port, token, keyId, plain);
        const cases: [string, Target, "h2" | "h1"][] = [
          [
            "gRPC (h2c)",
            grpcTarget(
              kmsd.port,
              "EncryptData",
              toBinary(
                EncryptDataRequestSchema,
                create(EncryptDataRequestSchema, { projectId: PROJECT, keyId, plainText: plain }),
              ),
              { "x-auth-token": token },
            ),
            "h2",
          ],
          [
            "gRPC (h2c) decrypt",
            grpcTarget(
              kmsd.port,
              "DecryptData",
              toBinary(
                DecryptDataRequestSchema,
                create(DecryptDataRequestSchema, { projectId: PROJECT, cipherText }),
              ),
              { "x-auth-token": token },
            ),
            "h2",
          ],
          [
            "Connect JSON (h2c)",
            connectTarget(
              kmsd.port,
              "EncryptData",
              { project_id: PROJECT, key_id: keyId, plain_text: plain },
              token,
            ),
            "h2",
          ],
          [
            "Connect JSON (h2c) decrypt",
            connectTarget(
              kmsd.port,
              "DecryptData",
              { project_id: PROJECT, cipher_text: cipherText },
              token,
            ),
            "h2",
          ],
          [
            "Connect JSON (HTTP/1.1)",
            connectTarget(
              kmsd.port,
              "EncryptData",
              { project_id: PROJECT, key_id: keyId, plain_text: plain },
              token,
            ),
            "h1",
          ],
          [
            "Connect JSON (HTTP/1.1) decrypt",
            connectTarget(
              kmsd.port,
              "DecryptData",
              { project_id: PROJECT, cipher_text: cipherText },
              token,
            ),
            "h1",
          ],
          [
            "REST (HTTP/1.1)",
            restTarget(kmsd.port, "encrypt-data", { key_id: keyId, plain_text: plain }, token),
            "h1",
          ],
          [
            "REST (HTTP/1.1) decrypt",
            restTarget(kmsd.port, "decrypt-data", { cipher_text: cipherText }, token),
            "h1",
          ],
        ];
        for (const [name, target, http] of cases) {
          progress(`kmsd ${name} ${size} B`);
          const result =
            http === "h2" ? await h2load(target, load(kmsd)) : await wrk(target, load(kmsd));
          const op = name.endsWith("decrypt") ? "DecryptData" : "EncryptData";
          rows.push({
            group: `${size} B`,
            name: `${name.replace(/ decrypt$/, "")}, ${op}`,
            result,
            ...(base === undefined ? {} : { baseline: base }),
          });
        }
      }
    } finally {
      await kmsd.stop();
    }

    // Audit off: the same server without the audit trail.
    const auditOn = rows.find(
      (row) => row.name === "REST (HTTP/1.1), EncryptData" && row.group === "8 B",
    );
    kmsd = await startKmsd({
      pin: serverPin,
      dataDir,
      rootKey,
      port: nextPort++,
      args: ["--audit", "off"],
    });
    try {
      const target = restTarget(
        kmsd.port,
        "encrypt-data",
        { key_id: keyId, plain_text: "x".repeat(8) },
        token,
      );
      const off = await wrk(target, load(kmsd));
      rows.push({ group: "audit", name: "REST EncryptData 8 B, audit off", result: off });
      if (auditOn !== undefined) {
        rows.push({
          group: "audit",
          name: "REST EncryptData 8 B, audit on (the 8 B row; ratio to audit off)",
          result: auditOn.result,
          baseline: off,
        });
      }
    } finally {
      await kmsd.stop();
    }

    // Many keys: requests spread over all of them.
    const keyIds = await seedKeys(dataDir, rootKey, PROJECT, SPREAD_KEYS);
    kmsd = await startKmsd({
      pin: serverPin,
      dataDir,
      rootKey,
      port: nextPort++,
      args: ["--key-cache-size", String(SPREAD_KEYS + 100)],
    });
    let loadedRss = 0;
    try {
      const single = rows.find(
        (row) => row.name === "REST (HTTP/1.1), EncryptData" && row.group === "8 B",
      );
      const target = restTarget(kmsd.port, "encrypt-data", {}, token);
      progress(`encrypting once under each of ${keyIds.length} keys (cache warm-up)`);
      const cold = await encryptUnderEveryKey(target, keyIds, IN_FLIGHT);
      const script = spreadScript(keyIds, token);
      const spread = await wrk(target, load(kmsd), script);
      loadedRss = await kmsd.rssMb();
      rows.push({
        group: "keys",
        name: `REST EncryptData 8 B over ${keyIds.length.toLocaleString("en")} keys (ratio to one key)`,
        result: spread,
        ...(single === undefined ? {} : { baseline: single.result }),
        note: `after one pass over every key (that pass, all cache misses: ${Math.round(cold.requests / cold.seconds).toLocaleString("en")} req/s, ${cold.failures} failures)`,
      });
    } finally {
      await kmsd.stop();
    }

    // Workers.
    const workerResults = new Map<number, LoadResult>();
    for (const workers of [1, 2]) {
      kmsd = await startKmsd({
        pin: [],
        dataDir,
        rootKey,
        port: nextPort++,
        args: ["--workers", String(workers)],
      });
      try {
        const target = restTarget(
          kmsd.port,
          "encrypt-data",
          { key_id: keyId, plain_text: "x".repeat(8) },
          token,
        );
        const result = await wrk(target, { ...load(kmsd), pin: [] });
        workerResults.set(workers, result);
        const one = workerResults.get(1);
        rows.push({
          group: "workers",
          name: `REST EncryptData 8 B, --workers ${workers} (unpinned)`,
          result,
          ...(workers > 1 && one !== undefined ? { baseline: one } : {}),
        });
      } finally {
        await kmsd.stop();
      }
    }

    await writeReport({ pinning, idleRss, loadedRss });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** wrk script: each request encrypts 8 bytes under a key drawn at random from all of them. */
function spreadScript(keyIds: readonly string[], token: string): string {
  return [
    `local keys = {${keyIds.map((id) => `"${id}"`).join(",")}}`,
    `local headers = { ["Content-Type"] = "application/json", ["X-Auth-Token"] = ${luaString(token)} }`,
    "math.randomseed(os.time())",
    "request = function()",
    '  local body = \'{"key_id":"\' .. keys[math.random(#keys)] .. \'","plain_text":"xxxxxxxx"}\'',
    `  return wrk.format("POST", nil, headers, body)`,
    "end",
  ].join("\n");
}

function fmt(value: number, digits = 0): string {
  return Number.isFinite(value)
    ? value.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "n/a";
}

async function writeReport(memory: {
  pinning: boolean;
  idleRss: number;
  loadedRss: number;
}): Promise<void> {
  const lines = [
    "| Group | Scenario | req/s | ratio | p50 ms | p99 ms | CPU µs/req | failures |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
    ...rows.map((row) => {
      const ratio =
        row.baseline === undefined ? "" : `${fmt(row.result.rps / row.baseline.rps, 2)}×`;
      const r = row.result;
      return `| ${row.group} | ${row.name} | ${fmt(r.rps)} | ${ratio} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.cpuUsPerRequest)} | ${r.failures} |`;
    }),
  ];
  const machine = [
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${fmt(totalmem() / 2 ** 30, 1)} GiB`,
    `- Node.js ${process.version}; ${memory.pinning ? "server pinned to core 0, load generator to core 1 (taskset)" : "no taskset: nothing pinned"}`,
    `- Each scenario: ${WARMUP} s warm-up, then ${SECONDS} s measured; ${IN_FLIGHT} requests in flight (h2load: 1 connection × ${IN_FLIGHT} streams; wrk: ${IN_FLIGHT} connections)`,
    `- Resident memory: ${fmt(memory.idleRss)} MB idle after start; ${fmt(memory.loadedRss)} MB under load with ${SPREAD_KEYS.toLocaleString("en")} keys cached`,
  ];
  const notes = rows
    .filter((row) => row.note !== undefined)
    .map((row) => `- ${row.group}, ${row.name}: ${row.note}`);
  const report = `${machine.join("\n")}\n\n${lines.join("\n")}\n${notes.length > 0 ? `\n${notes.join("\n")}\n` : ""}`;
  await writeResults(path.join(ROOT, "docs/benchmarks.md"), "Benchmarks", report);
  console.log(report);
}

await main();
