import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  CancelKeyDeletionRequestSchema,
  CreateKeyRequestSchema,
  DecryptDataRequestSchema,
  DescribeKeyRequestSchema,
  DisableKeyRequestSchema,
  EnableKeyRequestSchema,
  EncryptDataRequestSchema,
  ListKeysRequestSchema,
  ScheduleKeyDeletionRequestSchema,
} from "../../gen/kms/v1/kms_pb.js";
import type { HuaweiErrorCode } from "../../src/errors/huawei-codes.js";
import { huaweiCodeOf } from "../../src/errors/kms-error.js";
import { createRequestValidator } from "../../src/validation/request-validator.js";

const validator = createRequestValidator();

const PROJECT_ID = "0a1b2c3d4e5f_-XYZ";
const KEY_ID = "0d0466b0-e727-4d9c-b35d-f84bb474a37f";
const SEQUENCE = "919c82d4-8046-4722-9094-35c3c6524cff";
const CIPHER_TEXT = "A".repeat(92);

// A valid request of each kind: every rule test changes one field of one of
// these, so a failure can only come from that field.
const valid = {
  createKey: { projectId: PROJECT_ID, keyAlias: "app/data-key:1", sequence: SEQUENCE },
  describeKey: { projectId: PROJECT_ID, keyId: KEY_ID, sequence: SEQUENCE },
  listKeys: { projectId: PROJECT_ID, sequence: SEQUENCE },
  enableKey: { projectId: PROJECT_ID, keyId: KEY_ID, sequence: SEQUENCE },
  disableKey: { projectId: PROJECT_ID, keyId: KEY_ID, sequence: SEQUENCE },
  scheduleKeyDeletion: {
    projectId: PROJECT_ID,
    keyId: KEY_ID,
    pendingDays: "7",
    sequence: SEQUENCE,
  },
  cancelKeyDeletion: { projectId: PROJECT_ID, keyId: KEY_ID, sequence: SEQUENCE },
  encryptData: {
    projectId: PROJECT_ID,
    keyId: KEY_ID,
    plainText: "12345678",
    encryptionContext: { tenant: "acme" },
    sequence: SEQUENCE,
  },
  decryptData: {
    projectId: PROJECT_ID,
    cipherText: CIPHER_TEXT,
    encryptionContext: { tenant: "acme" },
    keyId: KEY_ID,
    sequence: SEQUENCE,
  },
};

interface Case<Desc extends DescMessage> {
  readonly schema: Desc;
  readonly base: MessageInitShape<Desc>;
}

const requests = {
  CreateKeyRequest: { schema: CreateKeyRequestSchema, base: valid.createKey },
  DescribeKeyRequest: { schema: DescribeKeyRequestSchema, base: valid.describeKey },
  ListKeysRequest: { schema: ListKeysRequestSchema, base: valid.listKeys },
  EnableKeyRequest: { schema: EnableKeyRequestSchema, base: valid.enableKey },
  DisableKeyRequest: { schema: DisableKeyRequestSchema, base: valid.disableKey },
  ScheduleKeyDeletionRequest: {
    schema: ScheduleKeyDeletionRequestSchema,
    base: valid.scheduleKeyDeletion,
  },
  CancelKeyDeletionRequest: {
    schema: CancelKeyDeletionRequestSchema,
    base: valid.cancelKeyDeletion,
  },
  EncryptDataRequest: { schema: EncryptDataRequestSchema, base: valid.encryptData },
  DecryptDataRequest: { schema: DecryptDataRequestSchema, base: valid.decryptData },
} satisfies Record<string, Case<DescMessage>>;

type RequestName = keyof typeof requests;
const requestNames = Object.keys(requests) as RequestName[];
const withKeyId: RequestName[] = requestNames.filter((name) => "keyId" in requests[name].base);
const keyIdRequired: RequestName[] = withKeyId.filter((name) => name !== "DecryptDataRequest");

function check(name: RequestName, patch: Record<string, unknown>) {
  const { schema, base } = requests[name];
  const init = { ...base, ...patch } as MessageInitShape<typeof schema>;
  return validator.check(schema, create(schema, init));
}

function expectValid(name: RequestName, patch: Record<string, unknown>): void {
  const error = check(name, patch);
  expect(error?.rawMessage, `${name} ${JSON.stringify(patch).slice(0, 80)}`).toBeUndefined();
}

