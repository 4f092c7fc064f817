// Prints a google.protobuf.FileDescriptorProto back as .proto source.
//
// The output compiles (with buf or protoc) to the same descriptor, except for
// source_code_info (comments and spans are not in a descriptor) and json_name,
// which compilers fill in for every field. Options, custom options with message
// values included, are read with protobuf-es reflection and printed as option
// assignments whose values are text-format literals.

import {
  type DescEnum,
  type DescExtension,
  type DescField,
  type DescMessage,
  fromBinary,
  getExtension,
  isFieldSet,
  type Message,
  type Registry,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";
import {
  isReflectMessage,
  protoCamelCase,
  type ReflectMessage,
  reflect,
} from "@bufbuild/protobuf/reflect";
import {
  type DescriptorProto,
  Edition,
  type EnumDescriptorProto,
  EnumOptionsSchema,
  EnumValueOptionsSchema,
  ExtensionRangeOptionsSchema,
  type FieldDescriptorProto,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
  type FileDescriptorProto,
  FileOptionsSchema,
  FieldDescriptorProto_Label as Label,
  MessageOptionsSchema,
  MethodOptionsSchema,
  OneofOptionsSchema,
  type ServiceDescriptorProto,
  ServiceOptionsSchema,
  SymbolVisibility,
  FieldDescriptorProto_Type as Type,
} from "@bufbuild/protobuf/wkt";

export interface PrintOptions {
  /**
   * Resolves custom options (extensions of the *Options messages) and the
   * names the file refers to: it must hold the file itself and its imports.
   */
  registry: Registry;
  /** Comment lines printed at the top of the file, without the leading "// ". */
  header?: string[];
}

/** Print a FileDescriptorProto as .proto source. */
export function printFile(file: FileDescriptorProto, options: PrintOptions): string {
  return new FilePrinter(file, options.registry).print(options.header ?? []);
}

/** One option assignment, `name = value`; a message literal may span lines. */
interface Opt {
  name: string;
  value: string;
}

type FieldLike = DescField | DescExtension;

type SymbolKind = "package" | "type" | "service" | "other";

const scalarNames: Partial<Record<Type, string>> = {
  [Type.DOUBLE]: "double",
  [Type.FLOAT]: "float",
  [Type.INT64]: "int64",
  [Type.UINT64]: "uint64",
  [Type.INT32]: "int32",
  [Type.FIXED64]: "fixed64",
  [Type.FIXED32]: "fixed32",
  [Type.BOOL]: "bool",
  [Type.STRING]: "string",
  [Type.BYTES]: "bytes",
  [Type.UINT32]: "uint32",
  [Type.SFIXED32]: "sfixed32",
  [Type.SFIXED64]: "sfixed64",
  [Type.SINT32]: "sint32",
  [Type.SINT64]: "sint64",
};

// A type reference must not start with one of these words, or the parser
// would read a scalar type or a statement instead.
const keywords = new Set([
  ...Object.values(scalarNames),
  ...["message", "enum", "oneof", "map", "group", "option", "reserved", "extensions", "extend"],
  ...["optional", "required", "repeated", "import", "package", "syntax", "edition", "service"],
  ...["rpc", "stream", "returns", "export", "local", "public", "weak", "to", "max"],
]);

const fieldNumberMax = 536870911; // `max` in extension and reserved ranges of messages
const enumNumberMax = 2147483647; // `max` in reserved ranges of enums
const inlineWidth = 80; // longer option lists get a line per option

class FilePrinter {
  private readonly out: string[] = [];
  private readonly symbols = new Map<string, SymbolKind>();
  private readonly syntax: string;

  constructor(
    private readonly file: FileDescriptorProto,
    private readonly registry: Registry,
  ) {
    this.syntax = file.syntax === "" ? "proto2" : file.syntax;
    this.collectSymbols();
  }

  print(header: string[]): string {
    const f = this.file;
    for (const line of header) this.line(0, `//${line === "" ? "" : ` ${line}`}`);
    this.line(0, "");
    if (this.syntax === "editions") {
      this.line(0, `edition = ${quote(Edition[f.edition].replace(/^EDITION_/, ""))};`);
    } else {
      this.line(0, `syntax = ${quote(this.syntax)};`);
    }
    this.line(0, "");
    if (f.package !== "") this.line(0, `package ${f.package};`);
    this.line(0, "");
    f.dependency.forEach((dep, i) => {
      const kind = f.publicDependency.includes(i)
        ? "public "
        : f.weakDependency.includes(i)
          ? "weak "
          : "";
      this.line(0, `import ${kind}${quote(dep)};`);
    });
    for (const dep of f.optionDependency) this.line(0, `import option ${quote(dep)};`);
    this.optionStatements(0, this.options(f.options, FileOptionsSchema, 0, f.package));
    this.declarations(0, f.messageType, f.enumType, f.extension, f.package);
    for (const s of f.service) this.service(s, f.package);
    return tidy(this.out);
  }

  // --- declarations -------------------------------------------------------

  /**
   * The messages, enums and extensions of a file or message body. Map entries
   * and proto2 groups are nested types the compiler synthesizes from a field;
   * ordinary nested messages are printed before the first such field that
   * follows them in `messages`, so that the order of nested_type holds.
   */
  private declarations(
    indent: number,
    messages: DescriptorProto[],
    enums: EnumDescriptorProto[],
    extensions: FieldDescriptorProto[],
    scope: string,
    fields: FieldDescriptorProto[] = [],
    oneofs: DescriptorProto["oneofDecl"] = [],
  ): void {
    const synthetic = new Set<number>();
    for (const f of [...fields, ...extensions]) {
      const i = this.syntheticType(f, messages, scope);
      if (i >= 0) synthetic.add(i);
    }
    let next = 0;
    const messagesUpTo = (end: number) => {
      for (; next < end; next++) {
        const m = messages[next];
        if (m !== undefined && !synthetic.has(next)) this.message(indent, m, scope);
      }
    };
    const firstSynthetic = Math.min(messages.length, ...synthetic);
    for (const e of enums) this.enumType(indent, e, scope);
    messagesUpTo(firstSynthetic);

    const printedOneofs = new Set<number>();
    for (let i = 0; i < fields.length; ) {
      const f = fields[i] as FieldDescriptorProto;
      const oneof = realOneof(f);
      if (oneof === undefined) {
        messagesUpTo(this.syntheticType(f, messages, scope));
        this.field(indent, f, scope, messages);
        i++;
        continue;
      }
      const members: FieldDescriptorProto[] = [];
      for (; i < fields.length && realOneof(fields[i] as FieldDescriptorProto) === oneof; i++) {
        members.push(fields[i] as FieldDescriptorProto);
      }
      const decl = oneofs[oneof];
      if (decl === undefined || printedOneofs.has(oneof)) {
        throw new Error(`${scope}: the fields of oneof #${oneof} are not contiguous`);
      }
      printedOneofs.add(oneof);
      for (const m of members) messagesUpTo(this.syntheticType(m, messages, scope));
      const oneofScope = join(scope, decl.name);
      this.line(0, "");
      this.line(indent, `oneof ${decl.name} {`);
      this.optionStatements(
        indent + 2,
        this.options(decl.options, OneofOptionsSchema, indent + 2, oneofScope),
      );
      for (const m of members) this.field(indent + 2, m, scope, messages);
      this.line(indent, "}");
      this.line(0, "");
    }
    messagesUpTo(messages.length);

    for (let i = 0; i < extensions.length; ) {
      const extendee = (extensions[i] as FieldDescriptorProto).extendee;
      this.line(0, "");
      this.line(indent, `extend ${this.typeRef(extendee, scope)} {`);
      for (; i < extensions.length && extensions[i]?.extendee === extendee; i++) {
        this.field(indent + 2, extensions[i] as FieldDescriptorProto, scope, messages);
      }
      this.line(indent, "}");
      this.line(0, "");
    }
  }

  private message(indent: number, m: DescriptorProto, scope: string): void {
    this.line(0, "");
    this.line(indent, `${visibility(m.visibility)}message ${m.name} {`);
    this.messageBody(indent + 2, m, join(scope, m.name));
    this.line(indent, "}");
    this.line(0, "");
  }

  private messageBody(indent: number, m: DescriptorProto, scope: string): void {
    this.optionStatements(indent, this.options(m.options, MessageOptionsSchema, indent, scope));
    this.declarations(indent, m.nestedType, m.enumType, m.extension, scope, m.field, m.oneofDecl);
    for (const r of m.extensionRange) {
      const opts = this.options(r.options, ExtensionRangeOptionsSchema, indent, scope);
      const ranges = range(r.start, r.end - 1, fieldNumberMax);
      this.line(0, "");
      this.line(indent, `extensions ${ranges}${bracket(opts, indent)};`);
    }
    this.reserved(indent, m.reservedRange, m.reservedName, 1, fieldNumberMax);
  }

  private enumType(indent: number, e: EnumDescriptorProto, scope: string): void {
    const name = join(scope, e.name);
    this.line(0, "");
    this.line(indent, `${visibility(e.visibility)}enum ${e.name} {`);
    this.optionStatements(indent + 2, this.options(e.options, EnumOptionsSchema, indent + 2, name));
    for (const v of e.value) {
      const opts = this.options(v.options, EnumValueOptionsSchema, indent + 2, name);
      this.line(indent + 2, `${v.name} = ${v.number}${bracket(opts, indent + 2)};`);
    }
    this.reserved(indent + 2, e.reservedRange, e.reservedName, 0, enumNumberMax);
    this.line(indent, "}");
    this.line(0, "");
  }

  private service(s: ServiceDescriptorProto, scope: string): void {
    const name = join(scope, s.name);
    this.line(0, "");
    this.line(0, `service ${s.name} {`);
    this.optionStatements(2, this.options(s.options, ServiceOptionsSchema, 2, name));
    for (const m of s.method) {
      const input = `${m.clientStreaming ? "stream " : ""}${this.typeRef(m.inputType, name)}`;
      const output = `${m.serverStreaming ? "stream " : ""}${this.typeRef(m.outputType, name)}`;
      const opts = this.options(m.options, MethodOptionsSchema, 4, join(name, m.name));
      const head = `rpc ${m.name}(${input}) returns (${output})`;
      if (m.options === undefined) {
        this.line(2, `${head};`);
      } else if (opts.length === 0) {
        this.line(2, `${head} {}`); // compilers set empty options for an empty body
      } else {
        this.line(2, `${head} {`);
        this.optionStatements(4, opts);
        this.line(2, "}");
      }
    }
    this.line(0, "}");
  }

  /** A field or extension; `siblings` are the nested types of its scope. */
  private field(
    indent: number,
    f: FieldDescriptorProto,
    scope: string,
    siblings: DescriptorProto[],
  ): void {
    const opts: Opt[] = [];
    if (isFieldSet(f, FieldDescriptorProtoSchema.field.defaultValue)) {
      opts.push({ name: "default", value: defaultValue(f) });
    }
    // Compilers set json_name on every field; only a custom one is written.
    // Extensions cannot have a json_name option.
    const jsonName = isFieldSet(f, FieldDescriptorProtoSchema.field.jsonName) ? f.jsonName : "";
    if (jsonName !== "" && f.extendee === "" && jsonName !== protoCamelCase(f.name)) {
      opts.push({ name: "json_name", value: quote(f.jsonName) });
    }
    opts.push(...this.options(f.options, FieldOptionsSchema, indent, join(scope, f.name)));
    const tail = `${f.name} = ${f.number}${bracket(opts, indent)}`;

    const synthetic = siblings[this.syntheticType(f, siblings, scope)];
    if (synthetic?.options?.mapEntry) {
      const entryScope = join(scope, synthetic.name);
      const [key, value] = synthetic.field;
      if (key === undefined || value === undefined) throw new Error(`bad map entry ${entryScope}`);
      const kv = `${this.fieldType(key, entryScope)}, ${this.fieldType(value, entryScope)}`;
      this.line(indent, `map<${kv}> ${tail};`);
      return;
    }
    let label = "";
    if (f.label === Label.REPEATED) label = "repeated ";
    else if (f.label === Label.REQUIRED) label = "required ";
    else if (this.syntax === "proto2" ? !inOneof(f) : f.proto3Optional) label = "optional ";
    if (synthetic !== undefined) {
      const groupTail = `${synthetic.name} = ${f.number}${bracket(opts, indent)}`;
      this.line(indent, `${label}group ${groupTail} {`);
      this.messageBody(indent + 2, synthetic, join(scope, synthetic.name));
      this.line(indent, "}");
      return;
    }
    this.line(indent, `${label}${this.fieldType(f, scope)} ${tail};`);
  }

  private fieldType(f: FieldDescriptorProto, scope: string): string {
    return scalarNames[f.type] ?? this.typeRef(f.typeName, scope);
  }

  /** Index in `siblings` of the map entry or proto2 group that `f` declares, or -1. */
  private syntheticType(f: FieldDescriptorProto, siblings: DescriptorProto[], scope: string) {
    const i = siblings.findIndex((t) => `.${join(scope, t.name)}` === f.typeName);
    const t = siblings[i];
    if (t === undefined) return -1;
    const isMap = t.options?.mapEntry === true && f.label === Label.REPEATED;
    const isGroup = f.type === Type.GROUP && this.syntax === "proto2";
    return isMap || isGroup ? i : -1;
  }

  private reserved(
    indent: number,
    ranges: { start: number; end: number }[],
    names: string[],
    endIsExclusive: 0 | 1,
    max: number,
  ): void {
    this.line(0, "");
    if (ranges.length > 0) {
      const list = ranges.map((r) => range(r.start, r.end - endIsExclusive, max));
      this.line(indent, `reserved ${list.join(", ")};`);
    }
    if (names.length > 0) {
      // Editions write reserved names as identifiers, older syntaxes as strings.
      const list = names.map((n) => (this.syntax === "editions" ? n : quote(n)));
      this.line(indent, `reserved ${list.join(", ")};`);
    }
  }

  // --- options --------------------------------------------------------------

  /**
   * The options set on an *Options message: its own fields in field-number
   * order, then custom options in the order their extension fields first
   * appear on the wire. A message value is expanded into one assignment per
   * set subfield, and a repeated field into one assignment per element, as in
   * `(buf.validate.predefined).cel = {...}` for each CEL rule.
   */
  private options(
    msg: Message | undefined,
    schema: DescMessage,
    indent: number,
    scope: string,
  ): Opt[] {
    const opts: Opt[] = [];
    if (msg === undefined) return opts;
    // Options the registry's descriptor.proto knows, but protobuf-es's copy
    // does not, are unknown fields of msg: parse them with the former.
    const desc = this.registry.getMessage(schema.typeName) ?? schema;
    const r = reflect(desc, desc === schema ? msg : fromBinary(desc, toBinary(schema, msg)));
    for (const f of r.sortedFields) {
      if (!r.isSet(f)) continue;
      if (f.name === "uninterpreted_option") {
        throw new Error(`${scope}: ${desc.typeName} has uninterpreted options`);
      }
      this.assign(opts, f.name, f, r.get(f), indent);
    }
    for (const [ext, value] of this.extensionsOf(r)) {
      this.assign(opts, `(${this.optionRef(ext, scope)})`, ext, value, indent);
    }
    return opts;
  }

  private assign(opts: Opt[], name: string, f: FieldLike, v: unknown, indent: number): void {
    switch (f.fieldKind) {
      case "list":
        for (const item of v as Iterable<unknown>) {
          opts.push({ name, value: this.value(f, item, indent) });
        }
        return;
      case "map":
        for (const [key, val] of v as ReadonlyMap<unknown, unknown>) {
          opts.push({ name, value: this.mapEntryLiteral(f, key, val, indent) });
        }
        return;
      case "message": {
        const sub = asReflect(f.message, v);
        const before = opts.length;
        for (const sf of sub.fields) {
          if (sub.isSet(sf)) this.assign(opts, `${name}.${sf.name}`, sf, sub.get(sf), indent);
        }
        for (const [ext, value] of this.extensionsOf(sub)) {
          this.assign(opts, `${name}.(${ext.typeName})`, ext, value, indent);
        }
        if (opts.length === before) opts.push({ name, value: "{}" });
        return;
      }
      default:
        opts.push({ name, value: this.value(f, v, indent) });
    }
  }

  /** The extensions set on a message; protobuf-es keeps them as unknown fields. */
  private extensionsOf(r: ReflectMessage): [DescExtension, unknown][] {
    const numbers = new Set((r.getUnknown() ?? []).map((u) => u.no));
    return [...numbers].map((no) => {
      const ext = this.registry.getExtensionFor(r.desc, no);
      if (ext === undefined) {
        throw new Error(`${r.desc.typeName} has field ${no}, which is no known extension`);
      }
      return [ext, getExtension(r.message as Parameters<typeof getExtension>[0], ext)];
    });
  }

  private optionStatements(indent: number, opts: Opt[]): void {
    if (opts.length === 0) return;
    this.line(0, "");
    for (const o of opts) this.line(indent, `option ${o.name} = ${o.value};`);
    this.line(0, "");
  }

  // --- text format ------------------------------------------------------------

  /** A value in text format, for a statement indented by `indent`. */
  private value(f: FieldLike, v: unknown, indent: number): string {
    if (f.message !== undefined) return this.messageLiteral(asReflect(f.message, v), indent);
    if (f.enum !== undefined) return enumText(f.enum, v);
    return scalarText(f.scalar ?? ScalarType.STRING, v);
  }

  private mapEntryLiteral(f: FieldLike, key: unknown, val: unknown, indent: number): string {
    if (f.fieldKind !== "map") throw new Error(`${f.name} is not a map`);
    const pad = " ".repeat(indent + 2);
    let v: string;
    if (f.mapKind === "message") v = this.messageLiteral(asReflect(f.message, val), indent + 2);
    else if (f.mapKind === "enum") v = enumText(f.enum, val);
    else v = scalarText(f.scalar, val);
    const k = scalarText(f.mapKey, key);
    return `{\n${pad}key: ${k}\n${pad}value: ${v}\n${" ".repeat(indent)}}`;
  }

  /** A message literal `{...}`, its closing brace indented by `indent`. */
  private messageLiteral(r: ReflectMessage, indent: number): string {
    const pad = " ".repeat(indent + 2);
    const lines: string[] = [];
    const add = (name: string, f: FieldLike, v: unknown) => {
      const values = f.fieldKind === "list" ? [...(v as Iterable<unknown>)] : [v];
      for (const item of values) lines.push(`${pad}${name}: ${this.value(f, item, indent + 2)}`);
    };
    for (const f of r.fields) {
      if (!r.isSet(f)) continue;
      // The text format names groups (and group-like fields) after their type.
      const name = f.message !== undefined && isGroupLike(f) ? f.message.name : f.name;
      if (f.fieldKind === "map") {
        for (const [key, val] of r.get(f)) {
          lines.push(`${pad}${name}: ${this.mapEntryLiteral(f, key, val, indent + 2)}`);
        }
      } else {
        add(name, f, r.get(f));
      }
    }
    for (const [ext, value] of this.extensionsOf(r)) add(`[${ext.typeName}]`, ext, value);
    return lines.length === 0 ? "{}" : `{\n${lines.join("\n")}\n${" ".repeat(indent)}}`;
  }

  // --- names ----------------------------------------------------------------

  /** The shortest name that resolves to `typeName` (".a.b.C") from `scope`. */
  private typeRef(typeName: string, scope: string): string {
    const full = typeName.replace(/^\./, "");
    const parts = full.split(".");
    for (let i = parts.length - 1; i >= 0; i--) {
      const candidate = parts.slice(i).join(".");
      if (keywords.has(parts[i] as string)) continue;
      if (this.resolve(candidate, scope, true) === full) return candidate;
    }
    return `.${full}`;
  }

  /**
   * Custom options are named fully qualified, e.g. `(buf.validate.field)`, with
   * a leading dot if a nearer symbol shadows the first component.
   */
  private optionRef(ext: DescExtension, scope: string): string {
    const resolved = this.resolve(ext.typeName, scope, false);
    return resolved === ext.typeName ? ext.typeName : `.${ext.typeName}`;
  }

  /**
   * Resolve a name from a scope like protoc does: look its first component up
   * in the scope and then each enclosing one. For a dotted name the match must
   * be a package or a type; for a type reference it must be a type.
   */
  private resolve(name: string, scope: string, typesOnly: boolean): string | undefined {
    const first = name.split(".")[0] as string;
    const dotted = name.includes(".");
    for (let s = scope; ; s = parentScope(s)) {
      const kind = this.symbols.get(join(s, first));
      const ok = kind !== undefined && (dotted ? kind !== "other" : !typesOnly || kind === "type");
      if (ok) return join(s, name);
      if (s === "") return undefined;
    }
  }

  private collectSymbols(): void {
    const add = (name: string, kind: SymbolKind) => {
      if (kind !== "other" || !this.symbols.has(name)) this.symbols.set(name, kind);
    };
    const addPackage = (pkg: string) => {
      for (let s = pkg; s !== ""; s = parentScope(s)) add(s, "package");
    };
    for (const t of this.registry) {
      addPackage(t.file.proto.package);
      add(t.typeName, t.kind === "service" ? "service" : t.kind === "extension" ? "other" : "type");
      const members =
        t.kind === "message" ? [...t.fields, ...t.oneofs] : t.kind === "service" ? t.methods : [];
      for (const m of members) add(join(t.typeName, m.name), "other");
      if (t.kind === "enum")
        for (const v of t.values) add(join(parentScope(t.typeName), v.name), "other");
    }
    // The file itself, in case the registry lacks it.
    addPackage(this.file.package);
    const addEnum = (e: EnumDescriptorProto, scope: string) => {
      add(join(scope, e.name), "type");
      for (const v of e.value) add(join(scope, v.name), "other");
    };
    const addMessage = (m: DescriptorProto, scope: string) => {
      const name = join(scope, m.name);
      add(name, "type");
      for (const f of [...m.field, ...m.extension, ...m.oneofDecl])
        add(join(name, f.name), "other");
      for (const n of m.nestedType) addMessage(n, name);
      for (const e of m.enumType) addEnum(e, name);
    };
    const pkg = this.file.package;
    for (const m of this.file.messageType) addMessage(m, pkg);
    for (const e of this.file.enumType) addEnum(e, pkg);
    for (const x of this.file.extension) add(join(pkg, x.name), "other");
    for (const s of this.file.service) add(join(pkg, s.name), "service");
  }

  private line(indent: number, text: string): void {
    this.out.push(text === "" ? "" : " ".repeat(indent) + text);
  }
}

/** Join lines, dropping blank lines at block edges and runs of them. */
function tidy(lines: string[]): string {
  const kept: string[] = [];
  for (const [i, l] of lines.entries()) {
    if (kept[kept.length - 1]?.endsWith("{") && l.trim() === "}") {
      kept.push(`${kept.pop()}}`); // an empty block: `{}`
      continue;
    }
    if (l === "") {
      const prev = kept[kept.length - 1];
      const next = lines.slice(i + 1).find((x) => x !== "");
      if (prev === undefined || prev === "" || prev.endsWith("{")) continue;
      if (next === undefined || next.trimStart().startsWith("}")) continue;
    }
    kept.push(l);
  }
  return `${kept.join("\n")}\n`;
}

function join(scope: string, name: string): string {
  return scope === "" ? name : `${scope}.${name}`;
}

function parentScope(name: string): string {
  const i = name.lastIndexOf(".");
  return i < 0 ? "" : name.slice(0, i);
}

function inOneof(f: FieldDescriptorProto): boolean {
  return isFieldSet(f, FieldDescriptorProtoSchema.field.oneofIndex);
}

/** The index of the oneof declared in source that `f` belongs to (not a proto3 optional's). */
function realOneof(f: FieldDescriptorProto): number | undefined {
  return inOneof(f) && !f.proto3Optional ? f.oneofIndex : undefined;
}

function asReflect(desc: DescMessage, v: unknown): ReflectMessage {
  return isReflectMessage(v) ? v : reflect(desc, v as Message);
}

/** ` [a = 1, b = 2]`, or a list of lines if that is too long or has literals. */
function bracket(opts: Opt[], indent: number): string {
  if (opts.length === 0) return "";
  const parts = opts.map((o) => `${o.name} = ${o.value}`);
  const inline = ` [${parts.join(", ")}]`;
  if (!inline.includes("\n") && indent + inline.length <= inlineWidth) return inline;
  if (parts.length === 1) return inline; // a single literal reads well attached to the field
  // Re-indent the literals by two for the deeper nesting.
  const pad = " ".repeat(indent + 2);
  const body = parts.map((p) => pad + p.replaceAll("\n", "\n  ")).join(",\n");
  return ` [\n${body}\n${" ".repeat(indent)}]`;
}

function range(start: number, end: number, max: number): string {
  if (start === end) return `${start}`;
  return `${start} to ${end === max ? "max" : end}`;
}

function visibility(v: SymbolVisibility): string {
  if (v === SymbolVisibility.VISIBILITY_EXPORT) return "export ";
  if (v === SymbolVisibility.VISIBILITY_LOCAL) return "local ";
  return "";
}

/** A proto2 group, or a delimited editions field that looks like one. */
function isGroupLike(f: DescField & { message: DescMessage }): boolean {
  return f.delimitedEncoding && f.name === f.message.name.toLowerCase();
}

function defaultValue(f: FieldDescriptorProto): string {
  switch (f.type) {
    case Type.STRING:
      return quote(f.defaultValue);
    case Type.BYTES:
      return `"${f.defaultValue}"`; // the descriptor holds it C-escaped already
    default:
      return f.defaultValue; // numbers, true/false, inf/-inf/nan, enum value names
  }
}

function enumText(e: DescEnum, v: unknown): string {
  return e.values.find((x) => x.number === v)?.name ?? String(v);
}

function scalarText(type: ScalarType, v: unknown): string {
  switch (type) {
    case ScalarType.STRING:
      return quote(v as string);
    case ScalarType.BYTES:
      return quoteBytes(v as Uint8Array);
    case ScalarType.BOOL:
      return v ? "true" : "false";
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      return floatText(v as number, type === ScalarType.FLOAT);
    default:
      return String(v); // integers, 64-bit ones as bigint or string
  }
}

function floatText(v: number, float32: boolean): string {
  if (Number.isNaN(v)) return "nan";
  if (v === Number.POSITIVE_INFINITY) return "inf";
  if (v === Number.NEGATIVE_INFINITY) return "-inf";
  if (Object.is(v, -0)) return "-0";
  if (float32) {
    // The shortest decimal that reads back as the same float32.
    for (let p = 1; p < 9; p++) {
      const s = Number(v.toPrecision(p));
      if (Math.fround(s) === v) return String(s);
    }
  }
  return String(v);
}

const escapes: Record<string, string> = {
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  '"': '\\"',
  "\\": "\\\\",
};

/** A double-quoted string literal; text other than ASCII controls stays as is (UTF-8). */
export function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    out += escapes[ch] ?? (c < 0x20 || c === 0x7f ? octal(c) : ch);
  }
  return `${out}"`;
}

/** A double-quoted bytes literal: printable ASCII as is, other bytes escaped. */
function quoteBytes(b: Uint8Array): string {
  let out = '"';
  for (const c of b) {
    const ch = String.fromCharCode(c);
    out += escapes[ch] ?? (c < 0x20 || c >= 0x7f ? octal(c) : ch);
  }
  return `${out}"`;
}

function octal(c: number): string {
  return `\\${c.toString(8).padStart(3, "0")}`;
}
