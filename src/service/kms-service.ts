import { Code, type ServiceImpl } from "@connectrpc/connect";
import type { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { kmsError } from "../errors/kms-error.js";
import type { KeyRing } from "../keys/key-ring.js";
import { createKeyVersion, keyVersionMaker } from "../keys/key-version-factory.js";
import type { RandomPool } from "../keys/random-pool.js";
import type { RootKey } from "../keys/root-key.js";
import type { KeyState, KeyStore } from "../keystore/types.js";
import type { Logger } from "../observability/logger.js";
import type { RequestValidator } from "../validation/request-validator.js";
import { batchHandlers } from "./batch.js";
import { decryptDataHandler, encryptDataHandler } from "./data-encryption.js";
import { dataKeyHandlers } from "./data-keys.js";
import { aliasError, createKeyAccess } from "./key-access.js";
import { createKeyCrypto } from "./key-crypto.js";
import { keyInfo } from "./key-info.js";
import * as keyStates from "./key-states.js";
import { newKeyRecord } from "./new-key.js";
import { reEncryptHandler } from "./re-encrypt.js";
import { rotationHandlers } from "./rotation.js";

export interface KmsServiceDeps {
  readonly store: KeyStore;
  readonly keyRing: KeyRing;
  readonly rootKey: RootKey;
  readonly randomPool: RandomPool;
  /** The request rules, for batch items (the interceptor checks whole requests). */
  readonly validator: RequestValidator;
  readonly logger: Logger;
  /** Reported as each key's realm (Huawei's region). */
  readonly realm: string;
  readonly now: () => number;
}

const DEFAULT_LIST_LIMIT = 1000;
const SUPPORTED_KEY_SPEC = "AES_256";
const SUPPORTED_KEY_USAGE = "ENCRYPT_DECRYPT";
const SUPPORTED_ORIGIN = "kms";

/**
 * kms.v1.KmsService. Requests arrive validated (the validation interceptor
 * runs first), so the handlers only enforce what the proto cannot say.
 */
export function createKmsService(deps: KmsServiceDeps): ServiceImpl<typeof KmsService> {
  const { store, keyRing, rootKey, randomPool, realm, now } = deps;
  const keys = createKeyAccess(store, keyRing);
  const crypto = createKeyCrypto(keyRing, randomPool);
  const encryptData = encryptDataHandler(crypto);
  const decryptData = decryptDataHandler(crypto);

  return {
    async createKey(request) {
      const keySpec = request.keySpec || SUPPORTED_KEY_SPEC;
      const keyUsage = request.keyUsage || SUPPORTED_KEY_USAGE;
      const origin = request.origin || SUPPORTED_ORIGIN;
      if (keySpec !== SUPPORTED_KEY_SPEC) {
        throw unsupported(`key_spec ${keySpec} is not supported: kmsd creates AES_256 keys`);
      }
      if (keyUsage !== SUPPORTED_KEY_USAGE) {
        throw unsupported(`key_usage ${keyUsage} is not supported for AES_256 keys`);
      }
      if (origin !== SUPPORTED_ORIGIN) {
        throw unsupported(`origin ${origin} is not supported: kmsd generates all key material`);
      }
      const createdAt = now();
      const key = newKeyRecord({
        projectId: request.projectId,
        alias: request.keyAlias,
        description: request.keyDescription,
        enterpriseProjectId: request.enterpriseProjectId || "0",
        createdAt,
      });
      try {
        await store.createKey(key, createKeyVersion(rootKey, key.keyId, 1, createdAt));
      } catch (error) {
        throw aliasError(error);
      }
      return { keyInfo: { keyId: key.keyId, domainId: key.projectId } };
    },

    async describeKey(request) {
      const key = await keys.existingKey(request.projectId, request.keyId);
      return { keyInfo: keyInfo(key, realm) };
    },

    async listKeys(request) {
      let page: Awaited<ReturnType<KeyStore["listKeys"]>>;
      try {
        page = await store.listKeys({
          projectId: request.projectId,
          limit: request.limit === "" ? DEFAULT_LIST_LIMIT : Number(request.limit),
          ...(request.marker === "" ? {} : { marker: request.marker }),
          ...(request.keyState === "" ? {} : { state: request.keyState as KeyState }),
          ...(request.keySpec === "" || request.keySpec === "ALL"
            ? {}
            : { keySpec: request.keySpec }),
        });
      } catch (error) {
        if (error instanceof RangeError) throw kmsError("KMS.0308", "marker is invalid");
        throw error;
      }
      return {
        keys: page.keys.map((key) => key.keyId),
        keyDetails: page.keys.map((key) => keyInfo(key, realm)),
        nextMarker: page.nextMarker ?? "",
        truncated: page.nextMarker === undefined ? "false" : "true",
        total: page.total,
      };
    },

    async enableKey(request) {
      const key = await keys.changeKey(request.projectId, request.keyId, keyStates.enable);
      return { keyInfo: { keyId: key.keyId, keyState: key.state } };
    },

    async disableKey(request) {
      const key = await keys.changeKey(request.projectId, request.keyId, keyStates.disable);
      return { keyInfo: { keyId: key.keyId, keyState: key.state } };
    },

    async scheduleKeyDeletion(request) {
      const decide = keyStates.scheduleDeletion(Number(request.pendingDays), now());
      const key = await keys.changeKey(request.projectId, request.keyId, decide);
      return { keyId: key.keyId, keyState: key.state };
    },

    async cancelKeyDeletion(request) {
      const key = await keys.changeKey(request.projectId, request.keyId, keyStates.cancelDeletion);
      return { keyId: key.keyId, keyState: key.state };
    },

    async updateKeyAlias(request) {
      const key = await keys.changeKey(request.projectId, request.keyId, (current) => {
        keyStates.assertNotPendingDeletion(current);
        return { alias: request.keyAlias };
      });
      return { keyInfo: { keyId: key.keyId, keyAlias: key.alias } };
    },

    async updateKeyDescription(request) {
      const key = await keys.changeKey(request.projectId, request.keyId, (current) => {
        keyStates.assertNotPendingDeletion(current);
        return { description: request.keyDescription };
      });
      return { keyInfo: { keyId: key.keyId, keyDescription: key.description } };
    },

    encryptData,
    decryptData,
    reEncrypt: reEncryptHandler(crypto),
    ...dataKeyHandlers(crypto),
    ...rotationHandlers({ keys, store, keyRing, makeVersion: keyVersionMaker(rootKey), now }),
    ...batchHandlers({ validator: deps.validator, encryptData, decryptData, logger: deps.logger }),
  };
}

function unsupported(message: string) {
  return kmsError("KMS.0308", message, { connectCode: Code.Unimplemented });
}