/** The request is refused with `code`, as INVALID_ARGUMENT, naming `field`. */
function expectInvalid(
  name: RequestName,
  patch: Record<string, unknown>,
  code: HuaweiErrorCode,
  field: string,
): void {
  const error = check(name, patch);
  const what = `${name} ${JSON.stringify(patch).slice(0, 80)}`;
  if (error === undefined) throw new Error(`${what}: expected ${code}, the request was accepted`);
  expect(huaweiCodeOf(error), `${what}: ${error.rawMessage}`).toBe(code);
  expect(error.code, what).toBe(Code.InvalidArgument);
  expect(error.rawMessage, what).toContain(field);
}

describe("valid requests", () => {
  it.each(requestNames)("accepts a valid %s", (name) => {
    expectValid(name, {});
  });

  it.each(requestNames)("accepts a %s with only its required fields", (name) => {
    const base: Record<string, unknown> = requests[name].base;
    const optional = ["sequence", "encryptionContext", "keyId"].filter(
      (field) => field in base && (field !== "keyId" || name === "DecryptDataRequest"),
    );
    expect(optional.length).toBeGreaterThan(0);
    expectValid(
      name,
      Object.fromEntries(optional.map((f) => [f, f === "encryptionContext" ? {} : ""])),
    );
  });
});

describe("required fields answer KMS.0204", () => {
  const required: Array<[RequestName, string, string]> = [
    ...requestNames.map((name): [RequestName, string, string] => [name, "projectId", "project_id"]),
    ...keyIdRequired.map((name): [RequestName, string, string] => [name, "keyId", "key_id"]),
    ["EncryptDataRequest", "plainText", "plain_text"],
    ["DecryptDataRequest", "cipherText", "cipher_text"],
    ["CreateKeyRequest", "keyAlias", "key_alias"],
    ["ScheduleKeyDeletionRequest", "pendingDays", "pending_days"],
  ];

  it.each(required)("%s without %s", (name, localName, field) => {
    expectInvalid(name, { [localName]: "" }, "KMS.0204", field);
    expect(check(name, { [localName]: "" })?.rawMessage).toBe(`${field} is required`);
  });

  it("does not require the optional key_id of DecryptDataRequest", () => {
    expectValid("DecryptDataRequest", { keyId: "" });
  });
});

describe("project_id", () => {
  it.each(requestNames)("%s: refuses ids outside ^[0-9a-zA-Z_-]{1,64}$ with KMS.0201", (name) => {
    for (const projectId of ["a".repeat(65), "a/b", "a b", "a.b", "ab\n", "é", "a%2Fb"]) {
      expectInvalid(name, { projectId }, "KMS.0201", "project_id");
    }
  });

  it.each(requestNames)("%s: accepts 1 to 64 allowed characters", (name) => {
    for (const projectId of ["a", "a".repeat(64), "AZaz09_-"]) expectValid(name, { projectId });
  });

  it("answers an empty project_id as missing (KMS.0204), not as a bad pattern", () => {
    // proto3 cannot tell "" from absent, and rules.proto says a missing
    // required field answers KMS.0204 whatever its own code is.
    expectInvalid("EncryptDataRequest", { projectId: "" }, "KMS.0204", "project_id");
  });
});

describe("key_id", () => {
  const bad = [
    KEY_ID.toUpperCase(),
    "0d0466b0-e727-4d9c-b35d-f84bb474a37F",
    KEY_ID.slice(0, -1),
    `${KEY_ID}0`,
    KEY_ID.replaceAll("-", ""),
    "0d0466b-0e727-4d9c-b35d-f84bb474a37f",
    "0d0466b0_e727_4d9c_b35d_f84bb474a37f",
    "0d0466b0-e727-4d9c-b35d-f84bb474a37f\n",
    `{${KEY_ID}}`,
  ];

  it.each(withKeyId)("%s: refuses malformed ids with KMS.0205", (name) => {
    for (const keyId of bad) expectInvalid(name, { keyId }, "KMS.0205", "key_id");
  });

  it.each(withKeyId)("%s: accepts lower-case ids", (name) => {
    expectValid(name, { keyId: "00000000-0000-0000-0000-000000000000" });
    expectValid(name, { keyId: "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz" });
  });
});

describe("sequence", () => {
  it.each(requestNames)("%s: 35 and 37 characters answer KMS.0206, 36 and none pass", (name) => {
    expectInvalid(name, { sequence: SEQUENCE.slice(0, 35) }, "KMS.0206", "sequence");
    expectInvalid(name, { sequence: `${SEQUENCE}0` }, "KMS.0206", "sequence");
    expectInvalid(name, { sequence: "x" }, "KMS.0206", "sequence");
    expectValid(name, { sequence: SEQUENCE });
    expectValid(name, { sequence: "" });
  });
});

