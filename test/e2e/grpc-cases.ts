/**
 * The RPC and error coverage shared by the gRPC (grpc.test.ts, real
 * @grpc/grpc-js client) and Connect (connect.test.ts, every connect-es
 * transport) suites. A suite supplies a driver that speaks its protocol;
 * requests and responses travel through it as plain objects with Huawei's
 * snake_case field names, so every case reads the same in both files.
 */
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { KmsMethod } from "../support/grpc-client.js";
import { type RunningKmsd, testToken } from "../support/kmsd.js";

/** A request as Huawei writes it: proto field names; strings, numbers, maps or batch items. */
export type KmsRequest = {
  [field: string]: string | number | { [key: string]: string } | KmsRequest[];
};
/** A response as Huawei writes it: proto field names, every field present. */
export type KmsReply = { [field: string]: unknown };

/** An error as the client library under test presents it. */
export interface PresentedError {
  /** The gRPC / Connect status code (the two share their numbers). */
  readonly code: number;
  /** google.rpc.ErrorInfo.reason: the Huawei code. */
  readonly reason: string | undefined;
  readonly domain: string | undefined;
  /**
   * The human-readable message as the library hands it to its user
   * (grpc-js: error.details; connect-es: ConnectError.rawMessage).
   */
  readonly message: string;
  /** The library's whole error message (code and message). */
  readonly fullMessage: string;
  /** The message carried inside google.rpc.Status, when the protocol has one. */
  readonly statusMessage?: string;
}

/**
 * How a call authenticates. By default (undefined) it sends an admin token
 * of the request's project as X-Auth-Token.
 */
export type CallAuth =
  | { readonly kind: "x-auth-token" | "bearer"; readonly token: string }
  | { readonly kind: "none" };

export interface KmsDriver {
  /** Calls the method; resolves to the response. */
  call(method: KmsMethod, request: KmsRequest, auth?: CallAuth): Promise<KmsReply>;
  /** Calls the method expecting it to fail; resolves to the error. */
  fail(method: KmsMethod, request: KmsRequest, auth?: CallAuth): Promise<PresentedError>;
  /** The library's whole error message for a code and a message. */
  fullMessage(code: Code, message: string): string;
}

export interface ExpectedError {
  readonly code: Code;
  readonly reason: string;
  readonly message: string | RegExp;
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A well-formed key id no key has. */
export const UNKNOWN_KEY_ID = "0d0466b0-e727-4d9c-b35d-f84bb474a37f";
/** A valid 36-character sequence. */
export const SEQUENCE = "919c82d4-8046-4722-9094-35c3c6524cff";
export const DAY_MS = 24 * 60 * 60 * 1000;

/** Checks an error: code, ErrorInfo, then (last, so the others are checked first) the message. */
export function expectError(driver: KmsDriver, error: PresentedError, expected: ExpectedError) {
  expect(Code[error.code], `code of ${JSON.stringify(error)}`).toBe(Code[expected.code]);
  expect(error.reason, "ErrorInfo.reason").toBe(expected.reason);
  expect(error.domain, "ErrorInfo.domain").toBe("kmsd");
  if (typeof expected.message === "string") {
    if (error.statusMessage !== undefined) {
      expect(error.statusMessage, "google.rpc.Status.message").toBe(expected.message);
    }
    expect(error.message, "message as the client presents it").toBe(expected.message);
    expect(error.fullMessage, "whole error message").toBe(
      driver.fullMessage(expected.code, expected.message),
    );
  } else {
    expect(error.message, "message as the client presents it").toMatch(expected.message);
  }
}

/** Reads a string field (dotted path) of a response. */
export function str(reply: unknown, path: string): string {
  let value: unknown = reply;
  for (const part of path.split(".")) {
    value = typeof value === "object" && value !== null ? Reflect.get(value, part) : undefined;
  }
  if (typeof value !== "string") {
    throw new Error(`${path} is not a string in ${JSON.stringify(reply)}`);
  }
  return value;
}

const PROJECT_ID = /^[0-9a-zA-Z_-]{1,64}$/;

/**
 * Admin tokens (X-Auth-Token) for the projects a suite uses, issued straight
 * into the store of the running kmsd (as `kmsd tokens create` does): every
 * token is bound to one project, and the suites use a project per test.
 */
export class ProjectTokens {
  private constructor(
    private readonly kmsd: RunningKmsd,
    /** The project whose token goes with requests that name no valid project. */
    private readonly home: string,
  ) {}

  static async open(kmsd: RunningKmsd, home: string): Promise<ProjectTokens> {
    return new ProjectTokens(kmsd, home);
  }

  /** An admin token of the project, issued on first use. */
  for(project: string): Promise<string> {
    return testToken(this.kmsd.config, project);
  }

  /** A token of the project with the least role (may use keys, not manage them). */
  userFor(project: string): Promise<string> {
    return testToken(this.kmsd.config, project, "user");
  }

  /**
   * The token a request is sent with: its project's, or the home project's
   * when project_id is missing or malformed (no token can name such a project).
   */
  forRequest(request: KmsRequest): Promise<string> {
    const project = request.project_id;
    return this.for(typeof project === "string" && PROJECT_ID.test(project) ? project : this.home);
  }

  async close(): Promise<void> {}
}

/** Everything a case needs besides the driver. */
export class Kit {
  #next = 0;

  constructor(
    readonly driver: KmsDriver,
    readonly tokens: ProjectTokens,
    /** Prefix of this suite's project ids, unique per file and transport. */
    readonly prefix: string,
  ) {}

  /** A project id no other test of this suite uses. */
  project(): string {
    this.#next += 1;
    return `${this.prefix}-${this.#next}`;
  }

  async createKey(project: string, alias = `alias-${this.#next}-${Math.random()}`) {
    const reply = await this.driver.call("CreateKey", {
      project_id: project,
      key_alias: alias.replace(/[^a-zA-Z0-9:/_-]/g, "_"),
    });
    return str(reply, "key_info.key_id");
  }

  async encrypt(
    project: string,
    keyId: string,
    plainText: string,
    context?: Record<string, string>,
  ) {
    const reply = await this.driver.call("EncryptData", {
      project_id: project,
      key_id: keyId,
      plain_text: plainText,
      ...(context === undefined ? {} : { encryption_context: context }),
    });
    return str(reply, "cipher_text");
  }

