/**
 * AK/SK signatures on gRPC and Connect: the canonical request is POST, the
 * RPC path, the signed headers (host is the :authority) and the SHA-256 of
 * the message bytes as sent, declared in a signed X-Sdk-Content-Sha256 so
 * that Huawei's own AKSKSigner can sign it (docs/authentication.md).
 */
import { randomBytes } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { AKSKSigner } from "@huaweicloud/huaweicloud-sdk-core/auth/AKSKSigner.js";
import { BasicCredentials } from "@huaweicloud/huaweicloud-sdk-core/auth/BasicCredentials.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { GrpcMessage } from "../support/grpc-client.js";
import { createKey, type RunningKmsd, startKmsd } from "../support/kmsd.js";
import {
  issueTestCredential,
  sdkDate,
  sha256Hex,
  signRpc,
  type TestCredential,
} from "../support/signing.js";
import {
  CONNECT_TRANSPORTS,
  cliJson,
  connectClient,
  connectFailure,
  expectRpcFailure,
  grpcFailure,
  grpcOk,
  loadedMethod,
  MINUTE_MS,
  type RpcFailure,
  SignedGrpc,
  signingInterceptor,
  UUID,
  waitUntil,
} from "./helpers.js";

let kmsd: RunningKmsd;
let grpcClient: SignedGrpc;
const closers: (() => void)[] = [];
let nextProject = 0;

beforeAll(async () => {
  kmsd = await startKmsd();
  grpcClient = new SignedGrpc(kmsd.port);
});

afterAll(async () => {
  grpcClient?.close();
  for (const close of closers) close();
  await kmsd?.stop();
});

/** A project of its own, with an admin credential and an enabled key. */
async function project(role: "admin" | "user" = "admin") {
  nextProject += 1;
  const projectId = `rpc-aksk-${nextProject}`;
  const credential = await issueTestCredential(kmsd.config, projectId, role);
  const keyId = await createKey(kmsd.config, projectId, `key-${nextProject}`);
  return { projectId, credential, keyId };
}

