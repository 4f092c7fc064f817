import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { createKmsGrpcClient, grpc, isGrpcCallError } from "../support/grpc-client.js";
import { createHealthClient, type HealthClient } from "../support/health-client.js";
import { holdHttp1 } from "../support/held-requests.js";
import { createKey, type RunningKmsd, startKmsd, testToken } from "../support/kmsd.js";
import { parseMetrics, sampleValue } from "../support/metrics-text.js";
import { eventually, PingFault } from "../support/store-faults.js";

async function getJson(url: string): Promise<{ status: number; json: unknown; headers: Headers }> {
  const response = await fetch(url);
  return { status: response.status, json: await response.json(), headers: response.headers };
}

async function servingGauge(kmsd: RunningKmsd): Promise<number | undefined> {
  const text = await (await fetch(`${kmsd.url}/metrics`)).text();
  return sampleValue(parseMetrics(text), "kmsd_serving");
}

describe("grpc.health.v1.Health", () => {
  let kmsd: RunningKmsd;
  let health: HealthClient;
  const fault = new PingFault();

  beforeAll(async () => {
    kmsd = await startKmsd({ healthCheckMs: 100 }, { decorateStore: fault.decorate });
    health = createHealthClient(`127.0.0.1:${kmsd.port}`);
  });
  afterAll(async () => {
    health.close();
    await kmsd.stop();
  });

  it("Check answers SERVING for the server and for kms.v1.KmsService, with no credentials", async () => {
    expect(await health.check("")).toBe("SERVING");
    expect(await health.check("kms.v1.KmsService")).toBe("SERVING");
  });

  it("Check of a service kmsd does not have is NOT_FOUND", async () => {
    const failure = await health.check("kms.v1.NoSuchService").catch((error: unknown) => error);
    expect(isGrpcCallError(failure)).toBe(true);
    expect((failure as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it("List gives every service's status", async () => {
    expect(await health.list()).toEqual({ "": "SERVING", "kms.v1.KmsService": "SERVING" });
  });

  it("answers the Connect protocol over HTTP/1.1 too", async () => {
    const client = createClient(
      Health,
      createConnectTransport({ baseUrl: kmsd.url, httpVersion: "1.1" }),
    );
    const response = await client.check({ service: "kms.v1.KmsService" });
    expect(response.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it("leaves kms.v1.KmsService authenticated", async () => {
    const keyId = await createKey(kmsd.config, "phealth", "k");
    const client = createKmsGrpcClient(kmsd.port);
    try {
      const failure = await client
        .call("EncryptData", { project_id: "phealth", key_id: keyId, plain_text: "x" })
        .catch((error: unknown) => error);
      expect((failure as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
    }
  });

  it("GET /healthz answers 200, GET /readyz 200 while the store answers", async () => {
    expect(await getJson(`${kmsd.url}/healthz`)).toMatchObject({
      status: 200,
      json: { status: "alive" },
    });
    const ready = await getJson(`${kmsd.url}/readyz`);
    expect(ready).toMatchObject({ status: 200, json: { status: "ready" } });
    expect(ready.headers.get("cache-control")).toBe("no-store");
  });

  it("the operations endpoints answer GET and HEAD only", async () => {
    const response = await fetch(`${kmsd.url}/readyz`, { method: "POST" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD");
    expect(await response.json()).toMatchObject({ error: { error_code: "KMS.0215" } });
    const head = await fetch(`${kmsd.url}/healthz`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("while the store is unreachable: NOT_SERVING everywhere, and SERVING again when it is back", async () => {
    const watch = health.watch("kms.v1.KmsService");
    const watchAll = health.watch("");
    const unknown = health.watch("kms.v1.NoSuchService");
    try {
      expect(await watch.received(1)).toEqual(["SERVING"]);
      expect(await watchAll.received(1)).toEqual(["SERVING"]);
      expect(await unknown.received(1)).toEqual(["SERVICE_UNKNOWN"]);

      fault.failing = true;
      expect(await watch.received(2)).toEqual(["SERVING", "NOT_SERVING"]);
      expect(await watchAll.received(2)).toEqual(["SERVING", "NOT_SERVING"]);
      expect(await health.check("")).toBe("NOT_SERVING");
      expect(await health.check("kms.v1.KmsService")).toBe("NOT_SERVING");
      expect(await health.list()).toEqual({
        "": "NOT_SERVING",
        "kms.v1.KmsService": "NOT_SERVING",
      });
      expect(await getJson(`${kmsd.url}/readyz`)).toMatchObject({
        status: 503,
        json: { status: "not ready", reason: "store unreachable" },
      });
      // Alive all the same: restarting kmsd would not bring the store back.
      expect((await getJson(`${kmsd.url}/healthz`)).status).toBe(200);
      expect(await servingGauge(kmsd)).toBe(0);

      fault.failing = false;
      expect(await watch.received(3)).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
      expect(await health.check("")).toBe("SERVING");
      expect((await getJson(`${kmsd.url}/readyz`)).status).toBe(200);
      expect(await servingGauge(kmsd)).toBe(1);
      // An unknown service stays unknown, whatever the store does.
      expect(unknown.statuses).toEqual(["SERVICE_UNKNOWN"]);
    } finally {
      fault.failing = false;
      watch.cancel();
      watchAll.cancel();
      unknown.cancel();
    }
  });
});

describe("health at shutdown", () => {
  it("turns NOT_SERVING as soon as stop() begins, ends Watch, and still finishes the request in flight", async () => {
    const kmsd = await startKmsd({ shutdownGraceMs: 10_000 });
    const health = createHealthClient(`127.0.0.1:${kmsd.port}`);
    try {
      const keyId = await createKey(kmsd.config, "pdrain", "k");
      const token = await testToken(kmsd.config, "pdrain");
      const watch = health.watch("");
      expect(await watch.received(1)).toEqual(["SERVING"]);
      const held = await holdHttp1(
        `${kmsd.url}/v1.0/pdrain/kms/encrypt-data`,
        { "content-type": "application/json", "x-auth-token": token },
        JSON.stringify({ key_id: keyId, plain_text: "in flight at shutdown" }),
      );

      let stopped = false;
      const stopping = kmsd.stop().then(() => {
        stopped = true;
      });
      expect(await watch.received(2)).toEqual(["SERVING", "NOT_SERVING"]);
      // The server ends the watch itself (status OK), so probes reconnect elsewhere.
      expect((await watch.ended).code).toBe(grpc.status.OK);
      await eventually(
        () =>
          new Promise<boolean>((resolve) => {
            fetch(`${kmsd.url}/healthz`).then(
              () => resolve(false),
              () => resolve(true),
            );
          }),
        2000,
        "new connections refused",
      );
      expect(stopped).toBe(false);

      held.release();
      const reply = await held.reply;
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body)).toMatchObject({ key_id: keyId });
      await stopping;
    } finally {
      health.close();
      await kmsd.stop();
    }
  });
});