describe("plain_text", () => {
  it.each([
    ["1 byte", "x"],
    ["4096 ASCII bytes", "a".repeat(4096)],
    ["4093 ASCII + € = 4096 bytes", `${"a".repeat(4093)}€`],
    ['2048 × "é" = 4096 bytes', "é".repeat(2048)],
    ['1024 × "😀" = 4096 bytes', "😀".repeat(1024)],
  ])("accepts %s", (_, plainText) => {
    expectValid("EncryptDataRequest", { plainText });
  });

  it.each([
    ["4097 ASCII bytes", "a".repeat(4097)],
    ["4094 ASCII + € = 4097 bytes", `${"a".repeat(4094)}€`],
    ['2049 × "é" = 4098 bytes', "é".repeat(2049)],
    ["4095 ASCII + 😀 = 4099 bytes, 4097 UTF-16 units", `${"a".repeat(4095)}😀`],
    ["1366 × € = 4098 bytes in 1366 characters", "€".repeat(1366)],
  ])("refuses %s with KMS.2101", (_, plainText) => {
    expectInvalid("EncryptDataRequest", { plainText }, "KMS.2101", "plain_text");
  });
});

describe("encryption_context", () => {
  const contextRequests: RequestName[] = ["EncryptDataRequest", "DecryptDataRequest"];

  // The limit counts the UTF-8 bytes of keys and values, nothing else.
  const accepted: Array<[string, Record<string, string>]> = [
    ["8192 bytes in one pair", { k: "v".repeat(8191) }],
    [
      "8192 bytes over eight pairs",
      Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`key${i}`, "v".repeat(1020)])),
    ],
    ["8192 bytes ending in a 3-byte character", { k: `${"v".repeat(8188)}€` }],
    ["8192 bytes of 3-byte characters in the key", { [`${"€".repeat(2730)}ab`]: "" }],
    ["an empty value", { k: "" }],
  ];
  const refused: Array<[string, Record<string, string>]> = [
    ["8193 bytes in one pair", { k: "v".repeat(8192) }],
    [
      "8193 bytes over eight pairs",
      Object.fromEntries(
        Array.from({ length: 8 }, (_, i) => [`key${i}`, "v".repeat(i === 7 ? 1021 : 1020)]),
      ),
    ],
    ["8193 bytes ending in a 3-byte character", { k: `${"v".repeat(8189)}€` }],
    ["8193 bytes in only 4097 characters", { k: "é".repeat(4096) }],
    ["8194 bytes of 3-byte characters in the key", { [`${"€".repeat(2730)}abc`]: "x" }],
    ["an empty key", { "": "v" }],
    ["an empty key among valid pairs", { a: "1", "": "", b: "2" }],
  ];

  for (const name of contextRequests) {
    it.each(accepted)(`${name}: accepts %s`, (_, encryptionContext) => {
      expectValid(name, { encryptionContext });
    });

    it.each(refused)(`${name}: refuses %s with KMS.0208`, (_, encryptionContext) => {
      expectInvalid(name, { encryptionContext }, "KMS.0208", "encryption_context");
    });
  }
});

describe("cipher_text", () => {
  it.each([
    ["91 characters", "A".repeat(91)],
    ["5649 characters", "A".repeat(5649)],
    ["a '-' (base64url)", `${"A".repeat(91)}-`],
    ["a '_' (base64url)", `${"A".repeat(91)}_`],
    ["a space", `${"A".repeat(46)} ${"A".repeat(45)}`],
    ["a line break", `${"A".repeat(91)}\n`],
    ["a '.'", `${"A".repeat(91)}.`],
    ["a non-ASCII letter", `${"A".repeat(91)}é`],
  ])("refuses %s with KMS.2201", (_, cipherText) => {
    expectInvalid("DecryptDataRequest", { cipherText }, "KMS.2201", "cipher_text");
  });

  it.each([
    ["92 characters", "A".repeat(92)],
    ["5648 characters", "A".repeat(5648)],
    [
      "the whole alphabet and padding",
      `${"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".repeat(2)}AA==`,
    ],
  ])("accepts %s", (_, cipherText) => {
    expectValid("DecryptDataRequest", { cipherText });
  });
});

