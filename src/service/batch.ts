import { create, type DescMessage, type Message } from "@bufbuild/protobuf";
import type { ConnectError, ServiceImpl } from "@connectrpc/connect";
import {
  BatchDecryptDataItemSchema,
  BatchEncryptDataItemSchema,
  DecryptDataRequestSchema,
  EncryptDataRequestSchema,
  type KmsService,
} from "../../gen/kms/v1/kms_pb.js";
import { huaweiCodeOf, toKmsError } from "../errors/kms-error.js";
import type { Logger } from "../observability/logger.js";
import type { RequestValidator } from "../validation/request-validator.js";
import type { DecryptData, EncryptData } from "./data-encryption.js";

type BatchHandlers = Pick<ServiceImpl<typeof KmsService>, "batchEncryptData" | "batchDecryptData">;

export interface BatchDeps {
  /** The same rules the validation interceptor applies to a single call. */
  readonly validator: RequestValidator;
  /** The single calls' own implementations: a batch item is exactly one call. */
  readonly encryptData: EncryptData;
  readonly decryptData: DecryptData;
  readonly logger: Logger;
}

interface ItemError {
  readonly errorCode: string;
  readonly errorMsg: string;
}

type Outcome<R> =
  | (Omit<R, "$typeName"> & { readonly reference: string })
  | {
      readonly reference: string;
      readonly error: ItemError;
    };

/** A message's fields without its type name, to initialise another type with the same fields. */
function fieldsOf<T extends { readonly $typeName?: string }>(message: T): Omit<T, "$typeName"> {
  const { $typeName, ...fields } = message;
  return fields;
}

/** A batch item's fields but its reference: the single call's fields. */
function callFields<T extends Message & { reference: string }>(item: T) {
  const { reference, ...fields } = fieldsOf(item);
  return fields;
}

/**
 * BatchEncryptData and BatchDecryptData: each item becomes the single call's
 * request (the outer project_id plus the item's fields), is validated as
 * that request and runs through the single call's code. An item's failure
 * becomes its result's error, with the code and message the single call
 * would have answered; the other items are unaffected.
 */
export function batchHandlers(deps: BatchDeps): BatchHandlers {
  const { validator, logger } = deps;

  async function runItem<R extends { readonly $typeName?: string }>(
    reference: string,
    checks: readonly (readonly [DescMessage, Message])[],
    run: () => Promise<R>,
  ): Promise<Outcome<R>> {
    let failure: ConnectError | undefined;
    for (const [schema, message] of checks) {
      failure ??= validator.check(schema, message);
    }
    if (failure === undefined) {
      try {
        return { ...fieldsOf(await run()), reference };
      } catch (reason) {
        failure = toKmsError(reason);
      }
    }
    const code = huaweiCodeOf(failure);
    if (code === "KMS.0101") {
      const cause = failure.cause instanceof Error ? failure.cause : undefined;
      logger.error(
        { cause: cause && `${cause.name}: ${cause.message}` },
        "internal error in a batch item",
      );
    }
    return { reference, error: { errorCode: code, errorMsg: failure.rawMessage } };
  }

  /** Items one after another, so results keep the request's order. */
  async function inOrder<T, R>(items: readonly T[], run: (item: T) => Promise<R>): Promise<R[]> {
    const results: R[] = [];
    for (const item of items) results.push(await run(item));
    return results;
  }

  return {
    async batchEncryptData(request) {
      const items = await inOrder(request.items, (item) => {
        const single = create(EncryptDataRequestSchema, {
          ...callFields(item),
          projectId: request.projectId,
        });
        return runItem(
          item.reference,
          [
            [BatchEncryptDataItemSchema, item],
            [EncryptDataRequestSchema, single],
          ],
          () => deps.encryptData(single),
        );
      });
      return { items };
    },

    async batchDecryptData(request) {
      const items = await inOrder(request.items, (item) => {
        const single = create(DecryptDataRequestSchema, {
          ...callFields(item),
          projectId: request.projectId,
        });
        return runItem(
          item.reference,
          [
            [BatchDecryptDataItemSchema, item],
            [DecryptDataRequestSchema, single],
          ],
          () => deps.decryptData(single),
        );
      });
      return { items };
    },
  };
}
