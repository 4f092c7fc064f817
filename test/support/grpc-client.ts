import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";

/**
 * A plain @grpc/grpc-js client for kms.v1.KmsService, built from the .proto
 * files at run time (as a third-party gRPC user would), not from kmsd's
 * generated code: requests and responses are plain objects with Huawei's
 * snake_case field names.
 */

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

export const SERVICE_NAME = "kms.v1.KmsService";

export const KMS_METHODS = [
  "CreateKey",
  "DescribeKey",
  "ListKeys",
  "EnableKey",
  "DisableKey",
  "ScheduleKeyDeletion",
  "CancelKeyDeletion",
  "EncryptData",
  "DecryptData",
  "EnableKeyRotation",
  "DisableKeyRotation",
  "GetKeyRotationStatus",
  "UpdateKeyRotationInterval",
  "RotateOnDemand",
  "CreateDatakey",
  "CreateDatakeyWithoutPlaintext",
  "EncryptDatakey",
  "DecryptDatakey",
  "GenRandom",
  "ReEncrypt",
  "UpdateKeyAlias",
  "UpdateKeyDescription",
  "BatchEncryptData",
  "BatchDecryptData",
] as const;
export type KmsMethod = (typeof KMS_METHODS)[number];

/** A message as proto-loader presents it: proto field names, every field present. */
export type GrpcMessage = Record<string, unknown>;

/** Loads kms/v1/kms.proto as a gRPC client sees it. */
export function loadKmsPackage(): protoLoader.PackageDefinition {
  return protoLoader.loadSync("kms/v1/kms.proto", {
    includeDirs: [`${repoRoot}proto`, `${repoRoot}third_party`],
    // Huawei's field names (key_id, cipher_text), not camelCase.
    keepCase: true,
    // No 64-bit fields today; strings keep any future one exact.
    longs: String,
    enums: String,
    bytes: String,
    // Unset fields appear with their zero value ("" / [] / {}), as on the wire.
    defaults: true,
    arrays: true,
    objects: true,
    oneofs: true,
  });
}

/** Everything a finished call produced. */
export interface UnaryReply<T = GrpcMessage> {
  readonly response: T;
  /** The response headers (empty when the server sent a trailers-only response). */
  readonly headers: grpc.Metadata;
  readonly trailers: grpc.Metadata;
}

/** A failed call: grpc-js's ServiceError, plus the response headers it does not keep. */
export interface GrpcCallError extends grpc.ServiceError {
  /** Response headers, when the server sent any before its trailers. */
  responseHeaders?: grpc.Metadata;
}

export interface KmsGrpcClient {
  readonly client: grpc.Client;
  /** Calls a KmsService method; rejects with a GrpcCallError. */
  call(
    method: KmsMethod,
    request: GrpcMessage,
    metadata?: grpc.Metadata,
    options?: grpc.CallOptions,
  ): Promise<GrpcMessage>;
  /** Like call(), but also gives the response headers and trailers. */
  callWithMetadata(
    method: KmsMethod,
    request: GrpcMessage,
    metadata?: grpc.Metadata,
    options?: grpc.CallOptions,
  ): Promise<UnaryReply>;
  /** Sends raw bytes to any path (e.g. a method the service does not have). */
  callRaw(
    path: string,
    body: Buffer,
    metadata?: grpc.Metadata,
    options?: grpc.CallOptions,
  ): Promise<UnaryReply<Buffer>>;
  close(): void;
}

type MethodDefinition = protoLoader.MethodDefinition<GrpcMessage, GrpcMessage>;

function methodDefinition(pkg: protoLoader.PackageDefinition, method: KmsMethod): MethodDefinition {
  const service = pkg[SERVICE_NAME] as protoLoader.ServiceDefinition | undefined;
  const definition = service?.[method];
  if (definition === undefined) throw new Error(`${SERVICE_NAME} has no method ${method}`);
  return definition as MethodDefinition;
}

