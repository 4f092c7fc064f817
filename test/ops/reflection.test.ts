import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { create, createFileRegistry, fromBinary, type Registry } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EncryptDataRequestSchema, KmsService } from "../../gen/kms/v1/kms_pb.js";
import { createKey, type RunningKmsd, startKmsd, testToken } from "../support/kmsd.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUF = `${ROOT}node_modules/.bin/buf`;

interface BufResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real `buf curl` (from @bufbuild/buf), as an operator would. */
function bufCurl(args: readonly string[]): Promise<BufResult> {
  return new Promise((resolve) => {
    execFile(BUF, ["curl", ...args], { timeout: 15_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A reflection request as proto-loader takes it (snake_case, one oneof member set). */
type ReflectionRequest = Record<string, unknown>;

interface ReflectionResponse {
  message_response: string;
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  list_services_response?: { service: { name: string }[] };
  all_extension_numbers_response?: { base_type_name: string; extension_number: number[] };
  error_response?: { error_code: number; error_message: string };
}

/**
 * A reflection stream from a plain @grpc/grpc-js client, built from the
 * reflection.proto of the given version: ask() sends one request and
 * resolves with its answer.
 */
function openReflection(port: number, version: "v1" | "v1alpha") {
  const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
    includeDirs: [`${ROOT}third_party`],
    keepCase: true,
    oneofs: true,
    defaults: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: {
      reflection: Record<
        string,
        {
          ServerReflection: new (
            address: string,
            credentials: grpc.ChannelCredentials,
          ) => grpc.Client & {
            ServerReflectionInfo(): grpc.ClientDuplexStream<ReflectionRequest, ReflectionResponse>;
          };
        }
      >;
    };
  };
  const Client = loaded.grpc.reflection[version]?.ServerReflection;
  if (Client === undefined) throw new Error(`no reflection ${version}`);
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.ServerReflectionInfo();
  const pending: ((response: ReflectionResponse) => void)[] = [];
  call.on("data", (response: ReflectionResponse) => pending.shift()?.(response));
  call.on("error", () => {});
  return {
    ask(request: ReflectionRequest): Promise<ReflectionResponse> {
      return new Promise((resolve) => {
        pending.push(resolve);
        call.write(request);
      });
    },
    close() {
      call.end();
      client.close();
    },
  };
}

function files(response: ReflectionResponse): FileDescriptorProto[] {
  expect(response.message_response).toBe("file_descriptor_response");
  return (response.file_descriptor_response?.file_descriptor_proto ?? []).map((bytes) =>
    fromBinary(FileDescriptorProtoSchema, bytes),
  );
}

const SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "kms.v1.KmsService",
];

describe("server reflection", () => {
  let kmsd: RunningKmsd;
  let token: string;
  let keyId: string;

  beforeAll(async () => {
    kmsd = await startKmsd();
    keyId = await createKey(kmsd.config, "prefl", "k");
    token = await testToken(kmsd.config, "prefl");
  });
  afterAll(() => kmsd.stop());

  it("buf curl --list-services and --list-methods work from reflection alone", async () => {
    const services = await bufCurl(["--list-services", kmsd.url]);
    expect(services.stderr).toBe("");
    expect(services.stdout.trim().split("\n")).toEqual(SERVICES);

    const methods = await bufCurl(["--list-methods", kmsd.url]);
    expect(methods.code, methods.stderr).toBe(0);
    const listed = methods.stdout.trim().split("\n");
    for (const method of KmsService.methods) {
      expect(listed).toContain(`kms.v1.KmsService/${method.name}`);
    }
    expect(listed).toContain("grpc.health.v1.Health/Watch");
  });

  it("buf curl calls KmsService over gRPC and Connect with the schema from reflection", async () => {
    const encrypted = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-H",
      `x-auth-token: ${token}`,
      "-d",
      JSON.stringify({ project_id: "prefl", key_id: keyId, plain_text: "reflected" }),
      `${kmsd.url}/kms.v1.KmsService/EncryptData`,
    ]);
    expect(encrypted.code, encrypted.stderr).toBe(0);
    const { cipherText } = JSON.parse(encrypted.stdout) as { cipherText: string };
    expect(cipherText).toMatch(/^[A-Za-z0-9+/]+=*$/);

    const decrypted = await bufCurl([
      "-H",
      `x-auth-token: ${token}`,
      "-d",
      JSON.stringify({ project_id: "prefl", cipher_text: cipherText }),
      `${kmsd.url}/kms.v1.KmsService/DecryptData`,
    ]);
    expect(decrypted.code, decrypted.stderr).toBe(0);
    expect(JSON.parse(decrypted.stdout)).toMatchObject({ keyId, plainText: "reflected" });
  });

  it("reflection needs no credentials, but KmsService still does", async () => {
    const refused = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-d",
      JSON.stringify({ project_id: "prefl", key_id: keyId, plain_text: "x" }),
      `${kmsd.url}/kms.v1.KmsService/EncryptData`,
    ]);
    // buf curl exits with the gRPC code shifted left by 3: Unauthenticated (16) is 128.
    expect(refused.code).toBe(16 << 3);
    expect(refused.stderr).toContain("unauthenticated");
  });

  it.each(["v1", "v1alpha"] as const)(
    "%s: lists the services and serves kms.proto with every file it imports, once per stream",
    async (version) => {
      const reflection = openReflection(kmsd.port, version);
      try {
        const listed = await reflection.ask({ host: "", list_services: "*" });
        expect(
          listed.list_services_response?.service.map((service) => service.name).sort(),
        ).toEqual(SERVICES);

        const first = files(await reflection.ask({ file_containing_symbol: "kms.v1.KmsService" }));
        expect(first[0]?.name).toBe("kms/v1/kms.proto");
        const names = first.map((file) => file.name);
        expect(names).toEqual(
          expect.arrayContaining([
            "kms/v1/kms.proto",
            "kms/v1/rules.proto",
            "buf/validate/validate.proto",
            "google/api/annotations.proto",
            "google/api/http.proto",
            "google/protobuf/descriptor.proto",
          ]),
        );
        expect(new Set(names).size).toBe(names.length);
        // Closed under imports: a client can build every file from this answer alone.
        for (const file of first) {
          for (const dependency of file.dependency) expect(names).toContain(dependency);
        }
        // The files come as gRPC's servers send them (the asked-for file first), not sorted.
        const byFileName = new Map(first.map((file) => [file.name, file]));
        const registry: Registry = createFileRegistry(
          first[0] ?? create(FileDescriptorProtoSchema),
          (name) => byFileName.get(name),
        );
        const service = registry.getService("kms.v1.KmsService");
        expect(service?.methods.map((method) => method.name)).toEqual(
          KmsService.methods.map((method) => method.name),
        );
        expect(registry.getMessage("kms.v1.EncryptDataRequest")?.fields.map((f) => f.name)).toEqual(
          EncryptDataRequestSchema.fields.map((field) => field.name),
        );

        // Asked again on the same stream: the file, but not the imports already sent.
        const again = files(
          await reflection.ask({ file_containing_symbol: "kms.v1.EncryptDataRequest.plain_text" }),
        );
        expect(again.map((file) => file.name)).toEqual(["kms/v1/kms.proto"]);

        const byName = files(
          await reflection.ask({ file_by_filename: "grpc/health/v1/health.proto" }),
        );
        expect(byName.map((file) => file.name)).toEqual(["grpc/health/v1/health.proto"]);

        const method = files(
          await reflection.ask({ file_containing_symbol: "grpc.health.v1.Health.Watch" }),
        );
        expect(method[0]?.name).toBe("grpc/health/v1/health.proto");
      } finally {
        reflection.close();
      }
    },
  );

  it("answers extension questions from the same files", async () => {
    const reflection = openReflection(kmsd.port, "v1");
    try {
      // google.api.http is extension 72295728 of MethodOptions.
      const http = files(
        await reflection.ask({
          file_containing_extension: {
            containing_type: "google.protobuf.MethodOptions",
            extension_number: 72295728,
          },
        }),
      );
      expect(http[0]?.name).toBe("google/api/annotations.proto");
      const numbers = await reflection.ask({
        all_extension_numbers_of_type: "google.protobuf.FieldOptions",
      });
      expect(numbers.all_extension_numbers_response?.base_type_name).toBe(
        "google.protobuf.FieldOptions",
      );
      // buf.validate.field, kms.v1.huawei_error_code, kms.v1.max_total_bytes.
      expect(numbers.all_extension_numbers_response?.extension_number).toEqual(
        expect.arrayContaining([1159, 50701, 50702]),
      );
    } finally {
      reflection.close();
    }
  });

  it("answers an unknown name with NOT_FOUND and keeps the stream open", async () => {
    const reflection = openReflection(kmsd.port, "v1");
    try {
      for (const request of [
        { file_containing_symbol: "kms.v1.Nope" },
        { file_by_filename: "nope.proto" },
        { all_extension_numbers_of_type: "kms.v1.Nope" },
        {
          file_containing_extension: {
            containing_type: "google.protobuf.FieldOptions",
            extension_number: 1,
          },
        },
      ]) {
        const answer = await reflection.ask(request);
        expect(answer.message_response).toBe("error_response");
        expect(answer.error_response?.error_code).toBe(grpc.status.NOT_FOUND);
      }
      const listed = await reflection.ask({ list_services: "" });
      expect(listed.message_response).toBe("list_services_response");
    } finally {
      reflection.close();
    }
  });
});
