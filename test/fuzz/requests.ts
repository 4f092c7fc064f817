import { gzipSync } from "node:zlib";
import { type DescMethodUnary, fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { http as httpRule } from "../../gen/google/api/annotations_pb.js";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { optionOf } from "../../src/proto/options.js";

/**
 * The requests the fuzzer sends, as fast-check arbitraries: arbitrary bytes,
 * arbitrary JSON, arbitrary paths and headers, and valid requests with
 * mutations (a field removed, of the wrong type, huge or odd; bytes
 * flipped, cut or inserted; JSON nested deeper than allowed). Each
 * protocol's case is plain data, so a failing case prints as it was sent.
 */

export type Protocol = "rest" | "connect" | "grpc";

/** An HTTP request as the fuzzer sends it. */
export interface FuzzRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
  /** The RPC the request is meant for, if any (to decode a success). */
  readonly rpc?: string | undefined;
  /** The request set a deadline of its own: a DeadlineExceeded answer is then correct. */
  readonly ownDeadline?: boolean;
}

/** What every case may use of the server: its project, a token and valid requests. */
export interface FuzzContext {
  readonly project: string;
  readonly token: string;
  /** A valid request per RPC name, in Huawei's JSON (proto field names, no project_id). */
  readonly templates: Readonly<Record<string, Record<string, unknown>>>;
}

const methods = KmsService.methods.filter((method) => method.methodKind === "unary");
const methodByName = new Map(methods.map((method) => [method.name, method as DescMethodUnary]));
export const RPC_NAMES = methods.map((method) => method.name);

export function unaryMethod(name: string): DescMethodUnary | undefined {
  return methodByName.get(name);
}

