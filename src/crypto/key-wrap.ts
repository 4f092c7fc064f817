import { createCipheriv, createDecipheriv, createHmac } from "node:crypto";

/**
 * Secrets at rest (key material, access-key secrets, the audit chain key):
 * AES-256-GCM under the root key, bound to what the secret is and whose it
 * is, so a wrapped blob copied onto another row does not unwrap.
 *
 *   wrapped = IV (12) || ciphertext || tag (16)
 *   AAD     = "kmsd " || purpose || " v1" || 0x00 || id (ASCII) || 0x00 || u32be version
 *
 * For key material the purpose is "key material", the id the key id and the
 * version the key version.
 */
export const ROOT_KEY_LENGTH = 32;
export const MATERIAL_LENGTH = 32;
export const WRAP_IV_LENGTH = 12;
const TAG_LENGTH = 16;
export const WRAPPED_LENGTH = WRAP_IV_LENGTH + MATERIAL_LENGTH + TAG_LENGTH;

export type WrapPurpose = "key material" | "credential secret" | "audit key";

export class UnwrapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnwrapError";
  }
}

export interface WrapBinding {
  readonly keyId: string;
  readonly version: number;
}

export interface SecretBinding {
  readonly purpose: WrapPurpose;
  readonly id: string;
  readonly version: number;
}

export function wrapKeyMaterial(
  rootKey: Uint8Array,
  binding: WrapBinding,
  material: Uint8Array,
  iv: Uint8Array,
): Buffer {
  checkLength("key material", material, MATERIAL_LENGTH);
  return wrapSecret(rootKey, materialBinding(binding), material, iv);
}

export function unwrapKeyMaterial(
  rootKey: Uint8Array,
  binding: WrapBinding,
  wrapped: Uint8Array,
): Buffer {
  if (wrapped.length !== WRAPPED_LENGTH) {
    throw new UnwrapError(
      `wrapped material of key ${binding.keyId} v${binding.version} is malformed`,
    );
  }
  return unwrapSecret(rootKey, materialBinding(binding), wrapped);
}

export function wrapSecret(
  rootKey: Uint8Array,
  binding: SecretBinding,
  secret: Uint8Array,
  iv: Uint8Array,
): Buffer {
  checkLength("root key", rootKey, ROOT_KEY_LENGTH);
  checkLength("IV", iv, WRAP_IV_LENGTH);
  const cipher = createCipheriv("aes-256-gcm", rootKey, iv, { authTagLength: TAG_LENGTH });
  cipher.setAAD(bindingAad(binding));
  const body = Buffer.concat([cipher.update(secret), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

export function unwrapSecret(
  rootKey: Uint8Array,
  binding: SecretBinding,
  wrapped: Uint8Array,
): Buffer {
  checkLength("root key", rootKey, ROOT_KEY_LENGTH);
  const what = `${binding.purpose} of ${binding.id} v${binding.version}`;
  if (wrapped.length < WRAP_IV_LENGTH + TAG_LENGTH)
    throw new UnwrapError(`wrapped ${what} is malformed`);
  const decipher = createDecipheriv("aes-256-gcm", rootKey, wrapped.subarray(0, WRAP_IV_LENGTH), {
    authTagLength: TAG_LENGTH,
  });
  decipher.setAAD(bindingAad(binding));
  decipher.setAuthTag(wrapped.subarray(wrapped.length - TAG_LENGTH));
  const secret = decipher.update(wrapped.subarray(WRAP_IV_LENGTH, wrapped.length - TAG_LENGTH));
  try {
    decipher.final();
  } catch {
    throw new UnwrapError(`${what} does not unwrap under this root key`);
  }
  return secret;
}

/**
 * A public fingerprint of a root key (hex, 128 bits): recorded in the store
 * and beside every wrapped blob, so a server started with the wrong root key
 * refuses to run instead of failing on every decrypt. It is an HMAC under
 * the key, so it reveals nothing about the key.
 */
export function rootKeyId(rootKey: Uint8Array): string {
  checkLength("root key", rootKey, ROOT_KEY_LENGTH);
  return createHmac("sha256", rootKey)
    .update("kmsd root key id v1")
    .digest()
    .subarray(0, 16)
    .toString("hex");
}

/** What an access key's secret key is wrapped as. */
export function credentialSecretBinding(accessKey: string): SecretBinding {
  return { purpose: "credential secret", id: accessKey, version: 1 };
}

function materialBinding({ keyId, version }: WrapBinding): SecretBinding {
  return { purpose: "key material", id: keyId, version };
}

function bindingAad({ purpose, id, version }: SecretBinding): Buffer {
  const versionBytes = Buffer.allocUnsafe(4);
  versionBytes.writeUInt32BE(version);
  return Buffer.concat([
    Buffer.from(`kmsd ${purpose} v1\0`, "ascii"),
    Buffer.from(id, "ascii"),
    Buffer.from([0]),
    versionBytes,
  ]);
}

function checkLength(what: string, bytes: Uint8Array, length: number): void {
  if (bytes.length !== length) throw new RangeError(`${what} must be ${length} bytes`);
}
