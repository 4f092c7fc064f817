import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAuditRecord } from "../../src/audit/record-text.js";
import type { AuditRecord } from "../../src/keystore/audit-types.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { createKmsGrpcClient, grpc } from "../support/grpc-client.js";
import { createKey, type RunningKmsd, startKmsd, testToken } from "../support/kmsd.js";
import { parseMetrics, type Sample, sampleValue } from "../support/metrics-text.js";

const PROJECT = "pmetrics";
const KMS = "kms.v1.KmsService";

describe("GET /metrics", () => {
  let kmsd: RunningKmsd;
  let keyId: string;
  let token: string;
  let text: string;
  let samples: Sample[];
  let contentType: string | null;
  let trail: AuditRecord[];

  const rest = (path: string, body: unknown, auth = true) =>
    fetch(`${kmsd.url}/v1.0/${PROJECT}/kms/${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(auth ? { "x-auth-token": token } : {}),
      },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    kmsd = await startKmsd();
    keyId = await createKey(kmsd.config, PROJECT, "metrics");
    token = await testToken(kmsd.config, PROJECT);

    // REST: 3 encryptions, 1 decryption, 1 unauthenticated call, 1 unknown path.
    let cipherText = "";
    for (let i = 0; i < 3; i++) {
      const response = await rest("encrypt-data", { key_id: keyId, plain_text: `m${i}` });
      expect(response.status).toBe(200);
      cipherText = ((await response.json()) as { cipher_text: string }).cipher_text;
    }
    expect((await rest("decrypt-data", { cipher_text: cipherText })).status).toBe(200);
    expect((await rest("encrypt-data", { key_id: keyId, plain_text: "x" }, false)).status).toBe(
      401,
    );
    expect((await rest("no-such-api", {})).status).toBe(404);

    // gRPC (the h2 fast path): 2 encryptions, 1 for a key that does not exist.
    const client = createKmsGrpcClient(kmsd.port);
    const metadata = new grpc.Metadata();
    metadata.set("x-auth-token", token);
    try {
      for (let i = 0; i < 2; i++) {
        await client.call(
          "EncryptData",
          { project_id: PROJECT, key_id: keyId, plain_text: "g" },
          metadata,
        );
      }
      await expect(
        client.call(
          "EncryptData",
          { project_id: PROJECT, key_id: "00000000-0000-0000-0000-000000000000", plain_text: "g" },
          metadata,
        ),
      ).rejects.toThrow();
    } finally {
      client.close();
    }

    // Connect JSON over HTTP/1.1: 1 encryption.
    const connect = await fetch(`${kmsd.url}/kms.v1.KmsService/EncryptData`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-auth-token": token },
      body: JSON.stringify({ project_id: PROJECT, key_id: keyId, plain_text: "c" }),
    });
    expect(connect.status).toBe(200);

    // The audit writer flushes within audit-flush-ms; the store timings include
    // its append. Scraped until every record is written (the timer may fire late).
    for (let attempt = 0; ; attempt++) {
      const scraped = await fetch(`${kmsd.url}/metrics`);
      expect(scraped.status).toBe(200);
      contentType = scraped.headers.get("content-type");
      text = await scraped.text();
      samples = parseMetrics(text);
      const written = sampleValue(samples, "kmsd_audit_records_written_total") ?? 0;
      if ((written > 0 && sampleValue(samples, "kmsd_audit_backlog") === 0) || attempt === 100) {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const store = await openSqliteStore({ dataDir: kmsd.config.dataDir });
    try {
      trail = (await store.readAudit({ limit: 1000 })).map(parseAuditRecord);
    } finally {
      await store.close();
    }
  });
  afterAll(() => kmsd.stop());

  const requests = (method: string, protocol: string, code: string) =>
    sampleValue(samples, "kmsd_rpc_requests_total", { service: KMS, method, protocol, code });

  it("is Prometheus text, unauthenticated", () => {
    expect(contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(text).toContain("# TYPE kmsd_rpc_requests_total counter");
    expect(text).toContain("# TYPE kmsd_rpc_duration_seconds histogram");
  });

  it("counts RPCs by method, protocol and outcome code", () => {
    expect(requests("EncryptData", "rest", "OK")).toBe(3);
    expect(requests("EncryptData", "rest", "APIGW.0301")).toBe(1);
    expect(requests("DecryptData", "rest", "OK")).toBe(1);
    expect(requests("EncryptData", "grpc", "OK")).toBe(2);
    expect(requests("EncryptData", "grpc", "KMS.0207")).toBe(1);
    expect(requests("EncryptData", "connect", "OK")).toBe(1);
  });

  it("counts requests refused before any RPC", () => {
    expect(
      sampleValue(samples, "kmsd_rejected_requests_total", {
        protocol: "rest",
        code: "APIGW.0101",
      }),
    ).toBe(1);
  });

  it("keeps a latency histogram per method and protocol", () => {
    const labels = { service: KMS, method: "EncryptData", protocol: "rest" };
    expect(sampleValue(samples, "kmsd_rpc_duration_seconds_count", labels)).toBe(4);
    const buckets = samples.filter(
      (sample) =>
        sample.name === "kmsd_rpc_duration_seconds_bucket" &&
        Object.entries(labels).every(([name, value]) => sample.labels[name] === value),
    );
    expect(buckets.at(-1)?.labels.le).toBe("+Inf");
    expect(buckets.at(-1)?.value).toBe(4);
    for (let i = 1; i < buckets.length; i++) {
      expect(buckets[i]?.value).toBeGreaterThanOrEqual(buckets[i - 1]?.value ?? 0);
      expect(Number(buckets[i]?.labels.le)).toSatisfy(
        (bound: number) => Number.isNaN(bound) || bound > Number(buckets[i - 1]?.labels.le),
      );
    }
    const sum = sampleValue(samples, "kmsd_rpc_duration_seconds_sum", labels) ?? 0;
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(10);
  });

  it("reports key-cache hits and misses, store latency, the audit backlog and serving", () => {
    // One lookup per keyed RPC that got past authentication (8): the first load and the
    // unknown key missed, and the change feed may have dropped the key once more since.
    const hits = sampleValue(samples, "kmsd_key_cache_hits_total") ?? 0;
    const misses = sampleValue(samples, "kmsd_key_cache_misses_total") ?? 0;
    expect(hits + misses).toBe(8);
    expect(misses).toBeGreaterThanOrEqual(2);
    expect(hits).toBeGreaterThanOrEqual(5);
    // The one key, unless the change feed dropped it after its last use (see above).
    expect([0, 1]).toContain(sampleValue(samples, "kmsd_key_cache_keys"));
    for (const operation of ["getKey", "getKeyVersion", "appendAudit", "ping"]) {
      expect(
        sampleValue(samples, "kmsd_store_operation_duration_seconds_count", { operation }),
        operation,
      ).toBeGreaterThanOrEqual(1);
    }
    expect(sampleValue(samples, "kmsd_audit_backlog")).toBe(0);
    // Every record this server wrote (the CLI's, made for the key and the token, are not its).
    const served = trail.filter((record) => record.protocol !== "cli");
    expect(served.length).toBeGreaterThanOrEqual(10);
    expect(sampleValue(samples, "kmsd_audit_records_written_total")).toBe(served.length);
    expect(sampleValue(samples, "kmsd_serving")).toBe(1);
    // And the usual process metrics.
    expect(sampleValue(samples, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
  });

  it("labels nothing by key, project or principal", async () => {
    const labelNames = new Set(samples.flatMap((sample) => Object.keys(sample.labels)));
    const allowed = [
      "service",
      "method",
      "protocol",
      "code",
      "operation",
      "le",
      // prom-client's default process metrics.
      "version",
      "major",
      "minor",
      "patch",
      "kind",
      "space",
      "type",
    ];
    expect([...labelNames].filter((name) => !allowed.includes(name))).toEqual([]);
    for (const identifier of [keyId, PROJECT, token]) expect(text).not.toContain(identifier);
  });
});