/** Percent-encodes any text, lone surrogates included (encodeURIComponent throws on those). */
export function percentEncode(text: string): string {
  return [...Buffer.from(text, "utf8")]
    .map((byte) =>
      /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(byte))
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`,
    )
    .join("");
}

/** The REST path of an RPC for a project, from its google.api.http rule. */
export function restPath(rpc: string, project: string): string {
  const method = methodByName.get(rpc);
  const rule = method === undefined ? undefined : optionOf(method, httpRule);
  const template = rule?.pattern.case === "post" ? rule.pattern.value : "/v1.0/{project_id}/kms/x";
  return template.replace("{project_id}", percentEncode(project));
}

// Headers that would change how the client frames the request, or that
// HTTP/2 forbids: the fuzzer varies content, not the client's framing.
const FRAMING_HEADERS = new Set([
  "content-length",
  "transfer-encoding",
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "upgrade",
  "expect",
  "te",
  "trailer",
  "http2-settings",
]);

const headerName = fc
  .stringMatching(/^[a-z][a-z0-9-]{0,24}$/)
  .filter((name) => !FRAMING_HEADERS.has(name));
/** Printable ASCII: what every client accepts in a header value. */
const headerValue = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)),
  maxLength: 200,
});

/** Values a server is likely to trip over. */
const ODD_STRINGS = [
  "",
  " ",
  "\u0000",
  "-1",
  "0",
  "NaN",
  "Infinity",
  "1e309",
  "99999999999999999999999",
  "0x10",
  "null",
  "true",
  "__proto__",
  "constructor",
  "\ud800",
  "😀".repeat(40),
  "é",
  "../../etc/passwd",
  "%00",
  "AQE=",
  "=".repeat(10),
  "00000000-0000-0000-0000-000000000000",
];

const oddString = fc.oneof(
  fc.constantFrom(...ODD_STRINGS),
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.base64String({ maxLength: 200 }),
);

/** A string of `length` copies of one character: bodies near and over the size limits. */
const hugeString = fc
  .tuple(
    fc.integer({ min: 1000, max: 90_000 }),
    fc.constantFrom("a", "é", "😀", "\u0000", "9", "A"),
  )
  .map(([length, char]) => char.repeat(Math.ceil(length / char.length)));

const deepValue = fc.integer({ min: 8, max: 200 }).map((depth) => {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { a: value };
  return value;
});

type Mutation =
  | { readonly kind: "remove"; readonly pick: number }
  | { readonly kind: "set"; readonly pick: number; readonly value: unknown }
  | {
      readonly kind: "add";
      readonly pick: number;
      readonly name: string;
      readonly value: unknown;
    };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("remove" as const), pick: fc.nat() }),
  fc.record({
    kind: fc.constant("set" as const),
    pick: fc.nat(),
    value: fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      oddString,
      hugeString,
      deepValue,
      fc.integer(),
      fc.double(),
    ),
  }),
  fc.record({
    kind: fc.constant("add" as const),
    pick: fc.nat(),
    name: fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom("__proto__", "project_id", "items"),
    ),
    value: fc.jsonValue({ maxDepth: 2 }),
  }),
);

type Container = Record<string, unknown> | unknown[];

/** Every object and array in a JSON value, the value itself first. */
function containers(value: unknown, found: Container[] = []): Container[] {
  if (typeof value !== "object" || value === null) return found;
  found.push(value as Container);
  for (const child of Object.values(value)) containers(child, found);
  return found;
}

function keysOf(container: Container): string[] {
  return Array.isArray(container) ? container.map((_, i) => String(i)) : Object.keys(container);
}

/** Applies mutations to a copy of a JSON object. */
export function mutateJson(
  valid: Record<string, unknown>,
  mutations: readonly Mutation[],
): unknown {
  const copy = structuredClone(valid) as Record<string, unknown>;
  for (const change of mutations) {
    const all = containers(copy);
    const target = all[change.pick % all.length] ?? copy;
    const keys = keysOf(target);
    const key = keys[change.pick % Math.max(1, keys.length)];
    const record = target as Record<string, unknown>;
    if (change.kind === "add") {
      Object.defineProperty(record, change.name, {
        value: structuredClone(change.value),
        enumerable: true,
        configurable: true,
        writable: true,
      });
    } else if (key !== undefined) {
      if (change.kind === "remove") delete record[key];
      // A copy: the generated value is fast-check's (it replays and shrinks
      // it), and a later mutation may reach into it.
      else record[key] = structuredClone(change.value);
    }
  }
  return copy;
}

type ByteMutation =
  | { readonly kind: "flip"; readonly at: number; readonly byte: number }
  | { readonly kind: "cut"; readonly at: number }
  | { readonly kind: "insert"; readonly at: number; readonly bytes: Uint8Array };

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({
    kind: fc.constant("flip" as const),
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ maxLength: 16 }),
  }),
);

export function mutateBytes(bytes: Uint8Array, mutations: readonly ByteMutation[]): Uint8Array {
  let out = Buffer.from(bytes);
  for (const change of mutations) {
    const at = out.length === 0 ? 0 : change.at % (out.length + 1);
    if (change.kind === "flip") {
      if (out.length > 0) out[at % out.length] = change.byte;
    } else if (change.kind === "cut") {
      out = out.subarray(0, at);
    } else {
      out = Buffer.concat([out.subarray(0, at), change.bytes, out.subarray(at)]);
    }
  }
  return out;
}

/** A protobuf field with any number, wire type and payload: unknown and mistyped fields. */
const rawField = fc
  .tuple(
    fc.integer({ min: 1, max: 40 }),
    fc.integer({ min: 0, max: 7 }),
    fc.uint8Array({ maxLength: 40 }),
  )
  .map(([field, wire, payload]) => {
    const tag = varint((field << 3) | wire);
    if (wire === 2) return Buffer.concat([tag, varint(payload.length), payload]);
    return Buffer.concat([tag, payload]);
  });

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value >>> 0;
  while (rest > 0x7f) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

const utf8 = (text: string) => Buffer.from(text, "utf8");

/** The request's JSON body: arbitrary, or a valid request mutated. */
function jsonBody(
  context: FuzzContext,
  rpc: string,
  withProject: boolean,
): fc.Arbitrary<Uint8Array> {
  const template = context.templates[rpc] ?? {};
  const valid = withProject ? { project_id: context.project, ...template } : template;
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc
        .array(mutation, { minLength: 0, maxLength: 3 })
        .map((m) => utf8(JSON.stringify(mutateJson(valid, m)))),
    },
    {
      weight: 2,
      arbitrary: fc.jsonValue({ maxDepth: 5 }).map((value) => utf8(JSON.stringify(value))),
    },
    {
      weight: 2,
      arbitrary: fc
        .array(byteMutation, { minLength: 1, maxLength: 4 })
        .map((m) => mutateBytes(utf8(JSON.stringify(valid)), m)),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map(utf8) },
  );
}

/** Extra headers: mostly none, sometimes arbitrary ones and odd authentication. */
const extraHeaders = fc.oneof(
  { weight: 6, arbitrary: fc.constant({}) },
  { weight: 3, arbitrary: fc.dictionary(headerName, headerValue, { maxKeys: 4 }) },
  {
    weight: 1,
    arbitrary: fc.record({
      authorization: fc.oneof(
        headerValue,
        headerValue.map(
          (value) => `SDK-HMAC-SHA256 Access=${value}, SignedHeaders=x-sdk-date, Signature=00`,
        ),
      ),
      "x-sdk-date": fc.oneof(headerValue, fc.constant("20260101T000000Z")),
    }),
  },
);

/** The credential: the valid token mostly, else a wrong one or none. */
function authHeaders(context: FuzzContext): fc.Arbitrary<Record<string, string>> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant({ "x-auth-token": context.token }) },
    { weight: 1, arbitrary: headerValue.map((value) => ({ "x-auth-token": value })) },
    { weight: 1, arbitrary: fc.constant({}) },
  );
}

const rpcName = fc.constantFrom(...RPC_NAMES);

/** Any path: web paths, arbitrary text percent-encoded, and near-misses of real ones. */
const arbitraryPath = fc.oneof(
  fc.webPath().map((path) => (path.startsWith("/") ? path : `/${path}`)),
  fc.string({ maxLength: 80 }).map((text) => `/${percentEncode(text)}`),
  fc
    .tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }))
    .map(([a, b]) => `/v1.0/${percentEncode(a)}/kms/${percentEncode(b)}`),
  fc
    .tuple(rpcName, fc.string({ maxLength: 10 }))
    .map(([rpc, suffix]) => `/kms.v1.KmsService/${rpc}${percentEncode(suffix)}`),
);

const httpMethod = fc.oneof(
  { weight: 9, arbitrary: fc.constant("POST") },
  { weight: 1, arbitrary: fc.constantFrom("GET", "PUT", "DELETE", "PATCH", "OPTIONS") },
);

/** Huawei's REST API: POST /v1.0/{project_id}/kms/<action> with a JSON body. */
export function restRequest(context: FuzzContext): fc.Arbitrary<FuzzRequest> {
  return rpcName.chain((rpc) =>
    fc.record({
      method: httpMethod,
      path: fc.oneof(
        { weight: 8, arbitrary: fc.constant(restPath(rpc, context.project)) },
        { weight: 1, arbitrary: oddString.map((project) => restPath(rpc, project)) },
        { weight: 1, arbitrary: arbitraryPath },
      ),
      headers: fc
        .tuple(
          authHeaders(context),
          extraHeaders,
          fc.constantFrom("application/json", "application/json;charset=UTF-8", "text/plain"),
        )
        .map(([auth, extra, type]) => ({ "content-type": type, ...extra, ...auth })),
      body: jsonBody(context, rpc, false),
      rpc: fc.constant(rpc),
    }),
  );
}

/** Connect's unary protocol with JSON (and now and then binary) bodies. */
export function connectRequest(context: FuzzContext): fc.Arbitrary<FuzzRequest> {
  return rpcName.chain((rpc) =>
    fc
      .record({
        method: httpMethod,
        path: fc.oneof(
          { weight: 9, arbitrary: fc.constant(`/${KmsService.typeName}/${rpc}`) },
          { weight: 1, arbitrary: arbitraryPath },
        ),
        type: fc.oneof(
          { weight: 8, arbitrary: fc.constant("application/json") },
          { weight: 1, arbitrary: fc.constant("application/proto") },
          {
            weight: 1,
            arbitrary: fc.constantFrom(
              "application/json; charset=utf-8",
              "text/plain",
              "application/grpc-web+json",
            ),
          },
        ),
        timeout: fc.option(fc.oneof(fc.constantFrom("0", "1", "-1", "abc"), fc.nat().map(String)), {
          freq: 10,
        }),
        auth: authHeaders(context),
        extra: extraHeaders,
        body: jsonBody(context, rpc, true),
        // Compressed bodies are decoded by connect-node, not kmsd's fast path.
        gzip: fc.oneof(
          { weight: 4, arbitrary: fc.constant(false) },
          { weight: 1, arbitrary: fc.constant(true) },
        ),
      })
      .map(({ method, path, type, timeout, auth, extra, body, gzip }) => ({
        method,
        path,
        headers: {
          "content-type": type,
          "connect-protocol-version": "1",
          ...(timeout === null ? {} : { "connect-timeout-ms": timeout }),
          ...(gzip ? { "content-encoding": "gzip" } : {}),
          ...extra,
          ...auth,
        },
        body: gzip ? gzipSync(body) : body,
        rpc,
        ownDeadline: timeout !== null,
      })),
  );
}

/** A valid request of the RPC in protobuf binary, after JSON-level mutations that still encode. */
function protobufMessage(context: FuzzContext, rpc: string): fc.Arbitrary<Uint8Array> {
  const method = methodByName.get(rpc);
  const valid = { project_id: context.project, ...(context.templates[rpc] ?? {}) };
  const encode = (json: unknown): Uint8Array | undefined => {
    if (method === undefined) return undefined;
    try {
      return toBinary(
        method.input,
        fromJson(method.input, json as JsonValue, { ignoreUnknownFields: true }),
      );
    } catch {
      return undefined;
    }
  };
  const validBytes = encode(valid) ?? new Uint8Array();
  return fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .array(mutation, { maxLength: 3 })
        .map((m) => encode(mutateJson(valid, m)) ?? validBytes),
    },
    {
      weight: 3,
      arbitrary: fc
        .array(byteMutation, { minLength: 1, maxLength: 4 })
        .map((m) => mutateBytes(validBytes, m)),
    },
    {
      weight: 2,
      arbitrary: fc
        .array(rawField, { maxLength: 6 })
        .map((fields) => Buffer.concat([validBytes, ...fields])),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) },
  );
}

/** gRPC's length-prefixed envelope, sometimes broken: a wrong length, a compressed flag, two messages. */
function grpcEnvelope(message: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const frame = (flag: number, length: number, payload: Uint8Array) => {
    const prefix = Buffer.alloc(5);
    prefix[0] = flag;
    prefix.writeUInt32BE(length >>> 0, 1);
    return Buffer.concat([prefix, payload]);
  };
  return fc.oneof(
    { weight: 8, arbitrary: message.map((payload) => frame(0, payload.length, payload)) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          message,
          fc.integer({ min: 0, max: 255 }),
          fc.oneof(fc.nat(), fc.constant(0xffffffff)),
        )
        .map(([payload, flag, length]) => frame(flag, length, payload)),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(message, message, fc.nat({ max: 6 }))
        .map(([a, b, cut]) =>
          Buffer.concat([frame(0, a.length, a), frame(0, b.length, b)]).subarray(cut),
        ),
    },
  );
}

/** gRPC over HTTP/2: binary protobuf in gRPC's envelope. */
export function grpcRequest(context: FuzzContext): fc.Arbitrary<FuzzRequest> {
  return rpcName.chain((rpc) =>
    fc
      .record({
        path: fc.oneof(
          { weight: 19, arbitrary: fc.constant(`/${KmsService.typeName}/${rpc}`) },
          { weight: 1, arbitrary: arbitraryPath },
        ),
        type: fc.oneof(
          { weight: 9, arbitrary: fc.constantFrom("application/grpc", "application/grpc+proto") },
          {
            weight: 1,
            arbitrary: fc.constantFrom(
              "application/grpc+json",
              // gRPC-Web over HTTP/2: connect-node's handlers, its trailers in the body.
              "application/grpc-web+proto",
              "application/grpc-web",
              "application/json",
              "text/plain",
            ),
          },
        ),
        timeout: fc.option(fc.constantFrom("1n", "1m", "100m", "5S", "0m", "99999999H", "x", "1"), {
          freq: 10,
        }),
        encoding: fc.option(fc.constantFrom("identity", "gzip", "br", "bogus"), { freq: 10 }),
        auth: authHeaders(context),
        extra: extraHeaders,
        body: grpcEnvelope(protobufMessage(context, rpc)),
      })
      .map(({ path, type, timeout, encoding, auth, extra, body }) => ({
        method: "POST",
        path,
        headers: {
          ...extra,
          "content-type": type,
          ...(timeout === null ? {} : { "grpc-timeout": timeout }),
          ...(encoding === null ? {} : { "grpc-encoding": encoding }),
          ...auth,
        },
        body,
        rpc,
        ownDeadline: timeout !== null,
      })),
  );
}

export const requestArbitrary: Record<
  Protocol,
  (context: FuzzContext) => fc.Arbitrary<FuzzRequest>
> = {
  rest: restRequest,
  connect: connectRequest,
  grpc: grpcRequest,
};
