/**
 * docs/authentication.md against the code: its roles table is the proto's
 * (kms.v1.minimum_role), its error table is the error code table's, and its
 * three client examples run, as written, against a real kmsd.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { getOption } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { minimum_role, Role as ProtoRole } from "../../gen/kms/v1/rules_pb.js";
import { authErrorsTable, rolesTable } from "../../src/auth/roles.js";
import { replaceSection } from "../../src/docs/reference-tables.js";
import { createKey, type RunningKmsd, startKmsd } from "../support/kmsd.js";
import { issueTestCredential, type TestCredential } from "../support/signing.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DOC = path.join(ROOT, "docs", "authentication.md");

let document: string;

beforeAll(async () => {
  document = await readFile(DOC, "utf8");
});

function section(name: string): string {
  const begin = `<!-- begin ${name} -->\n`;
  const from = document.indexOf(begin);
  const to = document.indexOf(`<!-- end ${name} -->`);
  expect(from, `section ${name}`).toBeGreaterThanOrEqual(0);
  return document.slice(from + begin.length, to);
}

describe("docs/authentication.md tables", () => {
  it("the roles section is rolesTable() (regenerate it from the proto when this fails)", () => {
    expect(replaceSection(document, "roles", rolesTable(KmsService))).toBe(document);
  });

  it("the roles table lists every RPC, users allowed exactly where minimum_role is ROLE_USER", () => {
    const rows = section("roles")
      .split("\n")
      .filter((line) => line.startsWith("| `"))
      .map((line) => line.split("|").map((cell) => cell.trim()));
    const documented = Object.fromEntries(
      rows.map((cells) => [cells[1]?.replaceAll("`", ""), cells[3]]),
    );
    const fromProto = Object.fromEntries(
      KmsService.methods.map((method) => [
        method.name,
        getOption(method, minimum_role) === ProtoRole.USER ? "yes" : "no",
      ]),
    );
    expect(documented).toEqual(fromProto);
  });

  it("the auth-errors section is authErrorsTable()", () => {
    expect(replaceSection(document, "auth-errors", authErrorsTable())).toBe(document);
  });
});

describe("docs/authentication.md examples run as written", () => {
  let kmsd: RunningKmsd;
  let credential: TestCredential;
  let keyId: string;
  let dir: string;

  beforeAll(async () => {
    kmsd = await startKmsd();
    credential = await issueTestCredential(kmsd.config, "docs-examples", "user");
    keyId = await createKey(kmsd.config, "docs-examples", "docs-key");
    // The examples import packages as a user's project would: from its node_modules.
    dir = await mkdtemp(path.join(tmpdir(), "kmsd-doc-examples-"));
    await symlink(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"), "dir");
  });

  afterAll(async () => {
    await kmsd?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  function example(name: string): string {
    const match = new RegExp(`<!-- example: ${name} -->\\n\`\`\`js\\n([\\s\\S]*?)\`\`\``).exec(
      document,
    );
    if (match?.[1] === undefined) throw new Error(`no example ${name} in ${DOC}`);
    return match[1];
  }

  function run(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [file], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          HUAWEICLOUD_SDK_AK: credential.access_key,
          HUAWEICLOUD_SDK_SK: credential.secret_key,
          HUAWEICLOUD_SDK_PROJECT_ID: credential.project_id,
          KMS_ENDPOINT: kmsd.url,
          KMS_ADDRESS: `127.0.0.1:${kmsd.port}`,
          KMS_KEY_ID: keyId,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (text: string) => {
        stdout += text;
      });
      child.stderr.setEncoding("utf8").on("data", (text: string) => {
        stderr += text;
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
  }

  it.each(["rest", "grpc", "connect"])(
    "the %s example encrypts and decrypts with an access key",
    async (name) => {
      const file = path.join(dir, `${name}.mjs`);
      await writeFile(file, example(name));
      const result = await run(file);
      expect(result.code, result.stderr).toBe(0);
      const printed = JSON.parse(result.stdout.trim().split("\n").pop() ?? "") as {
        cipher_text: string;
        plain_text: string;
      };
      expect(printed.plain_text).toBe("hello");
      expect(printed.cipher_text.length).toBeGreaterThan(0);
    },
  );

  it("a wrong secret key makes the examples fail", async () => {
    const file = path.join(dir, "grpc-wrong.mjs");
    await writeFile(file, example("grpc"));
    const right = credential.secret_key;
    credential = { ...credential, secret_key: "w".repeat(40) };
    try {
      const result = await run(file);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain("UNAUTHENTICATED");
    } finally {
      credential = { ...credential, secret_key: right };
    }
  });
});