  /** A project with one enabled key and a ciphertext of it. */
  async keyWithCipher(context?: Record<string, string>) {
    const project = this.project();
    const keyId = await this.createKey(project);
    const cipherText = await this.encrypt(project, keyId, "12345678", context);
    return { project, keyId, cipherText };
  }
}

interface ErrorCase {
  readonly name: string;
  readonly arrange: (kit: Kit) => Promise<{
    method: KmsMethod;
    request: KmsRequest;
    expected: ExpectedError;
  }>;
}

const KEY_ID_PATTERN = "^[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$";

/** A valid request of each method, for the project and key given. */
function validRequest(method: KmsMethod, project: string, keyId: string): KmsRequest {
  switch (method) {
    case "CreateKey":
      return { project_id: project, key_alias: "valid-alias" };
    case "ListKeys":
      return { project_id: project };
    case "ScheduleKeyDeletion":
      return { project_id: project, key_id: keyId, pending_days: "7" };
    case "EncryptData":
      return { project_id: project, key_id: keyId, plain_text: "12345678" };
    case "DecryptData":
      // Valid-looking base64 of the right length: validation runs first.
      return { project_id: project, cipher_text: "A".repeat(92) };
    default:
      return { project_id: project, key_id: keyId };
  }
}

const ALL_METHODS: readonly KmsMethod[] = [
  "CreateKey",
  "DescribeKey",
  "ListKeys",
  "EnableKey",
  "DisableKey",
  "ScheduleKeyDeletion",
  "CancelKeyDeletion",
  "EncryptData",
  "DecryptData",
];
const KEY_ID_METHODS: readonly KmsMethod[] = [
  "DescribeKey",
  "EnableKey",
  "DisableKey",
  "ScheduleKeyDeletion",
  "CancelKeyDeletion",
  "EncryptData",
];

function without(request: KmsRequest, field: string): KmsRequest {
  const copy = { ...request };
  delete copy[field];
  return copy;
}

/** Field rules every method shares: project_id, key_id, sequence. */
function commonFieldCases(): ErrorCase[] {
  const cases: ErrorCase[] = [];
  for (const method of ALL_METHODS) {
    cases.push(
      {
        name: `${method}: missing project_id is KMS.0204`,
        arrange: async (kit) => ({
          method,
          request: without(validRequest(method, kit.project(), UNKNOWN_KEY_ID), "project_id"),
          expected: {
            code: Code.InvalidArgument,
            reason: "KMS.0204",
            message: "project_id is required",
          },
        }),
      },
      {
        // Validation runs after authentication but before authorization, so
        // an authenticated caller hears what is wrong with the project id.
        name: `${method}: malformed project_id is KMS.0201`,
        arrange: async () => ({
          method,
          request: validRequest(method, "not a project/id", UNKNOWN_KEY_ID),
          expected: invalid(
            "KMS.0201",
            "project_id: does not match regex pattern `^[0-9a-zA-Z_-]{1,64}$`",
          ),
        }),
      },
      {
        name: `${method}: sequence of the wrong length is KMS.0206`,
        arrange: async (kit) => ({
          method,
          request: {
            ...validRequest(method, kit.project(), UNKNOWN_KEY_ID),
            sequence: "12345",
          },
          expected: {
            code: Code.InvalidArgument,
            reason: "KMS.0206",
            message: "sequence: must be 36 characters",
          },
        }),
      },
    );
  }
  for (const method of KEY_ID_METHODS) {
    cases.push(
      {
        name: `${method}: missing key_id is KMS.0204`,
        arrange: async (kit) => ({
          method,
          request: without(validRequest(method, kit.project(), UNKNOWN_KEY_ID), "key_id"),
          expected: {
            code: Code.InvalidArgument,
            reason: "KMS.0204",
            message: "key_id is required",
          },
        }),
      },
      {
        name: `${method}: malformed key_id is KMS.0205`,
        arrange: async (kit) => ({
          method,
          request: validRequest(method, kit.project(), "0D0466B0-E727-4D9C-B35D-F84BB474A37F"),
          expected: {
            code: Code.InvalidArgument,
            reason: "KMS.0205",
            message: `key_id: does not match regex pattern \`${KEY_ID_PATTERN}\``,
          },
        }),
      },
      {
        name: `${method}: unknown key is KMS.0207 (NotFound)`,
        arrange: async (kit) => ({
          method,
          request: validRequest(method, kit.project(), UNKNOWN_KEY_ID),
          expected: {
            code: Code.NotFound,
            reason: "KMS.0207",
            message: `key ${UNKNOWN_KEY_ID} does not exist`,
          },
        }),
      },
      {
        name: `${method}: another project's key is KMS.0207 (NotFound)`,
        arrange: async (kit) => {
          const keyId = await kit.createKey(kit.project());
          return {
            method,
            request: validRequest(method, kit.project(), keyId),
            expected: {
              code: Code.NotFound,
              reason: "KMS.0207",
              message: `key ${keyId} does not exist`,
            },
          };
        },
      },
    );
  }
  return cases;
}

function invalid(reason: string, message: string | RegExp): ExpectedError {
  return { code: Code.InvalidArgument, reason, message };
}

const specificCases: ErrorCase[] = [
  // KMS.0204: each method's own required fields.
  {
    name: "CreateKey: missing key_alias is KMS.0204",
    arrange: async (kit) => ({
      method: "CreateKey",
      request: { project_id: kit.project() },
      expected: invalid("KMS.0204", "key_alias is required"),
    }),
  },
  {
    name: "ScheduleKeyDeletion: missing pending_days is KMS.0204",
    arrange: async (kit) => ({
      method: "ScheduleKeyDeletion",
      request: { project_id: kit.project(), key_id: UNKNOWN_KEY_ID },
      expected: invalid("KMS.0204", "pending_days is required"),
    }),
  },
  {
    name: "EncryptData: missing (empty) plain_text is KMS.0204",
    arrange: async (kit) => ({
      method: "EncryptData",
      request: { project_id: kit.project(), key_id: UNKNOWN_KEY_ID, plain_text: "" },
      expected: invalid("KMS.0204", "plain_text is required"),
    }),
  },
  {
    name: "DecryptData: missing cipher_text is KMS.0204",
    arrange: async (kit) => ({
      method: "DecryptData",
      request: { project_id: kit.project() },
      expected: invalid("KMS.0204", "cipher_text is required"),
    }),
  },
  {
    name: "DecryptData: malformed key_id is KMS.0205",
    arrange: async (kit) => ({
      method: "DecryptData",
      request: { project_id: kit.project(), cipher_text: "A".repeat(92), key_id: "key-1" },
      expected: invalid("KMS.0205", `key_id: does not match regex pattern \`${KEY_ID_PATTERN}\``),
    }),
  },

  // KMS.0208: encryption_context.
  {
    name: "EncryptData: encryption_context over 8192 bytes is KMS.0208",
    arrange: async (kit) => ({
      method: "EncryptData",
      request: {
        project_id: kit.project(),
        key_id: UNKNOWN_KEY_ID,
        plain_text: "x",
        encryption_context: { k: "v".repeat(8192) },
      },
      expected: invalid(
        "KMS.0208",
        "encryption_context must take at most 8192 bytes (keys and values, UTF-8)",
      ),
    }),
  },
  {
    name: "EncryptData: encryption_context is measured in UTF-8 bytes (KMS.0208)",
    arrange: async (kit) => ({
      method: "EncryptData",
      request: {
        project_id: kit.project(),
        key_id: UNKNOWN_KEY_ID,
        plain_text: "x",
        // 4096 characters but 1 + 8192 bytes.
        encryption_context: { k: "é".repeat(4096) },
      },
      expected: invalid(
        "KMS.0208",
        "encryption_context must take at most 8192 bytes (keys and values, UTF-8)",
      ),
    }),
  },
  {
    name: "DecryptData: encryption_context over 8192 bytes is KMS.0208",
    arrange: async (kit) => ({
      method: "DecryptData",
      request: {
        project_id: kit.project(),
        cipher_text: "A".repeat(92),
        encryption_context: { a: "v".repeat(4000), b: "w".repeat(4191) },
      },
      expected: invalid(
        "KMS.0208",
        "encryption_context must take at most 8192 bytes (keys and values, UTF-8)",
      ),
    }),
  },
  {
    name: "EncryptData: an empty encryption_context key is KMS.0208",
    arrange: async (kit) => ({
      method: "EncryptData",
      request: {
        project_id: kit.project(),
        key_id: UNKNOWN_KEY_ID,
        plain_text: "x",
        encryption_context: { "": "v" },
      },
      expected: invalid("KMS.0208", "encryption_context key: must be at least 1 characters"),
    }),
  },

  // KMS.0209 / KMS.0210: the key's state forbids using it.
  {
    name: "EncryptData: disabled key is KMS.0209 (FailedPrecondition)",
    arrange: async (kit) => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      await kit.driver.call("DisableKey", { project_id: project, key_id: keyId });
      return {
        method: "EncryptData",
        request: { project_id: project, key_id: keyId, plain_text: "12345678" },
        expected: {
          code: Code.FailedPrecondition,
          reason: "KMS.0209",
          message: `key ${keyId} is disabled`,
        },
      };
    },
  },
  {
    name: "DecryptData: disabled key is KMS.0209 (FailedPrecondition)",
    arrange: async (kit) => {
      const { project, keyId, cipherText } = await kit.keyWithCipher();
      await kit.driver.call("DisableKey", { project_id: project, key_id: keyId });
      return {
        method: "DecryptData",
        request: { project_id: project, cipher_text: cipherText },
        expected: {
          code: Code.FailedPrecondition,
          reason: "KMS.0209",
          message: `key ${keyId} is disabled`,
        },
      };
    },
  },
  {
    name: "EncryptData: key pending deletion is KMS.0210 (FailedPrecondition)",
    arrange: async (kit) => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      await kit.driver.call("ScheduleKeyDeletion", {
        project_id: project,
        key_id: keyId,
        pending_days: "7",
      });
      return {
        method: "EncryptData",
        request: { project_id: project, key_id: keyId, plain_text: "12345678" },
        expected: {
          code: Code.FailedPrecondition,
          reason: "KMS.0210",
          message: `key ${keyId} is pending deletion and cannot be used`,
        },
      };
    },
  },
  {
    name: "DecryptData: key pending deletion is KMS.0210 (FailedPrecondition)",
    arrange: async (kit) => {
      const { project, keyId, cipherText } = await kit.keyWithCipher({ purpose: "test" });
      await kit.driver.call("ScheduleKeyDeletion", {
        project_id: project,
        key_id: keyId,
        pending_days: "30",
      });
      return {
        method: "DecryptData",
        request: {
          project_id: project,
          cipher_text: cipherText,
          encryption_context: { purpose: "test" },
        },
        expected: {
          code: Code.FailedPrecondition,
          reason: "KMS.0210",
          message: `key ${keyId} is pending deletion and cannot be used`,
        },
      };
    },
  },
  {
    name: "EnableKey: key pending deletion is KMS.0210",
    arrange: async (kit) => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      await kit.driver.call("ScheduleKeyDeletion", {
        project_id: project,
        key_id: keyId,
        pending_days: "7",
      });
      return {
        method: "EnableKey",
        request: { project_id: project, key_id: keyId },
        expected: {
          code: Code.FailedPrecondition,
          reason: "KMS.0210",
          message: `key ${keyId} is pending deletion: cancel the deletion first`,
        },
      };
    },
  },
  {
    name: "DisableKey: key pending deletion is KMS.0210",
    arrange: async (kit) => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      await kit.driver.call("ScheduleKeyDeletion", {
        project_id: project,
        key_id: keyId,
        pending_days: "7",
      });
      return {
        method: "DisableKey",
        request: { project_id: project, key_id: keyId },
        expected: {
          code: Code.FailedPrecondition,
          reason: "KMS.0210",
          message: `key ${keyId} is pending deletion: cancel the deletion first`,
        },
      };
    },
  },
  {
    name: "ScheduleKeyDeletion: key already pending deletion is KMS.0210",
    arrange: async (kit) => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      await kit.driver.call("ScheduleKeyDeletion", {
        project_id: project,
        key_id: keyId,
        pending_days: "7",
      });
      return {
        method: "ScheduleKeyDeletion",
        request: { project_id: project, key_id: keyId, pending_days: "8" },
        expected: {
          code: Code.FailedPrecondition,
          reason: "KMS.0210",
          message: `key ${keyId} is already pending deletion`,
        },
      };
    },
  },
  {
    name: "CancelKeyDeletion: key not pending deletion is KMS.0308 (FailedPrecondition)",
    arrange: async (kit) => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      return {
        method: "CancelKeyDeletion",
        request: { project_id: project, key_id: keyId },
        expected: {
          code: Code.FailedPrecondition,
          reason: "KMS.0308",
          message: `key ${keyId} is not pending deletion`,
        },
      };
    },
  },

  // KMS.2101: plain_text.
  {
    name: "EncryptData: plain_text of 4097 bytes is KMS.2101",
    arrange: async (kit) => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      return {
        method: "EncryptData",
        request: { project_id: project, key_id: keyId, plain_text: "x".repeat(4097) },
        expected: invalid("KMS.2101", "plain_text: must be at most 4096 bytes"),
      };
    },
  },
  {
    name: "EncryptData: plain_text is measured in UTF-8 bytes (2049 x 'é' is KMS.2101)",
    arrange: async (kit) => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      return {
        method: "EncryptData",
        request: { project_id: project, key_id: keyId, plain_text: "é".repeat(2049) },
        expected: invalid("KMS.2101", "plain_text: must be at most 4096 bytes"),
      };
    },
  },

  // KMS.2201: cipher_text.
  {
    name: "DecryptData: tampered cipher_text is KMS.2201",
    arrange: async (kit) => {
      const { project, cipherText } = await kit.keyWithCipher();
      const bytes = Buffer.from(cipherText, "base64");
      // A byte of the encrypted body (the header is 50 bytes).
      bytes[52] = (bytes[52] ?? 0) ^ 0x01;
      return {
        method: "DecryptData",
        request: { project_id: project, cipher_text: bytes.toString("base64") },
        expected: invalid("KMS.2201", "cipher_text is corrupted: it failed authentication"),
      };
    },
  },
  {
    name: "DecryptData: tampered cipher_text bound to a context is KMS.2201",
    arrange: async (kit) => {
      const { project, cipherText } = await kit.keyWithCipher({ a: "1" });
      const bytes = Buffer.from(cipherText, "base64");
      bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x80;
      return {
        method: "DecryptData",
        request: {
          project_id: project,
          cipher_text: bytes.toString("base64"),
          encryption_context: { a: "1" },
        },
        expected: invalid(
          "KMS.2201",
          "cipher_text is corrupted, or the encryption_context or additional_authenticated_data differ from the ones it was encrypted with",
        ),
      };
    },
  },
  {
    name: "DecryptData: truncated cipher_text is KMS.2201",
    arrange: async (kit) => {
      const { project, cipherText } = await kit.keyWithCipher();
      return {
        method: "DecryptData",
        // Three bytes fewer, still valid base64 and at least 92 characters.
        request: { project_id: project, cipher_text: cipherText.slice(0, -4) },
        expected: invalid("KMS.2201", "cipher_text is corrupted: it failed authentication"),
      };
    },
  },
  {
    name: "DecryptData: cipher_text shorter than 92 characters is KMS.2201",
    arrange: async (kit) => {
      const { project, cipherText } = await kit.keyWithCipher();
      return {
        method: "DecryptData",
        request: { project_id: project, cipher_text: cipherText.slice(0, 88) },
        expected: invalid("KMS.2201", "cipher_text: must be at least 92 characters"),
      };
    },
  },
  {
    name: "DecryptData: cipher_text that is not base64 is KMS.2201",
    arrange: async (kit) => ({
      method: "DecryptData",
      request: { project_id: kit.project(), cipher_text: "!".repeat(92) },
      expected: invalid(
        "KMS.2201",
        "cipher_text: does not match regex pattern `^[0-9a-zA-Z+/=]+$`",
      ),
    }),
  },
  {
    name: "DecryptData: cipher_text over 5648 characters is KMS.2201",
    arrange: async (kit) => ({
      method: "DecryptData",
      request: { project_id: kit.project(), cipher_text: "A".repeat(5652) },
      expected: invalid("KMS.2201", "cipher_text: must be at most 5648 characters"),
    }),
  },
  {
    name: "DecryptData: cipher_text of an unknown format version is KMS.2201",
    arrange: async (kit) => {
      const { project, cipherText } = await kit.keyWithCipher();
      const bytes = Buffer.from(cipherText, "base64");
      bytes[0] = 2;
      return {
        method: "DecryptData",
        request: { project_id: project, cipher_text: bytes.toString("base64") },
        expected: invalid(
          "KMS.2201",
          "cipher_text has unknown format version 2; this kmsd reads version 1",
        ),
      };
    },
  },
  {
    name: "DecryptData: wrong encryption_context is KMS.2201",
    arrange: async (kit) => {
      const { project, cipherText } = await kit.keyWithCipher({ a: "1", b: "2" });
      return {
        method: "DecryptData",
        request: {
          project_id: project,
          cipher_text: cipherText,
          encryption_context: { a: "1", b: "3" },
        },
        expected: invalid(
          "KMS.2201",
          "cipher_text is corrupted, or the encryption_context or additional_authenticated_data differ from the ones it was encrypted with",
        ),
      };
    },
  },
  {
    name: "DecryptData: missing encryption_context is KMS.2201",
    arrange: async (kit) => {
      const { project, cipherText } = await kit.keyWithCipher({ a: "1" });
      return {
        method: "DecryptData",
        request: { project_id: project, cipher_text: cipherText },
        expected: invalid(
          "KMS.2201",
          "cipher_text was encrypted with an encryption_context: decrypt it with the same encryption_context",
        ),
      };
    },
  },
  {
    name: "DecryptData: unexpected encryption_context is KMS.2201",
    arrange: async (kit) => {
      const { project, cipherText } = await kit.keyWithCipher();
      return {
        method: "DecryptData",
        request: { project_id: project, cipher_text: cipherText, encryption_context: { a: "1" } },
        expected: invalid(
          "KMS.2201",
          "cipher_text was encrypted without an encryption_context: decrypt it without one",
        ),
      };
    },
  },
  {
    name: "DecryptData: key_id other than the cipher_text's key is KMS.2201",
    arrange: async (kit) => {
      const { project, cipherText } = await kit.keyWithCipher();
      const other = await kit.createKey(project);
      return {
        method: "DecryptData",
        request: { project_id: project, cipher_text: cipherText, key_id: other },
        expected: invalid("KMS.2201", `cipher_text was not encrypted under key ${other}`),
      };
    },
  },
  {
    name: "DecryptData: another project's cipher_text is KMS.2201",
    arrange: async (kit) => {
      const { cipherText } = await kit.keyWithCipher();
      return {
        method: "DecryptData",
        request: { project_id: kit.project(), cipher_text: cipherText },
        expected: invalid(
          "KMS.2201",
          "cipher_text names a key that does not exist in this project",
        ),
      };
    },
  },

  // KMS.0308 on CreateKey.
  {
    name: "CreateKey: alias already used is KMS.0308 (AlreadyExists)",
    arrange: async (kit) => {
      const project = kit.project();
      await kit.createKey(project, "shared-alias");
      return {
        method: "CreateKey",
        request: { project_id: project, key_alias: "shared-alias" },
        expected: {
          code: Code.AlreadyExists,
          reason: "KMS.0308",
          message: 'key_alias "shared-alias" is already used in this project',
        },
      };
    },
  },
  ...(["RSA_2048", "SM4", "EC_P256"] as const).map(
    (spec): ErrorCase => ({
      name: `CreateKey: key_spec ${spec} is KMS.0308 (Unimplemented)`,
      arrange: async (kit) => ({
        method: "CreateKey",
        request: { project_id: kit.project(), key_alias: "k", key_spec: spec },
        expected: {
          code: Code.Unimplemented,
          reason: "KMS.0308",
          message: `key_spec ${spec} is not supported: kmsd creates AES_256 keys`,
        },
      }),
    }),
  ),
  {
    name: "CreateKey: key_usage SIGN_VERIFY is KMS.0308 (Unimplemented)",
    arrange: async (kit) => ({
      method: "CreateKey",
      request: { project_id: kit.project(), key_alias: "k", key_usage: "SIGN_VERIFY" },
      expected: {
        code: Code.Unimplemented,
        reason: "KMS.0308",
        message: "key_usage SIGN_VERIFY is not supported for AES_256 keys",
      },
    }),
  },
  {
    name: "CreateKey: origin external is KMS.0308 (Unimplemented)",
    arrange: async (kit) => ({
      method: "CreateKey",
      request: { project_id: kit.project(), key_alias: "k", origin: "external" },
      expected: {
        code: Code.Unimplemented,
        reason: "KMS.0308",
        message: "origin external is not supported: kmsd generates all key material",
      },
    }),
  },
  {
    name: "CreateKey: unknown key_spec is KMS.0308 (InvalidArgument)",
    arrange: async (kit) => ({
      method: "CreateKey",
      request: { project_id: kit.project(), key_alias: "k", key_spec: "AES_512" },
      expected: invalid(
        "KMS.0308",
        "key_spec: must be in list [AES_256, SM4, RSA_2048, RSA_3072, RSA_4096, EC_P256, EC_P384, SECP256K1, SM2]",
      ),
    }),
  },
  {
    name: "CreateKey: alias ending in /default is KMS.0308",
    arrange: async (kit) => ({
      method: "CreateKey",
      request: { project_id: kit.project(), key_alias: "kms/default" },
      expected: invalid("KMS.0308", "key_alias must not end with /default"),
    }),
  },
  {
    name: "CreateKey: malformed alias is KMS.0308",
    arrange: async (kit) => ({
      method: "CreateKey",
      request: { project_id: kit.project(), key_alias: "my key" },
      expected: invalid(
        "KMS.0308",
        "key_alias: does not match regex pattern `^[a-zA-Z0-9:/_-]{1,255}$`",
      ),
    }),
  },
  {
    name: "CreateKey: key_description over 255 characters is KMS.0308",
    arrange: async (kit) => ({
      method: "CreateKey",
      request: { project_id: kit.project(), key_alias: "k", key_description: "d".repeat(256) },
      expected: invalid("KMS.0308", "key_description: must be at most 255 characters"),
    }),
  },

  // KMS.0308: pending_days.
  ...(["6", "0", "1097", "9999"] as const).map(
    (days): ErrorCase => ({
      name: `ScheduleKeyDeletion: pending_days "${days}" is KMS.0308`,
      arrange: async (kit) => {
        const project = kit.project();
        const keyId = await kit.createKey(project);
        return {
          method: "ScheduleKeyDeletion",
          request: { project_id: project, key_id: keyId, pending_days: days },
          expected: invalid("KMS.0308", "pending_days must be between 7 and 1096"),
        };
      },
    }),
  ),
  ...(["abc", "7d", "-7", "12345"] as const).map(
    (days): ErrorCase => ({
      name: `ScheduleKeyDeletion: non-numeric pending_days "${days}" is KMS.0308`,
      arrange: async (kit) => {
        const project = kit.project();
        const keyId = await kit.createKey(project);
        return {
          method: "ScheduleKeyDeletion",
          request: { project_id: project, key_id: keyId, pending_days: days },
          // The caller's mistake, named: never an internal error.
          expected: invalid("KMS.0308", /^pending_days(:| must)/),
        };
      },
    }),
  ),

  // KMS.0308: list-keys parameters.
  ...(["0", "1001"] as const).map(
    (limit): ErrorCase => ({
      name: `ListKeys: limit "${limit}" is KMS.0308`,
      arrange: async (kit) => ({
        method: "ListKeys",
        request: { project_id: kit.project(), limit },
        expected: invalid("KMS.0308", "limit must be between 1 and 1000"),
      }),
    }),
  ),
  {
    name: 'ListKeys: non-numeric limit "ten" is KMS.0308',
    arrange: async (kit) => ({
      method: "ListKeys",
      request: { project_id: kit.project(), limit: "ten" },
      expected: invalid("KMS.0308", /^limit(:| must)/),
    }),
  },
  {
    name: 'ListKeys: key_state "9" is KMS.0308',
    arrange: async (kit) => ({
      method: "ListKeys",
      request: { project_id: kit.project(), key_state: "9" },
      expected: invalid("KMS.0308", "key_state: must be in list [1, 2, 3, 4, 5, 7]"),
    }),
  },
  {
    name: "ListKeys: a marker kmsd did not make is KMS.0308",
    arrange: async (kit) => ({
      method: "ListKeys",
      request: { project_id: kit.project(), marker: "not-a-marker" },
      expected: invalid("KMS.0308", "marker is invalid"),
    }),
  },
];

