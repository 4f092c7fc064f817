/**
 * The canonical byte encoding of an encryption context, bound into a
 * ciphertext as AAD. It must be independent of the order the caller listed
 * the pairs in, and injective: every key and value is length-prefixed, so
 * {"a":"bc"} and {"ab":"c"} (which local-kms once encoded identically) differ.
 *
 *   u32be pair count
 *   per pair, sorted by the key's UTF-8 bytes:
 *     u32be key length || key UTF-8 || u32be value length || value UTF-8
 */
export type EncryptionContext = Readonly<Record<string, string>>;

const encoder = new TextEncoder();

export function encodeEncryptionContext(context: EncryptionContext): Uint8Array {
  const pairs = Object.entries(context).map(([key, value]) => ({
    key: encoder.encode(key),
    value: encoder.encode(value),
  }));
  // Sort by UTF-8 bytes, not by JS string order (UTF-16 code units), so the
  // encoding is the same in any language that implements the format.
  pairs.sort((a, b) => Buffer.compare(a.key, b.key));
  let size = 4;
  for (const pair of pairs) size += 8 + pair.key.length + pair.value.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, pairs.length);
  let offset = 4;
  for (const { key, value } of pairs) {
    view.setUint32(offset, key.length);
    out.set(key, offset + 4);
    offset += 4 + key.length;
    view.setUint32(offset, value.length);
    out.set(value, offset + 4);
    offset += 4 + value.length;
  }
  return out;
}

export function hasPairs(context: EncryptionContext | undefined): context is EncryptionContext {
  if (context === undefined) return false;
  for (const _ in context) return true;
  return false;
}
