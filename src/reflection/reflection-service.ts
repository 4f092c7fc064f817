import { create, type Message } from "@bufbuild/protobuf";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { DescriptorIndex } from "./descriptor-index.js";

/** A reflection request, as v1 and v1alpha (the same messages in two packages) both shape it. */
interface ReflectionRequest {
  readonly messageRequest:
    | {
        readonly case:
          | "fileByFilename"
          | "fileContainingSymbol"
          | "allExtensionNumbersOfType"
          | "listServices";
        readonly value: string;
      }
    | {
        readonly case: "fileContainingExtension";
        readonly value: { readonly containingType: string; readonly extensionNumber: number };
      }
    | { readonly case: undefined; readonly value?: undefined };
}

/** The answer to one request, in a shape both versions' responses take. */
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

function notFound(what: string): ReflectionAnswer {
  return {
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
  };
}

/**
 * Answers one request. `sent` holds the files already sent on this stream,
 * which are not sent again as dependencies. Unknown names are answered
 * with an error_response (NOT_FOUND) and the stream goes on, as gRPC's own
 * reflection servers do.
 */
function answer(
  index: DescriptorIndex,
  request: ReflectionRequest,
  sent: Set<string>,
): ReflectionAnswer {
  const files = (
    file: ReturnType<DescriptorIndex["fileByName"]>,
    what: string,
  ): ReflectionAnswer =>
    file === undefined
      ? notFound(what)
      : {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: index.withDependencies(file, sent) },
        };
  const { messageRequest } = request;
  switch (messageRequest.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.serviceNames.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return files(index.fileByName(messageRequest.value), `file ${messageRequest.value}`);
    case "fileContainingSymbol":
      return files(
        index.fileContainingSymbol(messageRequest.value),
        `symbol ${messageRequest.value}`,
      );
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = messageRequest.value;
      return files(
        index.fileContainingExtension(containingType, extensionNumber),
        `extension ${extensionNumber} of ${containingType}`,
      );
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(messageRequest.value);
      if (numbers === undefined) return notFound(`type ${messageRequest.value}`);
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: messageRequest.value, extensionNumber: numbers },
      };
    }
    case undefined:
      return {
        case: "errorResponse",
        value: { errorCode: Code.InvalidArgument, errorMessage: "the request asks for nothing" },
      };
  }
}

async function* answerEach<Req extends ReflectionRequest, Res extends Message>(
  index: DescriptorIndex,
  requests: AsyncIterable<Req>,
  respond: (request: Req, answer: ReflectionAnswer) => Res,
): AsyncIterable<Res> {
  const sent = new Set<string>();
  for await (const request of requests) yield respond(request, answer(index, request, sent));
}

/** grpc.reflection.v1.ServerReflection: what buf curl and grpcurl ask first. */
export function createReflectionV1(
  index: DescriptorIndex,
): ServiceImpl<typeof v1.ServerReflection> {
  return {
    serverReflectionInfo: (requests) =>
      answerEach(index, requests, (request, messageResponse) =>
        create(v1.ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse,
        }),
      ),
  };
}

/** grpc.reflection.v1alpha.ServerReflection: the same, for older clients. */
export function createReflectionV1alpha(
  index: DescriptorIndex,
): ServiceImpl<typeof v1alpha.ServerReflection> {
  return {
    serverReflectionInfo: (requests) =>
      answerEach(index, requests, (request, messageResponse) =>
        create(v1alpha.ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse,
        }),
      ),
  };
}
