import type { IncomingHttpHeaders } from "node:http";
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  isMessage,
  type Message,
} from "@bufbuild/protobuf";
import {
  type ContextValues,
  createContextKey,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { headersFromNode } from "./message-codec.js";

/** A unary handler of the service, as ServiceImpl declares it. */
type UnaryHandler = (request: Message, context: HandlerContext) => unknown;

export interface UnaryCall {
  readonly method: DescMethodUnary;
  readonly message: Message;
  readonly protocolName: string;
  readonly requestMethod: string;
  readonly url: string;
  /**
   * The request's headers as node parsed them (none for the CLI): Headers
   * are built from them only if an interceptor or handler asks.
   */
  readonly headers?: IncomingHttpHeaders | undefined;
  readonly contextValues: ContextValues;
  /** Epoch ms by which the call must finish (the client's deadline), if any. */
  readonly deadline?: number | undefined;
  /**
   * The client's side of the exchange: its signal, aborted when the client
   * goes away, is read only if something asks for the call's signal (a
   * signal costs an AbortController per call).
   */
  readonly client?: { readonly signal: AbortSignal | undefined } | undefined;
}

export interface UnaryResult {
  readonly message: Message;
  /** Response headers and trailers the handler or interceptors set, if any. */
  readonly header: Headers | undefined;
  readonly trailer: Headers | undefined;
}

export type UnaryInvoker = (call: UnaryCall) => Promise<UnaryResult>;

const CALL_COMPLETE = Object.freeze(new Error("the call is complete"));
const DEADLINE_EXCEEDED = Object.freeze(new Error("the deadline was exceeded"));

/**
 * What a handler and the interceptors see of a call. Everything that costs
 * to build (the AbortController behind `signal`, the Headers objects) is
 * built on first use: the service reads none of it on the hot path, and
 * building them for every request was a measurable share of each call.
 */
class CallContext implements HandlerContext {
  #controller: AbortController | undefined;
  #requestHeader: Headers | undefined;
  #responseHeader: Headers | undefined;
  #responseTrailer: Headers | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly call: UnaryCall) {}

  get method(): DescMethodUnary {
    return this.call.method;
  }
  get service(): DescService {
    return this.call.method.parent;
  }
  /** The request message as the transport decoded it. */
  get message(): Message {
    return this.call.message;
  }
  get requestMethod(): string {
    return this.call.requestMethod;
  }
  get protocolName(): string {
    return this.call.protocolName;
  }
  get url(): string {
    return this.call.url;
  }
  get values(): ContextValues {
    return this.call.contextValues;
  }
  get requestHeader(): Headers {
    const { headers } = this.call;
    this.#requestHeader ??= headers === undefined ? new Headers() : headersFromNode(headers);
    return this.#requestHeader;
  }
  get responseHeader(): Headers {
    this.#responseHeader ??= new Headers();
    return this.#responseHeader;
  }
  get responseTrailer(): Headers {
    this.#responseTrailer ??= new Headers();
    return this.#responseTrailer;
  }
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = new AbortController();
      this.#controller = controller;
      const { deadline } = this.call;
      const signal = this.call.client?.signal;
      signal?.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
      if (deadline !== undefined) {
        this.#timer = setTimeout(
          () => controller.abort(DEADLINE_EXCEEDED),
          Math.max(0, deadline - Date.now()),
        );
        this.#timer.unref();
      }
    }
    return this.#controller.signal;
  }
  readonly timeoutMs = (): number | undefined =>
    this.call.deadline === undefined ? undefined : this.call.deadline - Date.now();

  result(message: Message): UnaryResult {
    return { message, header: this.#responseHeader, trailer: this.#responseTrailer };
  }

  finish(): void {
    clearTimeout(this.#timer);
    // Handlers may hold the signal past the call; aborting tells them it is
    // over. An explicit reason spares the DOMException abort() would build.
    this.#controller?.abort(CALL_COMPLETE);
  }
}

/**
 * Runs a unary RPC through an interceptor chain of the same Interceptor
 * type Connect's own handlers use, without any transport in between: the
 * REST gateway, the unary fast paths and the CLI call the service this way.
 */
export function createUnaryInvoker(
  service: object,
  interceptors: readonly Interceptor[],
): UnaryInvoker {
  const handlers = service as Record<string, UnaryHandler | undefined>;
  // One chain per method, built on its first call: building it per request
  // cost a closure per interceptor per call. The call's own context reaches
  // the innermost function through contextValues, which every interceptor
  // passes on.
  const chains = new Map<DescMethodUnary, UnaryNext>();
  const chainFor = (method: DescMethodUnary): UnaryNext => {
    let chain = chains.get(method);
    if (chain === undefined) {
      const handler = handlers[method.localName];
      if (handler === undefined) throw new TypeError(`no handler for ${method.name}`);
      const innermost = async (request: UnaryRequest): Promise<UnaryResponse> => {
        const context = request.contextValues.get(callContextKey);
        if (context === undefined) throw new TypeError("an interceptor dropped the call's context");
        return new InvokerResponse(
          context,
          asMessage(method.output, await handler(request.message, context)),
        );
      };
      chain = interceptors.reduceRight<UnaryNext>(
        // An Interceptor wraps unary and streaming calls alike; this chain only
        // ever carries unary ones, so its functions are narrowed to them.
        (next, interceptor) => interceptor(next as never) as never,
        innermost,
      );
      chains.set(method, chain);
    }
    return chain;
  };
  return async (call) => {
    const { method } = call;
    const chain = chainFor(method);
    const context = new CallContext(call);
    call.contextValues.set(callContextKey, context);
    try {
      const response = await chain(new InvokerRequest(context));
      return context.result(response.message);
    } finally {
      context.finish();
    }
  };
}

type UnaryNext = (request: UnaryRequest) => Promise<UnaryResponse>;

/*
 * The request and response the chain passes along. Classes, not object
 * literals with getters: a literal's getters are new closures for every
 * call, and every request makes one of each.
 */

class InvokerRequest implements UnaryRequest {
  readonly stream = false;
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly requestMethod: string;
  readonly url: string;
  readonly contextValues: ContextValues;
  readonly message: Message;
  readonly #context: CallContext;

  constructor(context: CallContext) {
    this.#context = context;
    this.service = context.service;
    this.method = context.method;
    this.requestMethod = context.requestMethod;
    this.url = context.url;
    this.contextValues = context.values;
    this.message = context.message;
  }

  get signal(): AbortSignal {
    return this.#context.signal;
  }
  get header(): Headers {
    return this.#context.requestHeader;
  }
}

class InvokerResponse implements UnaryResponse {
  readonly stream = false;
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly message: Message;
  readonly #context: CallContext;

  constructor(context: CallContext, message: Message) {
    this.#context = context;
    this.service = context.service;
    this.method = context.method;
    this.message = message;
  }

  get header(): Headers {
    return this.#context.responseHeader;
  }
  get trailer(): Headers {
    return this.#context.responseTrailer;
  }
}

const callContextKey = createContextKey<CallContext | undefined>(undefined, {
  description: "the unary invoker's call context",
});

function asMessage(schema: DescMessage, output: unknown): Message {
  return isMessage(output, schema) ? output : create(schema, output as never);
}
