import { execFile } from "node:child_process";
import https from "node:https";
import type { TLSSocket } from "node:tls";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { SettingError } from "../../src/config/settings.js";
import { loadTlsOptions } from "../../src/transport/tls-options.js";
import { makeTestPki, type TestPki } from "../support/certs.js";
import { createKmsGrpcClient, grpc } from "../support/grpc-client.js";
import { createHealthClient } from "../support/health-client.js";
import { createKey, type RunningKmsd, removeDir, startKmsd, testToken } from "../support/kmsd.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const PROJECT = "ptls";

interface HttpsReply {
  readonly status: number;
  readonly body: string;
  readonly alpn: string | false | null;
}

/** A REST POST over https with node's client, trusting only the test CA. */
function httpsPost(
  port: number,
  path: string,
  body: unknown,
  options: https.RequestOptions,
): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", ...options.headers },
        ...options,
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8").on("data", (chunk: string) => {
          text += chunk;
        });
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            body: text,
            alpn: (response.socket as TLSSocket).alpnProtocol,
          }),
        );
      },
    );
    request.on("error", reject);
    request.end(JSON.stringify(body));
  });
}

function bufCurl(
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      `${ROOT}node_modules/.bin/buf`,
      ["curl", ...args],
      { timeout: 15_000 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr }),
    );
  });
}

let pki: TestPki;
let ca: Buffer;
beforeAll(async () => {
  pki = await makeTestPki();
  ca = await pki.read(pki.caCert);
});
afterAll(() => removeDir(pki.dir));