describe("CreateKeyRequest", () => {
  it.each([
    ["a reserved /default suffix", "x/default"],
    ["only the reserved suffix", "/default"],
    ["256 characters", "a".repeat(256)],
    ["a space", "my key"],
    ["a dot", "my.key"],
    ["a non-ASCII letter", "clé"],
  ])("refuses a key_alias with %s with KMS.0308", (_, keyAlias) => {
    expectInvalid("CreateKeyRequest", { keyAlias }, "KMS.0308", "key_alias");
  });

  it.each(["a", "a".repeat(255), "default", "x/default/y", "x/Default", "A-Z:a_z/0-9"])(
    "accepts the key_alias %s",
    (keyAlias) => {
      expectValid("CreateKeyRequest", { keyAlias });
    },
  );

  it.each([
    ["keySpec", "key_spec", ["AES_128", "aes_256", "ALL", "HMAC_256", " AES_256"]],
    ["keyUsage", "key_usage", ["ENCRYPT", "encrypt_decrypt", "SIGN"]],
    ["origin", "origin", ["KMS", "External", "imported"]],
  ] as const)("refuses a %s outside its list with KMS.0308", (localName, field, values) => {
    for (const value of values) {
      expectInvalid("CreateKeyRequest", { [localName]: value }, "KMS.0308", field);
    }
  });

  it.each([
    [
      "keySpec",
      [
        "",
        "AES_256",
        "SM4",
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
        "EC_P256",
        "EC_P384",
        "SECP256K1",
        "SM2",
      ],
    ],
    ["keyUsage", ["", "ENCRYPT_DECRYPT", "SIGN_VERIFY"]],
    ["origin", ["", "kms", "external"]],
  ] as const)("accepts every listed %s", (localName, values) => {
    for (const value of values) expectValid("CreateKeyRequest", { [localName]: value });
  });

  it("limits key_description to 255 characters and enterprise_project_id to 64", () => {
    expectValid("CreateKeyRequest", { keyDescription: "d".repeat(255) });
    expectInvalid(
      "CreateKeyRequest",
      { keyDescription: "d".repeat(256) },
      "KMS.0308",
      "key_description",
    );
    expectValid("CreateKeyRequest", { enterpriseProjectId: "e".repeat(64) });
    expectInvalid(
      "CreateKeyRequest",
      { enterpriseProjectId: "e".repeat(65) },
      "KMS.0308",
      "enterprise_project_id",
    );
  });
});

describe("ScheduleKeyDeletionRequest pending_days", () => {
  it.each(["7", "8", "1095", "1096", "0007"])("accepts %s", (pendingDays) => {
    expectValid("ScheduleKeyDeletionRequest", { pendingDays });
  });

  it.each(["6", "0", "1097", "9999", "99999", "-7", "+7", "7.0", " 7", "abc", "7d"])(
    "refuses %s with KMS.0308",
    (pendingDays) => {
      expectInvalid("ScheduleKeyDeletionRequest", { pendingDays }, "KMS.0308", "pending_days");
    },
  );
});

describe("ListKeysRequest", () => {
  it.each(["", "1", "100", "1000", "0001"])("accepts the limit %j", (limit) => {
    expectValid("ListKeysRequest", { limit });
  });

  it.each(["0", "1001", "9999", "10000", "-1", "1e3", "abc", " 1"])(
    "refuses the limit %j with KMS.0308",
    (limit) => {
      expectInvalid("ListKeysRequest", { limit }, "KMS.0308", "limit");
    },
  );

  it.each(["", "1", "2", "3", "4", "5", "7"])("accepts the key_state %j", (keyState) => {
    expectValid("ListKeysRequest", { keyState });
  });

  it.each(["0", "6", "8", "22", "enabled"])(
    "refuses the key_state %j with KMS.0308",
    (keyState) => {
      expectInvalid("ListKeysRequest", { keyState }, "KMS.0308", "key_state");
    },
  );

  it("accepts ALL and every spec as key_spec, and refuses others with KMS.0308", () => {
    for (const keySpec of ["", "ALL", "AES_256", "SM2"])
      expectValid("ListKeysRequest", { keySpec });
    for (const keySpec of ["all", "AES_128"]) {
      expectInvalid("ListKeysRequest", { keySpec }, "KMS.0308", "key_spec");
    }
  });

  it("limits marker to 256 characters and enterprise_project_id to 64", () => {
    expectValid("ListKeysRequest", { marker: "m".repeat(256) });
    expectInvalid("ListKeysRequest", { marker: "m".repeat(257) }, "KMS.0308", "marker");
    expectInvalid(
      "ListKeysRequest",
      { enterpriseProjectId: "e".repeat(65) },
      "KMS.0308",
      "enterprise_project_id",
    );
  });
});