/** Registers every error case (describe/it) for one driver. */
export function describeErrorCases(kit: () => Kit): void {
  describe("errors", () => {
    for (const errorCase of [...commonFieldCases(), ...specificCases]) {
      it(errorCase.name, async () => {
        const { driver } = kit();
        const { method, request, expected } = await errorCase.arrange(kit());
        expectError(driver, await driver.fail(method, request), expected);
      });
    }

    it("an unknown key and another project's key answer alike", async () => {
      const k = kit();
      const owner = k.project();
      const keyId = await k.createKey(owner);
      const stranger = k.project();
      const unknown = await k.driver.fail("DescribeKey", {
        project_id: stranger,
        key_id: UNKNOWN_KEY_ID,
      });
      const foreign = await k.driver.fail("DescribeKey", { project_id: stranger, key_id: keyId });
      const shape = (error: PresentedError, id: string) => ({
        ...error,
        message: error.message.replace(id, "<id>"),
        fullMessage: error.fullMessage.replace(id, "<id>"),
        statusMessage: error.statusMessage?.replace(id, "<id>"),
      });
      expect(shape(foreign, keyId)).toEqual(shape(unknown, UNKNOWN_KEY_ID));
      expect(foreign.code).toBe(Code.NotFound);
      // The owner still sees it.
      const described = await k.driver.call("DescribeKey", { project_id: owner, key_id: keyId });
      expect(str(described, "key_info.key_id")).toBe(keyId);
    });
  });

  describe("authentication", () => {
    it("a call without a credential is Unauthenticated (APIGW.0301)", async () => {
      const k = kit();
      const error = await k.driver.fail("ListKeys", { project_id: k.project() }, { kind: "none" });
      expectError(k.driver, error, {
        code: Code.Unauthenticated,
        reason: "APIGW.0301",
        message:
          "no credential: sign the request with an access key (SDK-HMAC-SHA256) or send X-Auth-Token",
      });
    });

    it("an unknown token is Unauthenticated (APIGW.0301)", async () => {
      const k = kit();
      const error = await k.driver.fail(
        "ListKeys",
        { project_id: k.project() },
        { kind: "x-auth-token", token: "not-a-token-kmsd-issued" },
      );
      expectError(k.driver, error, {
        code: Code.Unauthenticated,
        reason: "APIGW.0301",
        message: "the token is invalid or has been revoked",
      });
    });

    it("another project's token is PermissionDenied (KMS.0321)", async () => {
      const k = kit();
      const owner = k.project();
      const keyId = await k.createKey(owner);
      const error = await k.driver.fail(
        "EncryptData",
        { project_id: owner, key_id: keyId, plain_text: "x" },
        { kind: "x-auth-token", token: await k.tokens.for(k.project()) },
      );
      expectError(k.driver, error, {
        code: Code.PermissionDenied,
        reason: "KMS.0321",
        message: "the request's project_id is not the credential's project",
      });
    });

    it("a token is also accepted as authorization: Bearer", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const reply = await k.driver.call(
        "DescribeKey",
        { project_id: project, key_id: keyId },
        { kind: "bearer", token: await k.tokens.for(project) },
      );
      expect(str(reply, "key_info.key_id")).toBe(keyId);
    });
  });
}

