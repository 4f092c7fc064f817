/**
 * The baseline every kmsd figure is compared with: a minimal @grpc/grpc-js
 * server serving kms.v1.KmsService's EncryptData and DecryptData from
 * proto/, doing the same AES-256-GCM work (a random IV per message) under
 * one fixed key, with no authentication, validation, audit, key store or
 * per-message key derivation.
 *
 *   tsx bench/baseline-server.ts <port>
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const definition = protoLoader.loadSync(path.join(root, "proto/kms/v1/kms.proto"), {
  keepCase: true,
  includeDirs: [path.join(root, "proto"), path.join(root, "third_party")],
});
const kms = grpc.loadPackageDefinition(definition).kms as grpc.GrpcObject;
const service = (kms.v1 as grpc.GrpcObject).KmsService as grpc.ServiceClientConstructor;

const key = randomBytes(32);

type Unary<I, O> = grpc.handleUnaryCall<I, O>;

const encryptData: Unary<{ key_id: string; plain_text: string }, object> = (call, callback) => {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const body = Buffer.concat([cipher.update(call.request.plain_text, "utf8"), cipher.final()]);
  callback(null, {
    key_id: call.request.key_id,
    cipher_text: Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64"),
  });
};

const decryptData: Unary<{ cipher_text: string }, object> = (call, callback) => {
  const bytes = Buffer.from(call.request.cipher_text, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, 12));
  decipher.setAuthTag(bytes.subarray(bytes.length - 16));
  const plain = Buffer.concat([
    decipher.update(bytes.subarray(12, bytes.length - 16)),
    decipher.final(),
  ]);
  callback(null, {
    plain_text: plain.toString("utf8"),
    plain_text_base64: plain.toString("base64"),
  });
};

const server = new grpc.Server();
server.addService(service.service, {
  encryptData,
  decryptData,
  EncryptData: encryptData,
  DecryptData: decryptData,
});
server.bindAsync(
  `127.0.0.1:${process.argv[2] ?? "0"}`,
  grpc.ServerCredentials.createInsecure(),
  (error, port) => {
    if (error) throw error;
    console.log(`baseline listening on ${port}`);
  },
);