describe("gRPC (@grpc/grpc-js, signed as docs/authentication.md shows)", () => {
  it("round-trips EncryptData and DecryptData, and manages keys", async () => {
    const { projectId, credential, keyId } = await project();
    const encrypted = grpcOk(
      await grpcClient.call(credential, "EncryptData", {
        project_id: projectId,
        key_id: keyId,
        plain_text: "signed gRPC",
        encryption_context: { purpose: "grpc" },
      }),
    );
    expect(encrypted.key_id).toBe(keyId);
    const decrypted = grpcOk(
      await grpcClient.call(credential, "DecryptData", {
        project_id: projectId,
        cipher_text: encrypted.cipher_text,
        encryption_context: { purpose: "grpc" },
      }),
    );
    expect(decrypted.plain_text).toBe("signed gRPC");
    const created = grpcOk(
      await grpcClient.call(credential, "CreateKey", { project_id: projectId, key_alias: "g" }),
    );
    const newKey = (created.key_info as GrpcMessage).key_id as string;
    expect(newKey).toMatch(UUID);
    const listed = grpcOk(await grpcClient.call(credential, "ListKeys", { project_id: projectId }));
    expect((listed.keys as string[]).sort()).toEqual([keyId, newKey].sort());
  });

  it("a signature over one message, sent with another: UNAUTHENTICATED APIGW.0301", async () => {
    const { projectId, credential, keyId } = await project();
    const sent = { project_id: projectId, key_id: keyId, plain_text: "pay 99" };
    const signed = { ...sent, plain_text: "pay 10" };
    grpcOk(await grpcClient.call(credential, "EncryptData", signed));
    const outcome = await grpcClient.call(credential, "EncryptData", sent, { signMessage: signed });
    expectRpcFailure(grpcFailure(outcome), Code.Unauthenticated, "APIGW.0301");
  });

  it("a declared body hash that is the sent message's but not the signed one's: UNAUTHENTICATED APIGW.0301", async () => {
    const { projectId, credential, keyId } = await project();
    const sent = { project_id: projectId, key_id: keyId, plain_text: "pay 99" };
    const signed = { ...sent, plain_text: "pay 10" };
    const method = loadedMethod("EncryptData");
    const sentBytes = method.requestSerialize(sent);
    const headers = signRpc(credential, {
      authority: `127.0.0.1:${kmsd.port}`,
      path: method.path,
      message: method.requestSerialize(signed),
    });
    const outcome = await grpcClient.send(method, sentBytes, {
      ...headers,
      "x-sdk-content-sha256": sha256Hex(sentBytes),
    });
    expectRpcFailure(grpcFailure(outcome), Code.Unauthenticated, "APIGW.0301");
  });

  it("a signature for one RPC sent to another: UNAUTHENTICATED APIGW.0301", async () => {
    const { projectId, credential, keyId } = await project();
    const describe = loadedMethod("DescribeKey");
    const disable = loadedMethod("DisableKey");
    const bytes = describe.requestSerialize({ project_id: projectId, key_id: keyId });
    const headers = signRpc(credential, {
      authority: `127.0.0.1:${kmsd.port}`,
      path: describe.path,
      message: bytes,
    });
    grpcOk(await grpcClient.send(describe, bytes, headers));
    const outcome = await grpcClient.send(disable, bytes, headers);
    expectRpcFailure(grpcFailure(outcome), Code.Unauthenticated, "APIGW.0301");
    const described = grpcOk(await grpcClient.send(describe, bytes, headers));
    expect((described.key_info as GrpcMessage).key_state).toBe("2");
  });

  it("signed without X-Sdk-Content-Sha256 (the signer then hashes an empty body): UNAUTHENTICATED APIGW.0301", async () => {
    const { projectId, credential } = await project();
    const method = loadedMethod("ListKeys");
    const headers = AKSKSigner.sign(
      { method: "POST", endpoint: `http://127.0.0.1:${kmsd.port}${method.path}`, headers: {} },
      new BasicCredentials().withAk(credential.access_key).withSk(credential.secret_key),
    ) as Record<string, string>;
    const { host: _host, ...metadata } = headers;
    const outcome = await grpcClient.send(
      method,
      method.requestSerialize({ project_id: projectId }),
      metadata,
    );
    expectRpcFailure(grpcFailure(outcome), Code.Unauthenticated, "APIGW.0301");
  });

  it("UNSIGNED-PAYLOAD is refused: UNAUTHENTICATED APIGW.0301", async () => {
    const { projectId, credential } = await project();
    const method = loadedMethod("ListKeys");
    const headers = AKSKSigner.sign(
      {
        method: "POST",
        endpoint: `http://127.0.0.1:${kmsd.port}${method.path}`,
        headers: { "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD" },
      },
      new BasicCredentials().withAk(credential.access_key).withSk(credential.secret_key),
    ) as Record<string, string>;
    const { host: _host, ...metadata } = headers;
    const outcome = await grpcClient.send(
      method,
      method.requestSerialize({ project_id: projectId }),
      metadata,
    );
    expectRpcFailure(grpcFailure(outcome), Code.Unauthenticated, "APIGW.0301");
  });

  it.each([-16, 16])("X-Sdk-Date %i minutes off: UNAUTHENTICATED APIGW.0303", async (minutes) => {
    const { projectId, credential } = await project();
    const outcome = await grpcClient.call(
      credential,
      "ListKeys",
      { project_id: projectId },
      { date: sdkDate(Date.now() + minutes * MINUTE_MS) },
    );
    expectRpcFailure(grpcFailure(outcome), Code.Unauthenticated, "APIGW.0303");
  });

  it.each([-14, 14])("X-Sdk-Date %i minutes off is accepted", async (minutes) => {
    const { projectId, credential } = await project();
    grpcOk(
      await grpcClient.call(
        credential,
        "ListKeys",
        { project_id: projectId },
        { date: sdkDate(Date.now() + minutes * MINUTE_MS) },
      ),
    );
  });

  it("unknown, disabled and wrongly signed access keys fail alike", async () => {
    const { projectId, credential } = await project();
    const { credential: disabled } = await project();
    await cliJson(kmsd.config, ["credentials", "disable", "--access-key", disabled.access_key]);
    const unknown: TestCredential = {
      ...credential,
      access_key: `KMSD${randomBytes(8).toString("hex").toUpperCase()}`.slice(0, 20),
    };
    const forged: TestCredential = { ...credential, secret_key: "z".repeat(40) };
    const request = { project_id: projectId };
    await waitUntil("the disabled credential is refused", async () => {
      return !(await grpcClient.call(disabled, "ListKeys", request)).ok;
    });
    const failures: RpcFailure[] = [];
    for (const who of [unknown, disabled, forged]) {
      failures.push(grpcFailure(await grpcClient.call(who, "ListKeys", request)));
    }
    expectRpcFailure(failures[0] as RpcFailure, Code.Unauthenticated, "APIGW.0301");
    expect(failures[1]).toEqual(failures[0]);
    expect(failures[2]).toEqual(failures[0]);
  });

  it("another project's credential: PERMISSION_DENIED KMS.0321; a user's on CreateKey: KMS.0307", async () => {
    const a = await project();
    const b = await project();
    const onB = await grpcClient.call(a.credential, "DescribeKey", {
      project_id: b.projectId,
      key_id: b.keyId,
    });
    expectRpcFailure(grpcFailure(onB), Code.PermissionDenied, "KMS.0321");
    const user = await issueTestCredential(kmsd.config, a.projectId, "user");
    grpcOk(
      await grpcClient.call(user, "EncryptData", {
        project_id: a.projectId,
        key_id: a.keyId,
        plain_text: "u",
      }),
    );
    const denied = await grpcClient.call(user, "CreateKey", {
      project_id: a.projectId,
      key_alias: "users-cannot",
    });
    expectRpcFailure(grpcFailure(denied), Code.PermissionDenied, "KMS.0307");
  });

  it("a signed X-Project-Id that is not the credential's: PERMISSION_DENIED KMS.0321", async () => {
    const a = await project();
    const method = loadedMethod("ListKeys");
    const bytes = method.requestSerialize({ project_id: a.projectId });
    const headers = signRpc(a.credential, {
      authority: `127.0.0.1:${kmsd.port}`,
      path: method.path,
      message: bytes,
      headers: { "X-Project-Id": "someone-else" },
    });
    expectRpcFailure(
      grpcFailure(await grpcClient.send(method, bytes, headers)),
      Code.PermissionDenied,
      "KMS.0321",
    );
  });

  it("`kmsd credentials disable` takes effect within a second; `credentials enable` undoes it", async () => {
    const { projectId, credential } = await project();
    const request = { project_id: projectId };
    grpcOk(await grpcClient.call(credential, "ListKeys", request));
    const args = ["--access-key", credential.access_key];
    expect(await cliJson(kmsd.config, ["credentials", "disable", ...args])).toEqual({
      access_key: credential.access_key,
      state: "disabled",
    });
    const took = await waitUntil("the disabled credential is refused", async () => {
      const outcome = await grpcClient.call(credential, "ListKeys", request);
      if (outcome.ok) return false;
      expectRpcFailure(outcome, Code.Unauthenticated, "APIGW.0301");
      return true;
    });
    expect(took).toBeLessThan(1000);
    await cliJson(kmsd.config, ["credentials", "enable", ...args]);
    await waitUntil("the enabled credential works again", async () => {
      return (await grpcClient.call(credential, "ListKeys", request)).ok;
    });
  });
});