/** Registers the success-path coverage of every RPC for one driver. */
export function describeRpcCases(kit: () => Kit): void {
  describe("CreateKey and DescribeKey", () => {
    it("creates an AES_256 key and describes it with Huawei's fields", async () => {
      const k = kit();
      const project = k.project();
      const before = Date.now();
      const created = await k.driver.call("CreateKey", {
        project_id: project,
        key_alias: "app/orders:main_key-1",
        key_description: "orders data key",
      });
      const after = Date.now();
      expect(created).toEqual({
        key_info: { key_id: expect.stringMatching(UUID), domain_id: project },
      });
      const keyId = str(created, "key_info.key_id");
      const described = await k.driver.call("DescribeKey", { project_id: project, key_id: keyId });
      expect(described).toEqual({
        key_info: {
          key_id: keyId,
          domain_id: project,
          key_alias: "app/orders:main_key-1",
          realm: "kmsd-local",
          key_spec: "AES_256",
          key_usage: "ENCRYPT_DECRYPT",
          key_description: "orders data key",
          creation_date: expect.stringMatching(/^[0-9]{13}$/),
          scheduled_deletion_date: "",
          key_state: "2",
          default_key_flag: "0",
          key_type: "1",
          expiration_time: "",
          origin: "kms",
          key_rotation_enabled: "false",
          sys_enterprise_project_id: "0",
          keystore_id: "0",
        },
      });
      const createdAt = Number(str(described, "key_info.creation_date"));
      expect(createdAt).toBeGreaterThanOrEqual(before - 1);
      expect(createdAt).toBeLessThanOrEqual(after + 1);
    });

    it("accepts the explicit defaults, an enterprise project and a sequence", async () => {
      const k = kit();
      const project = k.project();
      const created = await k.driver.call("CreateKey", {
        project_id: project,
        key_alias: "explicit",
        key_spec: "AES_256",
        key_usage: "ENCRYPT_DECRYPT",
        origin: "kms",
        enterprise_project_id: "ep-42",
        sequence: SEQUENCE,
      });
      const keyId = str(created, "key_info.key_id");
      const described = await k.driver.call("DescribeKey", {
        project_id: project,
        key_id: keyId,
        sequence: SEQUENCE,
      });
      expect(described).toMatchObject({
        key_info: {
          key_id: keyId,
          key_alias: "explicit",
          key_spec: "AES_256",
          key_usage: "ENCRYPT_DECRYPT",
          origin: "kms",
          sys_enterprise_project_id: "ep-42",
        },
      });
    });

    it("lets two projects use the same alias", async () => {
      const k = kit();
      const first = await k.createKey(k.project(), "same-alias");
      const second = await k.createKey(k.project(), "same-alias");
      expect(first).toMatch(UUID);
      expect(second).toMatch(UUID);
      expect(second).not.toBe(first);
    });
  });

  describe("ListKeys", () => {
    it("lists an empty project", async () => {
      const k = kit();
      expect(await k.driver.call("ListKeys", { project_id: k.project() })).toEqual({
        keys: [],
        key_details: [],
        next_marker: "",
        truncated: "false",
        total: 0,
      });
    });

    it("lists every key of the project, oldest first, with their details", async () => {
      const k = kit();
      const project = k.project();
      const ids: string[] = [];
      for (let i = 0; i < 3; i += 1) ids.push(await k.createKey(project, `list-${i}`));
      await k.createKey(k.project(), "someone-else");
      const listed = await k.driver.call("ListKeys", { project_id: project });
      expect(listed).toMatchObject({ next_marker: "", truncated: "false", total: 3 });
      const keys = listed.keys as string[];
      expect([...keys].sort()).toEqual([...ids].sort());
      const details = listed.key_details as KmsReply[];
      expect(details.map((detail) => str(detail, "key_id"))).toEqual(keys);
      for (const detail of details) {
        expect(detail).toMatchObject({ domain_id: project, key_state: "2", key_spec: "AES_256" });
      }
      const order = details.map((detail) => [
        Number(str(detail, "creation_date")),
        str(detail, "key_id"),
      ]);
      expect(order).toEqual(
        [...order].sort((a, b) =>
          a[0] === b[0] ? String(a[1]).localeCompare(String(b[1])) : Number(a[0]) - Number(b[0]),
        ),
      );
      const aliases = Object.fromEntries(
        details.map((detail) => [str(detail, "key_id"), str(detail, "key_alias")]),
      );
      expect(ids.map((id) => aliases[id])).toEqual(["list-0", "list-1", "list-2"]);
    });

    it("pages with limit and marker", async () => {
      const k = kit();
      const project = k.project();
      for (let i = 0; i < 5; i += 1) await k.createKey(project, `page-${i}`);
      const all = (await k.driver.call("ListKeys", { project_id: project })).keys as string[];
      expect(all).toHaveLength(5);

      const pages: KmsReply[] = [];
      let marker = "";
      do {
        const page = await k.driver.call("ListKeys", {
          project_id: project,
          limit: "2",
          ...(marker === "" ? {} : { marker }),
        });
        pages.push(page);
        marker = str(page, "next_marker");
      } while (marker !== "" && pages.length < 10);

      expect(pages.map((page) => (page.keys as string[]).length)).toEqual([2, 2, 1]);
      expect(pages.map((page) => page.truncated)).toEqual(["true", "true", "false"]);
      expect(pages.map((page) => page.total)).toEqual([5, 5, 5]);
      expect(pages.map((page) => (page.key_details as unknown[]).length)).toEqual([2, 2, 1]);
      expect(pages.flatMap((page) => page.keys as string[])).toEqual(all);
      expect(str(pages[0], "next_marker")).not.toBe("");
      expect(str(pages[2], "next_marker")).toBe("");
    });

    it("a limit of the exact size is one page that is not truncated", async () => {
      const k = kit();
      const project = k.project();
      for (let i = 0; i < 2; i += 1) await k.createKey(project, `exact-${i}`);
      expect(await k.driver.call("ListKeys", { project_id: project, limit: "2" })).toMatchObject({
        next_marker: "",
        truncated: "false",
        total: 2,
      });
    });

    it("filters by key_state and key_spec, with pagination", async () => {
      const k = kit();
      const project = k.project();
      const [a, b, c, d] = [
        await k.createKey(project, "f-a"),
        await k.createKey(project, "f-b"),
        await k.createKey(project, "f-c"),
        await k.createKey(project, "f-d"),
      ];
      await k.driver.call("DisableKey", { project_id: project, key_id: b });
      await k.driver.call("DisableKey", { project_id: project, key_id: c });
      await k.driver.call("ScheduleKeyDeletion", {
        project_id: project,
        key_id: d,
        pending_days: "7",
      });
      const list = async (filters: KmsRequest) =>
        k.driver.call("ListKeys", { project_id: project, ...filters });
      const sorted = (keys: unknown) => [...(keys as string[])].sort();

      const enabled = await list({ key_state: "2" });
      expect(enabled).toMatchObject({ keys: [a], total: 1, truncated: "false" });
      const disabled = await list({ key_state: "3" });
      expect(sorted(disabled.keys)).toEqual(sorted([b, c]));
      expect(disabled.total).toBe(2);
      for (const detail of disabled.key_details as KmsReply[]) {
        expect(detail.key_state).toBe("3");
      }
      const pending = await list({ key_state: "4" });
      expect(pending).toMatchObject({ keys: [d], total: 1 });
      expect(str((pending.key_details as KmsReply[])[0], "scheduled_deletion_date")).toMatch(
        /^[0-9]{13}$/,
      );
      expect(await list({ key_state: "1" })).toMatchObject({ keys: [], total: 0 });

      expect((await list({ key_spec: "AES_256" })).total).toBe(4);
      expect((await list({ key_spec: "ALL" })).total).toBe(4);
      expect(await list({ key_spec: "SM4" })).toMatchObject({ keys: [], total: 0 });

      const first = await list({ key_state: "3", limit: "1" });
      expect(first).toMatchObject({ truncated: "true", total: 2 });
      const second = await list({
        key_state: "3",
        limit: "1",
        marker: str(first, "next_marker"),
      });
      expect(second).toMatchObject({ truncated: "false", total: 2, next_marker: "" });
      expect(sorted([...(first.keys as string[]), ...(second.keys as string[])])).toEqual(
        sorted([b, c]),
      );
    });
  });

  describe("EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion", () => {
    it("walks a key through every state", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const state = async () =>
        str(
          await k.driver.call("DescribeKey", { project_id: project, key_id: keyId }),
          "key_info.key_state",
        );

      expect(await k.driver.call("DisableKey", { project_id: project, key_id: keyId })).toEqual({
        key_info: { key_id: keyId, key_state: "3" },
      });
      expect(await state()).toBe("3");
      expect(await k.driver.call("EnableKey", { project_id: project, key_id: keyId })).toEqual({
        key_info: { key_id: keyId, key_state: "2" },
      });
      expect(await state()).toBe("2");

      const before = Date.now();
      expect(
        await k.driver.call("ScheduleKeyDeletion", {
          project_id: project,
          key_id: keyId,
          pending_days: "10",
          sequence: SEQUENCE,
        }),
      ).toEqual({ key_id: keyId, key_state: "4" });
      const after = Date.now();
      const described = await k.driver.call("DescribeKey", { project_id: project, key_id: keyId });
      expect(str(described, "key_info.key_state")).toBe("4");
      const deletion = Number(str(described, "key_info.scheduled_deletion_date"));
      expect(deletion).toBeGreaterThanOrEqual(before + 10 * DAY_MS - 1);
      expect(deletion).toBeLessThanOrEqual(after + 10 * DAY_MS + 1);

      expect(
        await k.driver.call("CancelKeyDeletion", { project_id: project, key_id: keyId }),
      ).toEqual({ key_id: keyId, key_state: "3" });
      const cancelled = await k.driver.call("DescribeKey", { project_id: project, key_id: keyId });
      expect(cancelled).toMatchObject({
        key_info: { key_state: "3", scheduled_deletion_date: "" },
      });

      await k.driver.call("EnableKey", { project_id: project, key_id: keyId });
      const cipherText = await k.encrypt(project, keyId, "back in service");
      expect(
        await k.driver.call("DecryptData", { project_id: project, cipher_text: cipherText }),
      ).toMatchObject({ key_id: keyId, plain_text: "back in service" });
    });

    it("accepts pending_days at both ends of 7..1096", async () => {
      const k = kit();
      const project = k.project();
      for (const days of ["7", "1096"]) {
        const keyId = await k.createKey(project, `days-${days}`);
        const before = Date.now();
        expect(
          await k.driver.call("ScheduleKeyDeletion", {
            project_id: project,
            key_id: keyId,
            pending_days: days,
          }),
        ).toEqual({ key_id: keyId, key_state: "4" });
        const described = await k.driver.call("DescribeKey", {
          project_id: project,
          key_id: keyId,
        });
        const deletion = Number(str(described, "key_info.scheduled_deletion_date"));
        expect(deletion - before).toBeGreaterThanOrEqual(Number(days) * DAY_MS - 1);
        expect(deletion - before).toBeLessThan(Number(days) * DAY_MS + 60_000);
      }
    });

    it("a key disabled after encrypting decrypts again once enabled", async () => {
      const k = kit();
      const { project, keyId, cipherText } = await k.keyWithCipher();
      await k.driver.call("DisableKey", { project_id: project, key_id: keyId });
      await k.driver.fail("DecryptData", { project_id: project, cipher_text: cipherText });
      await k.driver.call("EnableKey", { project_id: project, key_id: keyId });
      expect(
        await k.driver.call("DecryptData", { project_id: project, cipher_text: cipherText }),
      ).toMatchObject({ plain_text: "12345678" });
    });
  });

  describe("EncryptData and DecryptData", () => {
    it("encrypts 12345678 and decrypts it back", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const encrypted = await k.driver.call("EncryptData", {
        project_id: project,
        key_id: keyId,
        plain_text: "12345678",
      });
      expect(encrypted).toEqual({
        key_id: keyId,
        cipher_text: expect.stringMatching(/^[0-9a-zA-Z+/]+={0,2}$/),
      });
      const cipherText = str(encrypted, "cipher_text");
      // 66 bytes of overhead + 8: 74 bytes, 100 base64 characters.
      expect(Buffer.from(cipherText, "base64")).toHaveLength(74);
      expect(
        await k.driver.call("DecryptData", { project_id: project, cipher_text: cipherText }),
      ).toEqual({
        key_id: keyId,
        plain_text: "12345678",
        plain_text_base64: Buffer.from("12345678").toString("base64"),
      });
    });

    it("round-trips an encryption_context, its pairs in any order", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const context = { tenant: "acme", table: "orders", clé: "värde ✓" };
      const cipherText = await k.encrypt(project, keyId, "secret order", context);
      const reordered = { clé: "värde ✓", table: "orders", tenant: "acme" };
      expect(
        await k.driver.call("DecryptData", {
          project_id: project,
          cipher_text: cipherText,
          encryption_context: reordered,
          key_id: keyId,
          sequence: SEQUENCE,
        }),
      ).toEqual({
        key_id: keyId,
        plain_text: "secret order",
        plain_text_base64: Buffer.from("secret order").toString("base64"),
      });
    });

    it("accepts an encryption_context of exactly 8192 bytes", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const context = { k: "v".repeat(8191) };
      const cipherText = await k.encrypt(project, keyId, "x", context);
      expect(
        await k.driver.call("DecryptData", {
          project_id: project,
          cipher_text: cipherText,
          encryption_context: context,
        }),
      ).toMatchObject({ plain_text: "x" });
    });

    it("round-trips UTF-8, a 1-byte and a 4096-byte plain_text", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      for (const plainText of ["héllo wörld ✓ 🔑", "1", "x".repeat(4096), "é".repeat(2048)]) {
        const cipherText = await k.encrypt(project, keyId, plainText);
        const bytes = Buffer.byteLength(plainText);
        expect(Buffer.from(cipherText, "base64")).toHaveLength(66 + bytes);
        expect(cipherText.length).toBeGreaterThanOrEqual(92);
        expect(cipherText.length).toBeLessThanOrEqual(5648);
        expect(
          await k.driver.call("DecryptData", { project_id: project, cipher_text: cipherText }),
        ).toEqual({
          key_id: keyId,
          plain_text: plainText,
          plain_text_base64: Buffer.from(plainText).toString("base64"),
        });
      }
    });

    it("gives a fresh cipher_text each time", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const first = await k.encrypt(project, keyId, "same");
      const second = await k.encrypt(project, keyId, "same");
      expect(second).not.toBe(first);
      for (const cipherText of [first, second]) {
        expect(
          await k.driver.call("DecryptData", { project_id: project, cipher_text: cipherText }),
        ).toMatchObject({ plain_text: "same" });
      }
    });

    it("decrypts with the cipher_text's own key among several", async () => {
      const k = kit();
      const project = k.project();
      const first = await k.createKey(project);
      const second = await k.createKey(project);
      const fromFirst = await k.encrypt(project, first, "one");
      const fromSecond = await k.encrypt(project, second, "two");
      expect(
        await k.driver.call("DecryptData", { project_id: project, cipher_text: fromSecond }),
      ).toMatchObject({ key_id: second, plain_text: "two" });
      expect(
        await k.driver.call("DecryptData", { project_id: project, cipher_text: fromFirst }),
      ).toMatchObject({ key_id: first, plain_text: "one" });
    });
  });
}
