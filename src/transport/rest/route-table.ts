import {
  type DescMethod,
  type DescMethodUnary,
  type DescService,
  getOption,
} from "@bufbuild/protobuf";
import { http } from "../../../gen/google/api/annotations_pb.js";

/** A REST route, read from a method's google.api.http annotation. */
export interface RestRoute {
  readonly method: DescMethodUnary;
  readonly httpMethod: string;
  /** The annotation's path template, e.g. /v1.0/{project_id}/kms/encrypt-data. */
  readonly template: string;
  /** The request field the body maps to: "*" for the whole message. */
  readonly body: string;
}

export type RouteMatch =
  | {
      readonly kind: "found";
      readonly route: RestRoute;
      readonly pathParams: Record<string, string>;
    }
  | { readonly kind: "method-not-allowed"; readonly allowed: readonly string[] }
  | { readonly kind: "not-found" };

interface TrieNode {
  readonly literals: Map<string, TrieNode>;
  variable?: { readonly field: string; readonly node: TrieNode };
  readonly routes: Map<string, RestRoute>;
}

function newNode(): TrieNode {
  return { literals: new Map(), routes: new Map() };
}

/**
 * The REST routes of the given services, built from their annotations so the
 * proto stays the only list of paths. Supports templates whose variables
 * each take one whole segment ({field} or {field=*}), which is all Huawei's
 * paths use; any other template is a proto bug and fails at start.
 */
export class RouteTable {
  private readonly root = newNode();
  readonly routes: RestRoute[] = [];

  constructor(services: readonly DescService[]) {
    for (const service of services) {
      for (const method of service.methods) {
        if (!isUnary(method)) continue;
        const rule = getOption(method, http);
        if (rule.pattern.case === undefined || rule.pattern.case === "custom") continue;
        this.add({
          method,
          httpMethod: rule.pattern.case.toUpperCase(),
          template: rule.pattern.value,
          body: rule.body,
        });
      }
    }
  }

  match(httpMethod: string, path: string): RouteMatch {
    const params: Record<string, string> = {};
    const node = this.walk(this.root, splitPath(path), 0, params);
    if (node === undefined || node.routes.size === 0) return { kind: "not-found" };
    const route = node.routes.get(httpMethod);
    if (route === undefined)
      return { kind: "method-not-allowed", allowed: [...node.routes.keys()] };
    return { kind: "found", route, pathParams: params };
  }

  private add(route: RestRoute): void {
    let node = this.root;
    for (const segment of splitPath(route.template)) {
      const variable = /^\{([a-z_][a-z0-9_]*)(=\*)?\}$/.exec(segment);
      if (variable?.[1] !== undefined) {
        node.variable ??= { field: variable[1], node: newNode() };
        if (node.variable.field !== variable[1]) {
          throw new Error(`${route.template}: conflicting path variable names at one position`);
        }
        node = node.variable.node;
      } else if (/[{}*]/.test(segment)) {
        throw new Error(`${route.template}: unsupported path template segment ${segment}`);
      } else {
        let child = node.literals.get(segment);
        if (child === undefined) {
          child = newNode();
          node.literals.set(segment, child);
        }
        node = child;
      }
    }
    if (node.routes.has(route.httpMethod)) {
      throw new Error(`${route.httpMethod} ${route.template} is annotated on two methods`);
    }
    node.routes.set(route.httpMethod, route);
    this.routes.push(route);
  }

  private walk(
    node: TrieNode,
    segments: readonly string[],
    index: number,
    params: Record<string, string>,
  ): TrieNode | undefined {
    const segment = segments[index];
    if (segment === undefined) return node;
    const literal = node.literals.get(segment);
    if (literal !== undefined) {
      const found = this.walk(literal, segments, index + 1, params);
      if (found !== undefined && found.routes.size > 0) return found;
    }
    if (node.variable !== undefined && segment !== "") {
      const found = this.walk(node.variable.node, segments, index + 1, params);
      if (found !== undefined && found.routes.size > 0) {
        params[node.variable.field] = decodeSegment(segment);
        return found;
      }
    }
    return undefined;
  }
}

function splitPath(path: string): string[] {
  // A leading slash gives an empty first segment; a trailing one is tolerated.
  const segments = path.split("/");
  segments.shift();
  if (segments.length > 1 && segments[segments.length - 1] === "") segments.pop();
  return segments;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    // Malformed percent-encoding: keep it raw; validation rejects it.
    return segment;
  }
}

function isUnary(method: DescMethod): method is DescMethodUnary {
  return method.methodKind === "unary";
}
