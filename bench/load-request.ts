/**
 * What a benchmark sends kmsd: EncryptData or DecryptData in each
 * protocol's form, with a token and a key made in the data directory of
 * the build that serves it.
 */
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { DecryptDataRequestSchema, EncryptDataRequestSchema } from "../gen/kms/v1/kms_pb.js";
import type { Target } from "./load.js";
import {
  connectTarget,
  createKey,
  encryptOnce,
  grpcTarget,
  PROJECT,
  projectToken,
  restTarget,
} from "./targets.js";

/** ";"-separated lists of space-separated words: "a b; c" is [[a, b], [c]]. */
export function wordLists(text: string | undefined): string[][] {
  return (text ?? "").split(";").map((list) => list.split(" ").filter(Boolean));
}

/** The request a server is loaded with, and the token that authenticates it. */
export interface Load {
  readonly request: LoadRequest;
  readonly token: string;
}

/** What every round sends, in each protocol's form. */
export interface LoadRequest {
  readonly method: "EncryptData" | "DecryptData";
  /** The REST path's last segment. */
  readonly restOperation: string;
  /** Connect's body. */
  readonly json: object;
  /** REST's body: Huawei's, whose project is in the path. */
  readonly restJson: object;
  /** gRPC's message. */
  readonly binary: Uint8Array;
}

/**
 * A token for the bench project in `dataDir`, made by the build `root`'s own
 * CLI (another build's could migrate the file under the server), a key made
 * through `port`, and the request to load.
 */
export async function loadFor(
  operation: string,
  root: string,
  dataDir: string,
  rootKey: string,
  port: number,
  plainText: string,
): Promise<Load> {
  const token = await projectToken(dataDir, rootKey, [], path.resolve(root));
  const keyId = await createKey(port, token);
  const request =
    operation === "decrypt"
      ? decryptRequest(await encryptOnce(port, token, keyId, plainText))
      : encryptRequest(keyId, plainText);
  return { request, token };
}

/** How a request reaches kmsd: its protocol, and the HTTP version it goes over. */
export type Scenario = "grpc" | "connect-h2" | "connect-h1" | "rest";
export const SCENARIOS: readonly Scenario[] = ["grpc", "connect-h2", "connect-h1", "rest"];

/** Loaded with h2load over HTTP/2 or wrk over HTTP/1.1. */
export function httpVersionOf(scenario: Scenario): "h2" | "h1" {
  return scenario === "grpc" || scenario === "connect-h2" ? "h2" : "h1";
}

/** The load target that sends `request` to kmsd on `port` in `scenario`'s form. */
export function loadTarget(
  scenario: Scenario,
  port: number,
  request: LoadRequest,
  token: string,
): Target {
  switch (scenario) {
    case "grpc":
      return grpcTarget(port, request.method, request.binary, { "x-auth-token": token });
    case "connect-h2":
    case "connect-h1":
      return connectTarget(port, request.method, request.json, token);
    case "rest":
      return restTarget(port, request.restOperation, request.restJson, token);
  }
}

export function encryptRequest(keyId: string, plainText: string): LoadRequest {
  return {
    method: "EncryptData",
    restOperation: "encrypt-data",
    json: { project_id: PROJECT, key_id: keyId, plain_text: plainText },
    restJson: { key_id: keyId, plain_text: plainText },
    binary: toBinary(
      EncryptDataRequestSchema,
      create(EncryptDataRequestSchema, { projectId: PROJECT, keyId, plainText }),
    ),
  };
}

export function decryptRequest(cipherText: string): LoadRequest {
  return {
    method: "DecryptData",
    restOperation: "decrypt-data",
    json: { project_id: PROJECT, cipher_text: cipherText },
    restJson: { cipher_text: cipherText },
    binary: toBinary(
      DecryptDataRequestSchema,
      create(DecryptDataRequestSchema, { projectId: PROJECT, cipherText }),
    ),
  };
}
