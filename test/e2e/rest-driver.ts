/**
 * A KmsDriver over Huawei's REST API (plain fetch), so that the shared case
 * tables run on REST as they do on gRPC and Connect. Paths are Huawei's,
 * written out here rather than read from the proto, so the annotations are
 * checked too.
 */
import type { Code } from "@connectrpc/connect";
import { expect } from "vitest";
import { huaweiCodes, isHuaweiErrorCode } from "../../src/errors/huawei-codes.js";
import type { KmsMethod } from "../support/grpc-client.js";
import type { CallAuth, KmsDriver, KmsReply, KmsRequest, ProjectTokens } from "./grpc-cases.js";

/** Huawei's operation (the last path segment) of each RPC. */
export const REST_OPERATIONS: Readonly<Record<KmsMethod, string>> = {
  CreateKey: "create-key",
  DescribeKey: "describe-key",
  ListKeys: "list-keys",
  EnableKey: "enable-key",
  DisableKey: "disable-key",
  ScheduleKeyDeletion: "schedule-key-deletion",
  CancelKeyDeletion: "cancel-key-deletion",
  EncryptData: "encrypt-data",
  DecryptData: "decrypt-data",
  EnableKeyRotation: "enable-key-rotation",
  DisableKeyRotation: "disable-key-rotation",
  GetKeyRotationStatus: "get-key-rotation-status",
  UpdateKeyRotationInterval: "update-key-rotation-interval",
  RotateOnDemand: "rotate-on-demand",
  CreateDatakey: "create-datakey",
  CreateDatakeyWithoutPlaintext: "create-datakey-without-plaintext",
  EncryptDatakey: "encrypt-datakey",
  DecryptDatakey: "decrypt-datakey",
  GenRandom: "gen-random",
  ReEncrypt: "re-encrypt",
  UpdateKeyAlias: "update-key-alias",
  UpdateKeyDescription: "update-key-description",
  BatchEncryptData: "batch-encrypt-data",
  BatchDecryptData: "batch-decrypt-data",
};

const PROJECT_ID = /^[0-9a-zA-Z_-]{1,64}$/;

interface RestAnswer {
  readonly status: number;
  readonly body: unknown;
}

export function restDriver(baseUrl: string, tokens: ProjectTokens): KmsDriver {
  async function send(method: KmsMethod, request: KmsRequest, auth?: CallAuth) {
    const { project_id: project, ...body } = request;
    // A request without a usable project_id still needs a path: the home project's.
    const pathProject =
      typeof project === "string" && PROJECT_ID.test(project) ? project : "rest-home";
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (auth === undefined) headers["x-auth-token"] = await tokens.forRequest(request);
    else if (auth.kind === "x-auth-token") headers["x-auth-token"] = auth.token;
    else if (auth.kind === "bearer") headers.authorization = `Bearer ${auth.token}`;
    const response = await fetch(`${baseUrl}/v1.0/${pathProject}/kms/${REST_OPERATIONS[method]}`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    const answer: RestAnswer = { status: response.status, body: await response.json() };
    return answer;
  }

  return {
    async call(method, request, auth) {
      const answer = await send(method, request, auth);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      return answer.body as KmsReply;
    },
    async fail(method, request, auth) {
      const answer = await send(method, request, auth);
      expect(answer.status, `expected ${method} to fail`).not.toBe(200);
      const body = answer.body as {
        error?: { error_code: string; error_msg: string };
        error_code?: string;
        error_msg?: string;
      };
      const code = body.error?.error_code ?? body.error_code ?? "";
      const message = body.error?.error_msg ?? body.error_msg ?? "";
      if (!isHuaweiErrorCode(code))
        throw new Error(`unknown error code in ${JSON.stringify(body)}`);
      // REST answers the code's HTTP status; it carries no Connect code, so
      // the table's stands in for it.
      expect(answer.status, `HTTP status of ${code}`).toBe(huaweiCodes[code].httpStatus);
      return {
        code: huaweiCodes[code].connectCode,
        reason: code,
        domain: "kmsd",
        message,
        fullMessage: message,
      };
    },
    fullMessage: (_code: Code, message: string) => message,
  };
}
