/**
 * Project isolation and roles, over every RPC of kms.v1.KmsService: the
 * matrix iterates the service descriptor, so a new RPC is covered (or, if
 * no valid request can be built for it, fails here until one is added to
 * REQUESTS). Every call is signed with an access key: REST with Huawei's
 * SDK signer, gRPC the documented way.
 */
import { createHash, randomBytes } from "node:crypto";
import { type DescMethod, getOption, type JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "../../gen/google/api/annotations_pb.js";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { minimum_role, Role as ProtoRole } from "../../gen/kms/v1/rules_pb.js";
import { issueToken } from "../../src/auth/issue-credentials.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { type RunningKmsd, startKmsd } from "../support/kmsd.js";
import { issueTestCredential, sendSignedRest, type TestCredential } from "../support/signing.js";
import { cliJson, type GrpcOutcome, SignedGrpc, UNKNOWN_KEY_ID } from "./helpers.js";

let kmsd: RunningKmsd;
let grpcClient: SignedGrpc;

/** Each project's admin and user credentials. */
const people: Record<"A" | "B", { admin: TestCredential; user: TestCredential }> = {} as never;
const PROJECT = { A: "isolation-a", B: "isolation-b" } as const;
/** Every key made in project A, by any test. */
const keysOfA = new Set<string>();

beforeAll(async () => {
  kmsd = await startKmsd();
  grpcClient = new SignedGrpc(kmsd.port);
  for (const name of ["A", "B"] as const) {
    people[name] = {
      admin: await issueTestCredential(kmsd.config, PROJECT[name], "admin"),
      user: await issueTestCredential(kmsd.config, PROJECT[name], "user"),
    };
  }
});

afterAll(async () => {
  grpcClient?.close();
  await kmsd?.stop();
});

// ---------------------------------------------------------------- requests

/** What a request is built from. */
interface Fixture {
  readonly projectId: string;
  readonly keyId: string;
  readonly cipherText: string;
  readonly alias: string;
}

interface RequestSpec {
  /** A valid request of the method. */
  readonly build: (fixture: Fixture) => JsonObject;
  /** Puts A's key in the state the method needs to succeed. */
  readonly prepare?: (call: Caller, fixture: Fixture) => Promise<void>;
}

/** Methods whose request needs more than the field-name defaults of genericRequest. */
const REQUESTS: Readonly<Record<string, RequestSpec>> = {
  CreateKey: { build: (f) => ({ project_id: f.projectId, key_alias: f.alias }) },
  ListKeys: { build: (f) => ({ project_id: f.projectId }) },
  // Decrypt names its key through the ciphertext only.
  DecryptData: { build: (f) => ({ project_id: f.projectId, cipher_text: f.cipherText }) },
  CancelKeyDeletion: {
    build: (f) => ({ project_id: f.projectId, key_id: f.keyId }),
    prepare: async (call, f) => {
      expectSuccess(
        await call("ScheduleKeyDeletion", {
          project_id: f.projectId,
          key_id: f.keyId,
          pending_days: "7",
        }),
      );
    },
  },
  UpdateKeyRotationInterval: {
    build: (f) => ({ project_id: f.projectId, key_id: f.keyId, rotation_interval: 30 }),
    prepare: async (call, f) => {
      expectSuccess(await call("EnableKeyRotation", { project_id: f.projectId, key_id: f.keyId }));
    },
  },
  EncryptDatakey: {
    build: (f) => {
      const dataKey = Buffer.alloc(32, 5);
      const digest = createHash("sha256").update(dataKey).digest();
      return {
        project_id: f.projectId,
        key_id: f.keyId,
        plain_text: Buffer.concat([dataKey, digest]).toString("hex"),
        datakey_plain_length: "32",
      };
    },
  },
  // The fixture's ciphertext, of the 3 bytes "iso", in hex: a data key of 3 bytes.
  DecryptDatakey: {
    build: (f) => ({
      project_id: f.projectId,
      key_id: f.keyId,
      cipher_text: Buffer.from(f.cipherText, "base64").toString("hex"),
      datakey_cipher_length: "3",
    }),
  },
  GenRandom: { build: (f) => ({ project_id: f.projectId, random_data_length: "256" }) },
  BatchEncryptData: {
    build: (f) => ({ project_id: f.projectId, items: [{ key_id: f.keyId, plain_text: "iso" }] }),
  },
  BatchDecryptData: {
    build: (f) => ({ project_id: f.projectId, items: [{ cipher_text: f.cipherText }] }),
  },
};

/** Values for fields by name, for methods REQUESTS does not list. */
function genericRequest(method: DescMethod, f: Fixture): JsonObject {
  const request: JsonObject = {};
  for (const field of method.input.fields) {
    const name = field.name;
    if (name === "project_id") request[name] = f.projectId;
    else if (name === "key_id" || name.endsWith("_key_id")) request[name] = f.keyId;
    else if (name === "key_alias") request[name] = f.alias;
    else if (name === "pending_days") request[name] = "7";
    else if (name === "plain_text") request[name] = "isolation";
    else if (name === "cipher_text") request[name] = f.cipherText;
  }
  return request;
}

function requestOf(method: DescMethod, f: Fixture): JsonObject {
  return (REQUESTS[method.name]?.build ?? ((fixture) => genericRequest(method, fixture)))(f);
}

/**
 * How the request names a key: by key id (KMS.0207 when absent), by
 * ciphertext, in the items of a batch, or not at all.
 */
function addressing(
  request: JsonObject,
  keyId: string,
): "key-id" | "cipher-text" | "batch" | "none" {
  if (Array.isArray(request.items)) return "batch";
  const values = Object.entries(request);
  if (values.some(([name, value]) => name.endsWith("key_id") && value === keyId)) return "key-id";
  if (values.some(([name]) => name === "cipher_text")) return "cipher-text";
  return "none";
}

/** The same ciphertext with the key id in its header (bytes 2..18) replaced by one no key has. */
function cipherOfUnknownKey(cipherText: string): string {
  const bytes = Buffer.from(cipherText, "base64");
  randomBytes(16).copy(bytes, 2);
  return bytes.toString("base64");
}

// ---------------------------------------------------------------- transports

/** A call's result, reduced to what the matrix compares. */
type Outcome =
  | { readonly ok: true; readonly body: JsonObject }
  | {
      readonly ok: false;
      /** REST: the HTTP status; RPC: the gRPC code name. */
      readonly status: string;
      /** The Huawei code. */
      readonly code: string;
      /** REST: the whole body; RPC: code, reason and message. */
      readonly answer: unknown;
    };

type Caller = (method: string, request: JsonObject) => Promise<Outcome>;

interface Transport {
  readonly name: string;
  /** Whether the transport can call the method at all. */
  readonly serves: (method: DescMethod) => boolean;
  readonly caller: (credential: TestCredential) => Caller;
}

function restPath(method: DescMethod, projectId: string): string | undefined {
  const rule = getOption(method, http);
  if (rule.pattern.case !== "post") return undefined;
  return rule.pattern.value.replace("{project_id}", projectId);
}

const transports: Transport[] = [
  {
    name: "REST (Huawei SDK signer)",
    serves: (method) => restPath(method, "p") !== undefined,
    caller: (credential) => async (name, request) => {
      const method = KmsService.methods.find((candidate) => candidate.name === name);
      const path = method && restPath(method, String(request.project_id));
      if (path === undefined) throw new Error(`${name} has no REST POST route`);
      const { project_id: _inPath, ...data } = request;
      const reply = await sendSignedRest(credential, { baseUrl: kmsd.url, path, data });
      if (reply.status === 200) return { ok: true, body: reply.json as JsonObject };
      const json = reply.json as { error?: { error_code: string }; error_code?: string };
      return {
        ok: false,
        status: String(reply.status),
        code: json.error?.error_code ?? json.error_code ?? "?",
        answer: json.error_code === undefined ? json : { ...json, request_id: "<id>" },
      };
    },
  },
  {
    name: "gRPC (@grpc/grpc-js, signed)",
    serves: () => true,
    caller: (credential) => async (name, request) => {
      const outcome: GrpcOutcome = await grpcClient.call(credential, name, request);
      if (outcome.ok) return { ok: true, body: outcome.response as JsonObject };
      return {
        ok: false,
        status: Code[outcome.code],
        code: outcome.reason ?? "?",
        answer: { code: Code[outcome.code], reason: outcome.reason, message: outcome.message },
      };
    },
  },
];

function expectSuccess(outcome: Outcome): JsonObject {
  if (!outcome.ok) throw new Error(`expected success, got ${JSON.stringify(outcome)}`);
  return outcome.body;
}

function expectRefused(outcome: Outcome, status: string, code: string): void {
  expect(outcome.ok ? outcome : { status: outcome.status, code: outcome.code }).toEqual({
    status,
    code,
  });
}

/** The answer with every occurrence of the key id replaced, to compare answers about two keys. */
function withoutKeyId(outcome: unknown, keyId: string): unknown {
  return JSON.parse(JSON.stringify(outcome).replaceAll(keyId, "<key id>"));
}

const methods = KmsService.methods;
let fixtureCount = 0;

/** A fresh key of project A (with a ciphertext of it), ready for the method. */
async function fixtureOfA(transport: Transport, method: DescMethod): Promise<Fixture> {
  fixtureCount += 1;
  const admin = transport.caller(people.A.admin);
  const alias = `shared-${method.name}-${fixtureCount}`;
  const created = expectSuccess(
    await admin("CreateKey", { project_id: PROJECT.A, key_alias: `key-${alias}` }),
  );
  const keyId = String((created.key_info as JsonObject).key_id);
  keysOfA.add(keyId);
  const encrypted = expectSuccess(
    await admin("EncryptData", { project_id: PROJECT.A, key_id: keyId, plain_text: "iso" }),
  );
  const fixture = {
    projectId: PROJECT.A,
    keyId,
    cipherText: String(encrypted.cipher_text),
    alias,
  };
  await REQUESTS[method.name]?.prepare?.(admin, fixture);
  return fixture;
}

describe("the matrix covers the whole service", () => {
  it("KmsService has RPCs users may call and RPCs only admins may", () => {
    const roles = methods.map((method) => getOption(method, minimum_role));
    expect(roles).toContain(ProtoRole.USER);
    expect(roles.some((role) => role !== ProtoRole.USER)).toBe(true);
  });
});

describe.each(transports)("isolation over $name", (transport) => {
  const served = methods.filter((method) => transport.serves(method));

  it.each(served.map((method) => [method.name, method] as const))(
    "%s: another project's key is an unknown key; another project's id is KMS.0321; users only where the proto lets them",
    async (_name, method) => {
      const a = await fixtureOfA(transport, method);
      const inB: Fixture = { ...a, projectId: PROJECT.B };
      const adminB = transport.caller(people.B.admin);

      // 1. Project B's admin, addressing A's key in project B.
      const request = requestOf(method, inB);
      const foreign = await adminB(method.name, request);
      const kind = addressing(request, a.keyId);
      if (kind === "key-id") {
        expectRefused(foreign, transport.name.startsWith("REST") ? "404" : "NotFound", "KMS.0207");
        const unknown = await adminB(
          method.name,
          requestOf(method, { ...inB, keyId: UNKNOWN_KEY_ID }),
        );
        expect(withoutKeyId(foreign, a.keyId)).toEqual(withoutKeyId(unknown, UNKNOWN_KEY_ID));
      } else if (kind === "batch") {
        // A batch succeeds; its item answers as the single call would, and
        // says no more about A's key than about a key that does not exist.
        const item = (outcome: Outcome) => (expectSuccess(outcome).items as JsonObject[])[0];
        const unknown = await adminB(
          method.name,
          requestOf(method, {
            ...inB,
            keyId: UNKNOWN_KEY_ID,
            cipherText: cipherOfUnknownKey(a.cipherText),
          }),
        );
        expect(item(foreign)?.error, JSON.stringify(foreign)).toBeDefined();
        expect(withoutKeyId(item(foreign), a.keyId)).toEqual(
          withoutKeyId(item(unknown), UNKNOWN_KEY_ID),
        );
      } else if (kind === "cipher-text") {
        expect(foreign.ok, JSON.stringify(foreign)).toBe(false);
        const unknown = await adminB(
          method.name,
          requestOf(method, { ...inB, cipherText: cipherOfUnknownKey(a.cipherText) }),
        );
        expect(foreign).toEqual(unknown);
        expect(JSON.stringify(foreign)).not.toContain(a.keyId);
      } else {
        // Not about one key (create, list): B's admin does it in B, alias included.
        const body = expectSuccess(foreign);
        expect(JSON.stringify(body)).not.toContain(a.keyId);
      }

      // 2. Project B's admin, addressing project A.
      expectRefused(
        await adminB(method.name, requestOf(method, a)),
        transport.name.startsWith("REST") ? "403" : "PermissionDenied",
        "KMS.0321",
      );

      // 3. Project A's user: allowed exactly when the proto says ROLE_USER.
      const asUser = await transport.caller(people.A.user)(method.name, requestOf(method, a));
      if (getOption(method, minimum_role) === ProtoRole.USER) {
        expectSuccess(asUser);
      } else {
        expectRefused(
          asUser,
          transport.name.startsWith("REST") ? "403" : "PermissionDenied",
          "KMS.0307",
        );
      }

      // 4. Project A's admin: the request is valid (so the refusals above were about who asked).
      expectSuccess(await transport.caller(people.A.admin)(method.name, requestOf(method, a)));
    },
  );
});

describe("what project B sees", () => {
  it("list-keys in B never shows A's keys, and B's keys never show in A", async () => {
    const [rest] = transports;
    if (rest === undefined) throw new Error("no REST transport");
    const keyOfB = expectSuccess(
      await rest.caller(people.B.admin)("CreateKey", {
        project_id: PROJECT.B,
        key_alias: "only-in-b",
      }),
    );
    const bKey = String((keyOfB.key_info as JsonObject).key_id);
    for (const transport of transports) {
      const listB = expectSuccess(
        await transport.caller(people.B.user)("ListKeys", { project_id: PROJECT.B, limit: "1000" }),
      );
      const idsB = listB.keys as string[];
      expect(idsB).toContain(bKey);
      expect(keysOfA.size).toBeGreaterThan(0);
      for (const key of keysOfA) expect(idsB).not.toContain(key);
      const listA = expectSuccess(
        await transport.caller(people.A.user)("ListKeys", { project_id: PROJECT.A, limit: "1000" }),
      );
      expect(listA.keys).not.toContain(bKey);
      expect(listA.keys).toEqual(expect.arrayContaining([...keysOfA]));
    }
  });

  it("the same alias in A and B: both succeed, each project sees its own key", async () => {
    const [rest] = transports;
    if (rest === undefined) throw new Error("no REST transport");
    const ids: string[] = [];
    for (const name of ["A", "B"] as const) {
      const created = expectSuccess(
        await rest.caller(people[name].admin)("CreateKey", {
          project_id: PROJECT[name],
          key_alias: "the-same-alias",
        }),
      );
      ids.push(String((created.key_info as JsonObject).key_id));
    }
    expect(ids[0]).not.toBe(ids[1]);
    keysOfA.add(ids[0] ?? "");
    for (const [index, name] of (["A", "B"] as const).entries()) {
      const described = expectSuccess(
        await rest.caller(people[name].user)("DescribeKey", {
          project_id: PROJECT[name],
          key_id: ids[index] ?? "",
        }),
      );
      expect(described.key_info).toMatchObject({
        key_alias: "the-same-alias",
        domain_id: PROJECT[name],
      });
    }
  });

  it("`credentials list --project B` and `tokens list --project B` show none of A's", async () => {
    const store = await openSqliteStore({ dataDir: kmsd.config.dataDir });
    const tokens: Record<"A" | "B", string> = { A: "", B: "" };
    try {
      for (const name of ["A", "B"] as const) {
        const issued = await issueToken(store, {
          projectId: PROJECT[name],
          role: "admin",
          ttlMs: 3_600_000,
          now: Date.now(),
        });
        tokens[name] = issued.token_id;
      }
    } finally {
      await store.close();
    }
    const credentials = (await cliJson(kmsd.config, [
      "credentials",
      "list",
      "--project",
      PROJECT.B,
    ])) as { access_key: string; project_id: string }[];
    expect(credentials.map((c) => c.access_key).sort()).toEqual(
      [people.B.admin.access_key, people.B.user.access_key].sort(),
    );
    expect(credentials.every((c) => c.project_id === PROJECT.B)).toBe(true);
    expect(JSON.stringify(credentials)).not.toContain(people.A.admin.secret_key);
    expect(JSON.stringify(credentials)).not.toContain(people.B.admin.secret_key);
    const listed = (await cliJson(kmsd.config, ["tokens", "list", "--project", PROJECT.B])) as {
      token_id: string;
      project_id: string;
    }[];
    expect(listed.map((t) => t.token_id)).toEqual([tokens.B]);
    expect(listed.every((t) => t.project_id === PROJECT.B)).toBe(true);
    // And A's lists hold A's.
    const credentialsOfA = (await cliJson(kmsd.config, [
      "credentials",
      "list",
      "--project",
      PROJECT.A,
    ])) as { access_key: string }[];
    expect(credentialsOfA.map((c) => c.access_key)).toContain(people.A.admin.access_key);
    expect(credentialsOfA.map((c) => c.access_key)).not.toContain(people.B.admin.access_key);
  });
});
