import { create, type DescMessage, type DescMethodUnary, isMessage } from "@bufbuild/protobuf";
import {
  type ContextValues,
  createHandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";

/** A unary handler of the service, as ServiceImpl declares it. */
type UnaryHandler = (request: unknown, context: ReturnType<typeof createHandlerContext>) => unknown;

export interface UnaryCall {
  readonly method: DescMethodUnary;
  readonly message: unknown;
  readonly protocolName: string;
  readonly requestMethod: string;
  readonly url: string;
  readonly requestHeader: Headers;
  readonly contextValues: ContextValues;
  readonly signal?: AbortSignal;
}

export type UnaryInvoker = (call: UnaryCall) => Promise<UnaryResponse>;

/**
 * Runs a unary RPC through the same interceptor chain Connect's own handlers
 * use, without any transport in between: the REST gateway calls the service
 * this way, so it pays no serialisation or in-process hop.
 */
export function createUnaryInvoker(
  service: Record<string, unknown>,
  interceptors: readonly Interceptor[],
): UnaryInvoker {
  return async (call) => {
    const { method } = call;
    const handler = service[method.localName] as UnaryHandler | undefined;
    const context = createHandlerContext({
      service: method.parent,
      method,
      protocolName: call.protocolName,
      requestMethod: call.requestMethod,
      url: call.url,
      requestHeader: call.requestHeader,
      contextValues: call.contextValues,
      ...(call.signal === undefined ? {} : { requestSignal: call.signal }),
    });
    const innermost = async (request: UnaryRequest): Promise<UnaryResponse> => {
      if (handler === undefined) throw new TypeError(`no handler for ${method.name}`);
      const output = await handler(request.message, context);
      return {
        stream: false,
        service: method.parent,
        method,
        header: context.responseHeader,
        trailer: context.responseTrailer,
        message: asMessage(method.output, output),
      };
    };
    const chain = interceptors.reduceRight<(request: UnaryRequest) => Promise<UnaryResponse>>(
      // Interceptors are typed over unary and streaming calls; this chain only carries unary ones.
      (next, interceptor) => interceptor(next as never) as never,
      innermost,
    );
    try {
      return await chain({
        stream: false,
        service: method.parent,
        method,
        requestMethod: call.requestMethod,
        url: call.url,
        signal: context.signal,
        header: call.requestHeader,
        contextValues: call.contextValues,
        message: call.message as UnaryRequest["message"],
      });
    } finally {
      context.abort();
    }
  };
}

function asMessage(schema: DescMessage, output: unknown) {
  return isMessage(output, schema) ? output : create(schema, output as never);
}
