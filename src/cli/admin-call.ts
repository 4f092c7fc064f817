import { type DescMethodUnary, fromJson, type JsonObject } from "@bufbuild/protobuf";
import type { KmsdConfig } from "../config/settings.js";
import { type KmsCore, openKmsCore } from "../core/kms-core.js";
import { createLogger } from "../observability/logger.js";
import { huaweiJsonOptions, messageToJson } from "../transport/message-codec.js";

/**
 * Runs `work` against the store the configuration names, then closes it.
 * Admin commands go straight to the store (a running server picks their
 * changes up), so they work whether or not a server runs.
 */
export async function withCore<T>(config: KmsdConfig, work: (core: KmsCore) => Promise<T>) {
  // Warnings go to stderr so stdout stays machine-readable JSON.
  const core = await openKmsCore(config, createLogger(config.logLevel));
  try {
    return await work(core);
  } finally {
    await core.close();
  }
}

/**
 * Calls an RPC with Huawei's JSON fields as the local admin, through the
 * service's interceptor chain (validation and audit included), and returns
 * the response as Huawei's JSON.
 */
export async function callRpc(
  core: KmsCore,
  method: DescMethodUnary,
  request: JsonObject,
): Promise<JsonObject> {
  const response = await core.invokeAsAdmin({
    method,
    message: fromJson(method.input, request, huaweiJsonOptions),
    protocolName: "cli",
    requestMethod: "POST",
    url: `cli:${method.name}`,
    contextValues: core.adminContext(),
  });
  return JSON.parse(messageToJson(method.output, response.message)) as JsonObject;
}
