import type { DescMethod, DescMethodUnary, DescService } from "@bufbuild/protobuf";

/** The unary RPCs of the given services by their path, /package.Service/Method. */
export class RpcRoutes {
  private readonly byPath = new Map<string, DescMethodUnary>();

  constructor(services: readonly DescService[]) {
    for (const service of services) {
      for (const method of service.methods) {
        if (isUnary(method)) this.byPath.set(`/${service.typeName}/${method.name}`, method);
      }
    }
  }

  /** The method a request path names; the query string, if any, is ignored. */
  get(target: string): DescMethodUnary | undefined {
    const question = target.indexOf("?");
    return this.byPath.get(question < 0 ? target : target.slice(0, question));
  }
}

function isUnary(method: DescMethod): method is DescMethodUnary {
  return method.methodKind === "unary";
}
