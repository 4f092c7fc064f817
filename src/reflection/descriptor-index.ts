import { type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

/**
 * The file descriptors behind a set of services, found the way reflection
 * clients ask for them: by file name, by the fully qualified name of
 * anything declared in them, or by extension. It holds the services' files
 * and everything they import, transitively: kms.proto's imports include
 * buf/validate/validate.proto (from @bufbuild/protovalidate's generated
 * code) and google/api/annotations.proto, which import the well-known types.
 */
export class DescriptorIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  /** Extended message's type name → field number → the file declaring the extension. */
  private readonly extensions = new Map<string, Map<number, DescFile>>();
  private readonly encoded = new Map<DescFile, Uint8Array>();
  readonly serviceNames: readonly string[];

  constructor(services: readonly DescService[]) {
    this.serviceNames = services.map((service) => service.typeName);
    for (const service of services) this.addFile(service.file);
  }

  fileByName(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  fileContainingSymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol);
  }

  fileContainingExtension(extendee: string, fieldNumber: number): DescFile | undefined {
    return this.extensions.get(extendee)?.get(fieldNumber);
  }

  /** The extension field numbers of a message type; undefined for a type not in the index. */
  extensionNumbers(typeName: string): number[] | undefined {
    if (!this.symbols.has(typeName)) return undefined;
    return [...(this.extensions.get(typeName)?.keys() ?? [])].sort((a, b) => a - b);
  }

  /**
   * The serialized FileDescriptorProtos a client needs for `file`: the file
   * itself, always, then its imports, transitively, except those already
   * sent on this stream (`sent`, which this updates), as gRPC's own
   * reflection servers answer.
   */
  withDependencies(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<DescFile>();
    const queue = [file];
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      if (seen.has(next)) continue;
      seen.add(next);
      const name = fileName(next);
      if (out.length === 0 || !sent.has(name)) {
        sent.add(name);
        out.push(this.encode(next));
      }
      queue.push(...next.dependencies);
    }
    return out;
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file, bytes);
    }
    return bytes;
  }

  private addFile(file: DescFile): void {
    if (this.files.has(fileName(file))) return;
    this.files.set(fileName(file), file);
    for (const type of nestedTypes(file)) {
      this.symbols.set(type.typeName, file);
      switch (type.kind) {
        case "message":
          for (const field of type.fields) this.symbols.set(`${type.typeName}.${field.name}`, file);
          for (const oneof of type.oneofs) this.symbols.set(`${type.typeName}.${oneof.name}`, file);
          break;
        case "enum": {
          // Enum values are scoped like siblings of their enum, not inside it.
          const scope = type.typeName.slice(0, Math.max(0, type.typeName.lastIndexOf(".")));
          for (const value of type.values) {
            this.symbols.set(scope === "" ? value.name : `${scope}.${value.name}`, file);
          }
          break;
        }
        case "service":
          for (const method of type.methods)
            this.symbols.set(`${type.typeName}.${method.name}`, file);
          break;
        case "extension": {
          let byNumber = this.extensions.get(type.extendee.typeName);
          if (byNumber === undefined) {
            byNumber = new Map();
            this.extensions.set(type.extendee.typeName, byNumber);
          }
          byNumber.set(type.number, file);
          break;
        }
      }
    }
    for (const dependency of file.dependencies) this.addFile(dependency);
  }
}

/** The file's name as imports spell it (DescFile.name drops the .proto suffix). */
function fileName(file: DescFile): string {
  return file.proto.name;
}