describe("Connect JSON by hand (fetch)", () => {
  async function post(path: string, body: string, headers: Record<string, string>) {
    const response = await fetch(`${kmsd.url}${path}`, { method: "POST", headers, body });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  }

  function reasonOf(json: Record<string, unknown>): string | undefined {
    const details = (json.details ?? []) as { type: string; value: string }[];
    const info = details.find((detail) => detail.type === "google.rpc.ErrorInfo");
    return info && fromBinary(ErrorInfoSchema, Buffer.from(info.value, "base64")).reason;
  }

  it("signed with X-Sdk-Content-Sha256, or with the signer hashing the JSON itself", async () => {
    const { projectId, credential, keyId } = await project();
    const path = "/kms.v1.KmsService/EncryptData";
    const data = { project_id: projectId, key_id: keyId, plain_text: "connect" };
    const body = JSON.stringify(data);
    const declared = signRpc(credential, {
      authority: `127.0.0.1:${kmsd.port}`,
      path,
      message: body,
      headers: { "content-type": "application/json" },
    });
    const first = await post(path, body, declared);
    expect(first).toMatchObject({ status: 200, json: { key_id: keyId } });
    // The signer's own body hash: JSON.stringify(data), which is what is sent.
    const { host: _host, ...hashedBySigner } = AKSKSigner.sign(
      {
        method: "POST",
        endpoint: `http://127.0.0.1:${kmsd.port}${path}`,
        headers: { "content-type": "application/json" },
        data,
      },
      new BasicCredentials().withAk(credential.access_key).withSk(credential.secret_key),
    ) as Record<string, string>;
    expect(hashedBySigner.Authorization).not.toContain("x-sdk-content-sha256");
    const second = await post(path, body, hashedBySigner);
    expect(second).toMatchObject({ status: 200, json: { key_id: keyId } });
  });

  it("a tampered body: HTTP 401, unauthenticated, ErrorInfo APIGW.0301", async () => {
    const { projectId, credential, keyId } = await project();
    const path = "/kms.v1.KmsService/EncryptData";
    const signed = JSON.stringify({ project_id: projectId, key_id: keyId, plain_text: "pay 10" });
    const sent = JSON.stringify({ project_id: projectId, key_id: keyId, plain_text: "pay 99" });
    for (const declare of [true, false]) {
      const headers = signRpc(credential, {
        authority: `127.0.0.1:${kmsd.port}`,
        path,
        message: signed,
        headers: { "content-type": "application/json" },
      });
      if (!declare) delete headers["X-Sdk-Content-Sha256"];
      const reply = await post(path, sent, headers);
      expect(reply.status).toBe(401);
      expect(reply.json.code).toBe("unauthenticated");
      expect(reasonOf(reply.json)).toBe("APIGW.0301");
    }
  });
});