/** A client for kmsd at 127.0.0.1:<port>: insecure (h2c) unless given TLS credentials. */
export function createKmsGrpcClient(
  port: number,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): KmsGrpcClient {
  const pkg = loadKmsPackage();
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials);

  function unary<Req, Res>(
    path: string,
    serialize: (value: Req) => Buffer,
    deserialize: (bytes: Buffer) => Res,
    request: Req,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
  ): Promise<UnaryReply<Res>> {
    return new Promise((resolve, reject) => {
      let headers: grpc.Metadata | undefined;
      let outcome: { error: grpc.ServiceError } | { response: Res } | undefined;
      const call = client.makeUnaryRequest(
        path,
        serialize,
        deserialize,
        request,
        metadata,
        options,
        (error, response) => {
          outcome = error ? { error } : { response: response as Res };
        },
      );
      call.on("metadata", (received: grpc.Metadata) => {
        headers = received;
      });
      // grpc-js emits 'status' right after calling back: by then both are known.
      call.on("status", (status: grpc.StatusObject) => {
        if (outcome === undefined) {
          reject(new Error(`no outcome for ${path} (status ${status.code})`));
        } else if ("error" in outcome) {
          const error: GrpcCallError = outcome.error;
          if (headers !== undefined) error.responseHeaders = headers;
          reject(error);
        } else {
          resolve({
            response: outcome.response,
            headers: headers ?? new grpc.Metadata(),
            trailers: status.metadata,
          });
        }
      });
    });
  }

  const api: KmsGrpcClient = {
    client,
    async call(method, request, metadata, options) {
      return (await api.callWithMetadata(method, request, metadata, options)).response;
    },
    callWithMetadata(method, request, metadata = new grpc.Metadata(), options = {}) {
      const definition = methodDefinition(pkg, method);
      return unary(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        metadata,
        options,
      );
    },
    callRaw(path, body, metadata = new grpc.Metadata(), options = {}) {
      const identity = (bytes: Buffer) => bytes;
      return unary(path, identity, identity, body, metadata, options);
    },
    close() {
      client.close();
    },
  };
  return api;
}

/** What kmsd's error carries, read from grpc-status-details-bin. */
export interface DecodedStatus {
  /** google.rpc.Status.code: the gRPC status code. */
  readonly code: number;
  /** google.rpc.Status.message: the message, never percent-encoded. */
  readonly message: string;
  /** The google.rpc.ErrorInfo detail's reason (the Huawei code); undefined when absent. */
  readonly reason: string | undefined;
  /** The google.rpc.ErrorInfo detail's domain; undefined when absent. */
  readonly domain: string | undefined;
}

/**
 * Decodes a gRPC error's `grpc-status-details-bin` trailer (a
 * google.rpc.Status) and its google.rpc.ErrorInfo detail. Undefined when the
 * error has no such trailer.
 */
export function decodeStatusDetails(error: grpc.ServiceError): DecodedStatus | undefined {
  const [raw] = error.metadata.get("grpc-status-details-bin");
  if (raw === undefined) return undefined;
  const bytes = typeof raw === "string" ? Buffer.from(raw, "base64") : raw;
  const status = fromBinary(StatusSchema, bytes);
  let info: ReturnType<typeof anyUnpack<typeof ErrorInfoSchema>>;
  for (const detail of status.details) {
    info = anyUnpack(detail, ErrorInfoSchema);
    if (info !== undefined) break;
  }
  return {
    code: status.code,
    message: status.message,
    reason: info?.reason,
    domain: info?.domain,
  };
}

/** True when the value is an error grpc-js raised for a call. */
export function isGrpcCallError(value: unknown): value is GrpcCallError {
  return (
    value instanceof Error &&
    typeof (value as Partial<grpc.ServiceError>).code === "number" &&
    (value as Partial<grpc.ServiceError>).metadata instanceof grpc.Metadata
  );
}

export { grpc };