describe("TLS", () => {
  let kmsd: RunningKmsd;
  let keyId: string;
  let token: string;

  beforeAll(async () => {
    kmsd = await startKmsd({ tlsCert: pki.serverCert, tlsKey: pki.serverKey });
    keyId = await createKey(kmsd.config, PROJECT, "tls");
    token = await testToken(kmsd.config, PROJECT);
  });
  afterAll(() => kmsd.stop());

  it.each([
    ["offering http/1.1 by ALPN", ["http/1.1"], "http/1.1"],
    ["offering no ALPN at all", undefined, false],
  ] as const)("serves REST over HTTP/1.1 to a client %s", async (_, offered, negotiated) => {
    const reply = await httpsPost(
      kmsd.port,
      `/v1.0/${PROJECT}/kms/encrypt-data`,
      { key_id: keyId, plain_text: "over https" },
      {
        ca,
        headers: { "x-auth-token": token },
        ...(offered === undefined ? {} : { ALPNProtocols: [...offered] }),
      },
    );
    expect(reply.status).toBe(200);
    expect(reply.alpn).toBe(negotiated);
    expect(JSON.parse(reply.body)).toMatchObject({ key_id: keyId });
  });

  it("serves gRPC over h2 (grpc-js, TLS credentials)", async () => {
    const client = createKmsGrpcClient(kmsd.port, grpc.credentials.createSsl(ca));
    try {
      const metadata = new grpc.Metadata();
      metadata.set("x-auth-token", token);
      const encrypted = await client.call(
        "EncryptData",
        { project_id: PROJECT, key_id: keyId, plain_text: "over grpc+tls" },
        metadata,
      );
      const decrypted = await client.call(
        "DecryptData",
        { project_id: PROJECT, cipher_text: encrypted.cipher_text },
        metadata,
      );
      expect(decrypted.plain_text).toBe("over grpc+tls");
    } finally {
      client.close();
    }
    const health = createHealthClient(`127.0.0.1:${kmsd.port}`, grpc.credentials.createSsl(ca));
    try {
      expect(await health.check("")).toBe("SERVING");
    } finally {
      health.close();
    }
  });

  it.each(["2", "1.1"] as const)("serves Connect over HTTP/%s", async (httpVersion) => {
    const client = createClient(
      KmsService,
      createConnectTransport({
        baseUrl: `https://127.0.0.1:${kmsd.port}`,
        httpVersion,
        nodeOptions: { ca },
        interceptors: [
          (next) => async (request) => {
            request.header.set("x-auth-token", token);
            return next(request);
          },
        ],
      }),
    );
    const encrypted = await client.encryptData({ projectId: PROJECT, keyId, plainText: "connect" });
    const decrypted = await client.decryptData({
      projectId: PROJECT,
      cipherText: encrypted.cipherText,
    });
    expect(decrypted.plainText).toBe("connect");
  });

  it("works with buf curl over https, reflection included", async () => {
    const listed = await bufCurl([
      "--cacert",
      pki.caCert,
      "--list-services",
      `https://127.0.0.1:${kmsd.port}`,
    ]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain("kms.v1.KmsService");
    const encrypted = await bufCurl([
      "--cacert",
      pki.caCert,
      "--protocol",
      "grpc",
      "-H",
      `x-auth-token: ${token}`,
      "-d",
      JSON.stringify({ project_id: PROJECT, key_id: keyId, plain_text: "buf over tls" }),
      `https://127.0.0.1:${kmsd.port}/kms.v1.KmsService/EncryptData`,
    ]);
    expect(encrypted.code, encrypted.stderr).toBe(0);
    expect(JSON.parse(encrypted.stdout)).toMatchObject({ keyId });
  });

  it("serves the operations endpoints over https", async () => {
    const reply = await new Promise<number>((resolve, reject) => {
      https
        .get(
          { host: "127.0.0.1", port: kmsd.port, path: "/readyz", ca, agent: false },
          (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          },
        )
        .on("error", reject);
    });
    expect(reply).toBe(200);
  });

  it("does not speak plaintext on the TLS port", async () => {
    await expect(fetch(`${kmsd.url}/healthz`)).rejects.toThrow();
  });

  it("is refused by a client that does not trust its certificate", async () => {
    await expect(httpsPost(kmsd.port, "/healthz", {}, { headers: {} })).rejects.toThrow(
      /self.signed|unable to verify|certificate/i,
    );
  });
});

describe("mutual TLS (--tls-client-ca)", () => {
  let kmsd: RunningKmsd;
  let token: string;
  let keyId: string;

  beforeAll(async () => {
    kmsd = await startKmsd({
      tlsCert: pki.serverCert,
      tlsKey: pki.serverKey,
      tlsClientCa: pki.caCert,
    });
    keyId = await createKey(kmsd.config, PROJECT, "mtls");
    token = await testToken(kmsd.config, PROJECT);
  });
  afterAll(() => kmsd.stop());

  const encrypt = (options: https.RequestOptions) =>
    httpsPost(
      kmsd.port,
      `/v1.0/${PROJECT}/kms/encrypt-data`,
      { key_id: keyId, plain_text: "mtls" },
      { ca, headers: { "x-auth-token": token }, ...options },
    );

  it("serves a client with a certificate from the CA", async () => {
    const reply = await encrypt({
      cert: await pki.read(pki.clientCert),
      key: await pki.read(pki.clientKey),
    });
    expect(reply.status).toBe(200);
  });

  it("refuses a client without a certificate", async () => {
    await expect(encrypt({})).rejects.toThrow();
  });

  it("refuses a client whose certificate another CA issued", async () => {
    await expect(
      encrypt({
        cert: await pki.read(pki.otherClientCert),
        key: await pki.read(pki.otherClientKey),
      }),
    ).rejects.toThrow();
  });

  it("serves gRPC with a client certificate and refuses it without", async () => {
    const withCert = createHealthClient(
      `127.0.0.1:${kmsd.port}`,
      grpc.credentials.createSsl(ca, await pki.read(pki.clientKey), await pki.read(pki.clientCert)),
    );
    const withoutCert = createHealthClient(
      `127.0.0.1:${kmsd.port}`,
      grpc.credentials.createSsl(ca),
    );
    try {
      expect(await withCert.check("")).toBe("SERVING");
      const failure = await withoutCert.check("").catch((error: unknown) => error);
      expect((failure as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      withCert.close();
      withoutCert.close();
    }
  });
});

describe("TLS settings are checked at start", () => {
  const settingOf = (run: () => unknown): string => {
    try {
      run();
    } catch (error) {
      if (error instanceof SettingError) return `${error.setting}: ${error.message}`;
      throw error;
    }
    throw new Error("no SettingError");
  };
  const none = { tlsCert: "", tlsKey: "", tlsClientCa: "" };

  it("plaintext without any", () => {
    expect(loadTlsOptions(none)).toBeUndefined();
  });

  it("names the setting that is missing, unreadable, not PEM or not matching", async () => {
    expect(settingOf(() => loadTlsOptions({ ...none, tlsCert: pki.serverCert }))).toMatch(
      /^--tls-key: .*is required with --tls-cert/,
    );
    expect(settingOf(() => loadTlsOptions({ ...none, tlsKey: pki.serverKey }))).toMatch(
      /^--tls-cert: /,
    );
    expect(settingOf(() => loadTlsOptions({ ...none, tlsClientCa: pki.caCert }))).toMatch(
      /^--tls-client-ca: /,
    );
    expect(
      settingOf(() =>
        loadTlsOptions({ ...none, tlsCert: `${pki.dir}/nope.crt`, tlsKey: pki.serverKey }),
      ),
    ).toMatch(/^--tls-cert: .*cannot read .*nope\.crt/);
    expect(
      settingOf(() => loadTlsOptions({ ...none, tlsCert: pki.serverKey, tlsKey: pki.serverKey })),
    ).toMatch(/^--tls-cert: .*not usable PEM/);
    expect(
      settingOf(() => loadTlsOptions({ ...none, tlsCert: pki.serverCert, tlsKey: pki.clientKey })),
    ).toMatch(/^--tls-key: .*is not the private key of/);
    expect(
      settingOf(() =>
        loadTlsOptions({
          tlsCert: pki.serverCert,
          tlsKey: pki.serverKey,
          tlsClientCa: pki.serverKey,
        }),
      ),
    ).toMatch(/^--tls-client-ca: .*not usable PEM/);
  });

  it("so a server with a bad one does not start", async () => {
    await expect(
      startKmsd({ tlsCert: pki.serverCert, tlsKey: pki.clientKey }),
    ).rejects.toBeInstanceOf(SettingError);
  });
});