describe.each(CONNECT_TRANSPORTS)("connect-es $name with a signing interceptor", (transport) => {
  const authority = () => `127.0.0.1:${kmsd.port}`;
  const track = (close: () => void) => closers.push(close);

  it("round-trips EncryptData and DecryptData", async () => {
    const { projectId, credential, keyId } = await project();
    const client = connectClient(
      transport,
      kmsd.url,
      [signingInterceptor(credential, authority(), transport.format)],
      track,
    );
    const encrypted = await client.encryptData({ projectId, keyId, plainText: "signed connect" });
    const decrypted = await client.decryptData({ projectId, cipherText: encrypted.cipherText });
    expect(decrypted.plainText).toBe("signed connect");
  });

  it("a signature over one message, sent with another: UNAUTHENTICATED APIGW.0301", async () => {
    const { projectId, credential, keyId } = await project();
    const client = connectClient(
      transport,
      kmsd.url,
      [signingInterceptor(credential, authority(), transport.format, { spoil: "body" })],
      track,
    );
    const failure = await connectFailure(client.encryptData({ projectId, keyId, plainText: "x" }));
    expectRpcFailure(failure, Code.Unauthenticated, "APIGW.0301");
  });

  it("another project's credential: PERMISSION_DENIED KMS.0321", async () => {
    const a = await project();
    const b = await project();
    const client = connectClient(
      transport,
      kmsd.url,
      [signingInterceptor(a.credential, authority(), transport.format)],
      track,
    );
    const failure = await connectFailure(
      client.describeKey({ projectId: b.projectId, keyId: b.keyId }),
    );
    expectRpcFailure(failure, Code.PermissionDenied, "KMS.0321");
  });

  it("X-Sdk-Date 16 minutes off: UNAUTHENTICATED APIGW.0303", async () => {
    const { projectId, credential } = await project();
    const client = connectClient(
      transport,
      kmsd.url,
      [
        signingInterceptor(credential, authority(), transport.format, {
          date: () => sdkDate(Date.now() - 16 * MINUTE_MS),
        }),
      ],
      track,
    );
    const failure = await connectFailure(client.listKeys({ projectId }));
    expectRpcFailure(failure, Code.Unauthenticated, "APIGW.0303");
  });
});
