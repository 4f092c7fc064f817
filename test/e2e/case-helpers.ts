/** Small helpers the symmetric-API case tables share. */
import { expect } from "vitest";
import type { KmsMethod } from "../support/grpc-client.js";
import type { ExpectedError, Kit, KmsReply, KmsRequest, PresentedError } from "./grpc-cases.js";
import { expectError } from "./grpc-cases.js";

/** The key version a cipher_text names (bytes 18..22 of the format), base64 or hex. */
export function versionOf(cipherText: string, encoding: "base64" | "hex" = "base64"): number {
  return Buffer.from(cipherText, encoding).readUInt32BE(18);
}

/** Calls the method expecting it to fail as `expected` says; returns the error. */
export async function expectFailure(
  kit: Kit,
  method: KmsMethod,
  request: KmsRequest,
  expected: ExpectedError,
): Promise<PresentedError> {
  const error = await kit.driver.fail(method, request);
  expectError(kit.driver, error, expected);
  return error;
}

/** A reply's field, whatever its type. */
export function field(reply: KmsReply, name: string): unknown {
  expect(reply, `reply has ${name}`).toHaveProperty(name);
  return reply[name];
}
