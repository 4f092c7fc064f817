import { createSecretKey, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  OVERHEAD,
  openCiphertext,
  RANDOMNESS_LENGTH,
  readCiphertextHeader,
  sealCiphertext,
} from "../../src/crypto/ciphertext.js";
import { encodeEncryptionContext } from "../../src/crypto/context-encoding.js";

// The vectors live in the specification itself, so the document and the
// code cannot drift apart: this test fails if either changes alone.
const DOC = readFileSync(new URL("../../docs/ciphertext-format.md", import.meta.url), "utf8");

interface Vector {
  readonly name: string;
  readonly key_id: string;
  readonly key_version: number;
  readonly key_material_hex: string;
  readonly randomness_hex: string;
  readonly plaintext_utf8: string;
  readonly plaintext_hex: string;
  readonly context: ReadonlyArray<readonly [string, string]> | null;
  readonly additional_authenticated_data_hex: string | null;
  readonly expected: {
    readonly header_hex: string;
    readonly kdf_input_hex: string;
    readonly message_key_hex: string;
    readonly context_encoding_hex: string | null;
    readonly gcm_aad_hex: string;
    readonly ciphertext_hex: string;
    readonly ciphertext_base64: string;
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function field<T>(record: Record<string, unknown>, name: string, guard: (v: unknown) => v is T): T {
  const value = record[name];
  if (!guard(value)) throw new Error(`vector field ${name} is missing or has the wrong type`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isNumber = (v: unknown): v is number => typeof v === "number";
const isHex = (v: unknown): v is string => typeof v === "string" && /^([0-9a-f]{2})*$/.test(v);
const isHexOrNull = (v: unknown): v is string | null => v === null || isHex(v);
const isPairs = (v: unknown): v is Array<[string, string]> | null =>
  v === null ||
  (Array.isArray(v) &&
    v.every((p) => Array.isArray(p) && p.length === 2 && p.every((s) => typeof s === "string")));

/** The vectors, from the one ```json block of the document, checked for shape. */
function vectorsFromDoc(): Vector[] {
  const blocks = [...DOC.matchAll(/^```json\n([\s\S]*?)^```$/gm)];
  expect(blocks).toHaveLength(1);
  const parsed: unknown = JSON.parse(blocks[0]?.[1] ?? "");
  if (!Array.isArray(parsed)) throw new Error("the json block must hold an array");
  return parsed.map((raw: unknown) => {
    if (!isRecord(raw) || !isRecord(raw.expected)) throw new Error("a vector must be an object");
    const e = raw.expected;
    return {
      name: field(raw, "name", isString),
      key_id: field(raw, "key_id", isString),
      key_version: field(raw, "key_version", isNumber),
      key_material_hex: field(raw, "key_material_hex", isHex),
      randomness_hex: field(raw, "randomness_hex", isHex),
      plaintext_utf8: field(raw, "plaintext_utf8", isString),
      plaintext_hex: field(raw, "plaintext_hex", isHex),
      context: field(raw, "context", isPairs),
      additional_authenticated_data_hex: field(
        raw,
        "additional_authenticated_data_hex",
        isHexOrNull,
      ),
      expected: {
        header_hex: field(e, "header_hex", isHex),
        kdf_input_hex: field(e, "kdf_input_hex", isHex),
        message_key_hex: field(e, "message_key_hex", isHex),
        context_encoding_hex: field(e, "context_encoding_hex", isHexOrNull),
        gcm_aad_hex: field(e, "gcm_aad_hex", isHex),
        ciphertext_hex: field(e, "ciphertext_hex", isHex),
        ciphertext_base64: field(e, "ciphertext_base64", isString),
      },
    };
  });
}

// ---------------------------------------------------------------------------
// An independent implementation, written from the document's prose only: no
// import from src/, no node:crypto, no Buffer. Where it agrees with
// sealCiphertext on every intermediate value, the prose is precise enough.

const utf8 = new TextEncoder();

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function u32be(value: number): Uint8Array {
  return Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

/** Unsigned lexicographic order; a prefix sorts first. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function docEncodeContext(pairs: ReadonlyArray<readonly [string, string]>): Uint8Array {
  const encoded = pairs
    .map(([k, v]) => [utf8.encode(k), utf8.encode(v)] as const)
    .sort((x, y) => compareBytes(x[0], y[0]));
  return concat(
    u32be(encoded.length),
    ...encoded.flatMap(([k, v]) => [u32be(k.length), k, u32be(v.length), v]),
  );
}

function docUuidBytes(uuid: string): Uint8Array {
  expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  return fromHex(uuid.replaceAll("-", ""));
}

function base64(bytes: Uint8Array): string {
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
}

interface DocSeal {
  header: Uint8Array;
  kdfInput: Uint8Array;
  messageKey: Uint8Array;
  contextEncoding: Uint8Array | null;
  gcmAad: Uint8Array;
  ciphertext: Uint8Array;
}

async function docSeal(v: Vector): Promise<DocSeal> {
  const subtle = globalThis.crypto.subtle;
  const randomness = fromHex(v.randomness_hex);
  const aad =
    v.additional_authenticated_data_hex === null
      ? null
      : fromHex(v.additional_authenticated_data_hex);
  const withContext = v.context !== null && v.context.length > 0;
  const withAad = aad !== null && aad.length > 0;
  const flags = (withContext ? 0x01 : 0) | (withAad ? 0x02 : 0);
  const header = concat(
    Uint8Array.of(1, flags),
    docUuidBytes(v.key_id),
    u32be(v.key_version),
    randomness,
  );
  const kdfInput = concat(
    u32be(1),
    utf8.encode("kmsd message key v1"),
    Uint8Array.of(0),
    header.subarray(0, 38),
    u32be(256),
  );
  const hmacKey = await subtle.importKey(
    "raw",
    fromHex(v.key_material_hex),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const messageKey = new Uint8Array(await subtle.sign("HMAC", hmacKey, kdfInput));
  const contextEncoding = withContext && v.context !== null ? docEncodeContext(v.context) : null;
  const gcmAad = concat(
    header,
    ...(contextEncoding === null ? [] : [contextEncoding]),
    ...(withAad ? [u32be(aad.length), aad] : []),
  );
  const aesKey = await subtle.importKey("raw", messageKey, "AES-GCM", false, ["encrypt"]);
  const sealed = await subtle.encrypt(
    { name: "AES-GCM", iv: header.subarray(38, 50), additionalData: gcmAad, tagLength: 128 },
    aesKey,
    utf8.encode(v.plaintext_utf8),
  );
  return {
    header,
    kdfInput,
    messageKey,
    contextEncoding,
    gcmAad,
    ciphertext: concat(header, new Uint8Array(sealed)),
  };
}

async function docOpen(
  v: Vector,
  ciphertext: Uint8Array,
  messageKey: Uint8Array,
  gcmAad: Uint8Array,
) {
  const aesKey = await globalThis.crypto.subtle.importKey("raw", messageKey, "AES-GCM", false, [
    "decrypt",
  ]);
  const plaintext = await globalThis.crypto.subtle.decrypt(
    { name: "AES-GCM", iv: ciphertext.subarray(38, 50), additionalData: gcmAad, tagLength: 128 },
    aesKey,
    ciphertext.subarray(50),
  );
  expect(toHex(new Uint8Array(plaintext)), v.name).toBe(v.plaintext_hex);
}

// ---------------------------------------------------------------------------

/** The material as a KeyObject, or as the plain bytes kmsd's key cache holds. */
type MaterialForm = "key-object" | "bytes";

function sealVector(
  v: Vector,
  context: Record<string, string> | undefined,
  aad: Uint8Array | undefined,
  form: MaterialForm = "key-object",
): Buffer {
  const material = Buffer.from(v.key_material_hex, "hex");
  return sealCiphertext({
    keyId: v.key_id,
    keyVersion: v.key_version,
    versionKey: form === "bytes" ? material : createSecretKey(material),
    plaintext: Buffer.from(v.plaintext_utf8, "utf8"),
    ...(context === undefined ? {} : { context }),
    ...(aad === undefined ? {} : { aad }),
    randomness: Buffer.from(v.randomness_hex, "hex"),
  });
}

function contextOf(pairs: ReadonlyArray<readonly [string, string]>): Record<string, string> {
  const context: Record<string, string> = {};
  for (const [k, v] of pairs) context[k] = v;
  return context;
}

const vectors = vectorsFromDoc();

describe("docs/ciphertext-format.md test vectors", () => {
  it("has the four kinds of vector the specification promises", () => {
    expect(vectors.length).toBeGreaterThanOrEqual(4);
    expect(new Set(vectors.map((v) => v.name)).size).toBe(vectors.length);
    const kinds = vectors.map((v) => ({
      context: v.context?.length ?? 0,
      aad: v.additional_authenticated_data_hex !== null,
      nonAscii: /[\u0080-\u{10ffff}]/u.test(JSON.stringify(v.context) + v.plaintext_utf8),
    }));
    expect(kinds.some((k) => k.context === 0 && !k.aad)).toBe(true);
    expect(kinds.some((k) => k.context > 1 && !k.nonAscii)).toBe(true);
    expect(kinds.some((k) => k.context > 1 && k.nonAscii)).toBe(true);
    expect(kinds.some((k) => k.context > 0 && k.aad)).toBe(true);
    // "Given in non-sorted order" must actually be unsorted, by bytes and by UTF-16.
    const unsorted = vectors.filter((v) => {
      const keys = (v.context ?? []).map(([k]) => k);
      const byBytes = [...keys].sort((a, b) => compareBytes(utf8.encode(a), utf8.encode(b)));
      return keys.length > 1 && keys.join("\0") !== byBytes.join("\0");
    });
    expect(unsorted.length).toBeGreaterThanOrEqual(2);
  });

  for (const v of vectors) {
    describe(v.name, () => {
      const aad =
        v.additional_authenticated_data_hex === null
          ? undefined
          : Buffer.from(v.additional_authenticated_data_hex, "hex");
      const context = v.context === null ? undefined : contextOf(v.context);

      it("has well-formed inputs", () => {
        expect(v.key_material_hex).toHaveLength(64);
        expect(v.randomness_hex).toHaveLength(2 * RANDOMNESS_LENGTH);
        expect(toHex(utf8.encode(v.plaintext_utf8))).toBe(v.plaintext_hex);
        expect(base64(fromHex(v.expected.ciphertext_hex))).toBe(v.expected.ciphertext_base64);
      });

      it.each<MaterialForm>(["key-object", "bytes"])(
        "sealCiphertext produces exactly the expected bytes (material as %s)",
        (form) => {
          const sealed = sealVector(v, context, aad, form);
          expect(sealed.toString("hex")).toBe(v.expected.ciphertext_hex);
          expect(sealed.toString("base64")).toBe(v.expected.ciphertext_base64);
          expect(sealed.subarray(0, 50).toString("hex")).toBe(v.expected.header_hex);
        },
      );

      it("sealCiphertext's output does not depend on the order the pairs are listed in", () => {
        if (v.context === null) {
          // An empty context or empty AAD is the same as none.
          expect(sealVector(v, {}, aad).toString("hex")).toBe(v.expected.ciphertext_hex);
          if (aad === undefined) {
            expect(sealVector(v, {}, new Uint8Array(0)).toString("hex")).toBe(
              v.expected.ciphertext_hex,
            );
          }
          return;
        }
        const reversed = contextOf([...v.context].reverse());
        expect(sealVector(v, reversed, aad).toString("hex")).toBe(v.expected.ciphertext_hex);
        expect(Buffer.from(encodeEncryptionContext(reversed)).toString("hex")).toBe(
          v.expected.context_encoding_hex,
        );
      });

      it("an implementation written from the document agrees on every value", async () => {
        const doc = await docSeal(v);
        expect(toHex(doc.header)).toBe(v.expected.header_hex);
        expect(toHex(doc.kdfInput)).toBe(v.expected.kdf_input_hex);
        expect(doc.kdfInput).toHaveLength(66);
        expect(toHex(doc.messageKey)).toBe(v.expected.message_key_hex);
        expect(doc.contextEncoding === null ? null : toHex(doc.contextEncoding)).toBe(
          v.expected.context_encoding_hex,
        );
        expect(toHex(doc.gcmAad)).toBe(v.expected.gcm_aad_hex);
        expect(toHex(doc.ciphertext)).toBe(v.expected.ciphertext_hex);
        expect(base64(doc.ciphertext)).toBe(v.expected.ciphertext_base64);
        await docOpen(
          v,
          fromHex(v.expected.ciphertext_hex),
          fromHex(v.expected.message_key_hex),
          fromHex(v.expected.gcm_aad_hex),
        );
      });

      it("kmsd's context encoder agrees with the document's", () => {
        if (context === undefined) return;
        expect(Buffer.from(encodeEncryptionContext(context)).toString("hex")).toBe(
          v.expected.context_encoding_hex,
        );
      });

      it("readCiphertextHeader and openCiphertext recover the plaintext", () => {
        const ciphertext = Buffer.from(v.expected.ciphertext_base64, "base64");
        const header = readCiphertextHeader(ciphertext);
        expect(header).toEqual({
          keyId: v.key_id,
          keyVersion: v.key_version,
          hasContext: v.context !== null && v.context.length > 0,
          hasAad: aad !== undefined && aad.length > 0,
        });
        const plaintext = openCiphertext(ciphertext, header, {
          versionKey: createSecretKey(Buffer.from(v.key_material_hex, "hex")),
          ...(context === undefined ? {} : { context }),
          ...(aad === undefined ? {} : { aad }),
        });
        expect(plaintext.toString("hex")).toBe(v.plaintext_hex);
        expect(plaintext.toString("utf8")).toBe(v.plaintext_utf8);
      });
    });
  }
});

describe("docs/ciphertext-format.md statements", () => {
  function section(title: string): string {
    const start = DOC.indexOf(`## ${title}\n`);
    expect(start, `section ${title}`).toBeGreaterThanOrEqual(0);
    const end = DOC.indexOf("\n## ", start + 1);
    return DOC.slice(start, end < 0 ? undefined : end);
  }

  it("the size table matches real ciphertexts and fits Huawei's budget", () => {
    const text = section("Size bounds");
    const overhead = /= \*\*(\d+) bytes\*\*/.exec(text)?.[1];
    expect(Number(overhead)).toBe(OVERHEAD);
    const huaweiMax = Number(/accepts `cipher_text` of \d+\.\.(\d+) characters/.exec(text)?.[1]);
    expect(huaweiMax).toBe(5648);
    const rows = [...text.matchAll(/^\| (\d+) \| (\d+) \| (\d+) \|$/gm)].map((m) =>
      m.slice(1, 4).map(Number),
    );
    expect(rows.map((r) => r[0])).toEqual([1, 4096]);
    for (const [plainBytes = 0, cipherBytes, chars] of rows) {
      const sealed = sealCiphertext({
        keyId: "0d0466b0-e727-4d9c-b35d-f84bb474a37f",
        keyVersion: 1,
        versionKey: createSecretKey(randomBytes(32)),
        plaintext: randomBytes(plainBytes),
        randomness: randomBytes(RANDOMNESS_LENGTH),
      });
      expect(sealed.length).toBe(cipherBytes);
      expect(sealed.toString("base64")).toHaveLength(chars ?? -1);
      expect(chars).toBeLessThanOrEqual(huaweiMax);
    }
  });

  it("the randomness each message needs is the stated 28 bytes", () => {
    const stated = /\*\*(\d+) fresh bytes\*\*/.exec(section("Randomness requirements"))?.[1];
    expect(Number(stated)).toBe(RANDOMNESS_LENGTH);
  });

  it("the injectivity examples are the real encodings, and differ", () => {
    const rows = [
      ...section("Encryption context encoding").matchAll(/^\| `(\{.*\})` \| `([0-9a-f ]+)` \|$/gm),
    ];
    expect(rows.length).toBeGreaterThanOrEqual(2);
    const seen = new Set<string>();
    for (const [, json = "", spaced = ""] of rows) {
      const parsed: unknown = JSON.parse(json);
      if (!isRecord(parsed)) throw new Error(`${json} is not an object`);
      const context = parsed as Record<string, string>;
      const hex = spaced.replaceAll(" ", "");
      expect(Buffer.from(encodeEncryptionContext(context)).toString("hex"), json).toBe(hex);
      expect(toHex(docEncodeContext(Object.entries(context))), json).toBe(hex);
      seen.add(hex);
    }
    expect(seen.size).toBe(rows.length);
  });
});
