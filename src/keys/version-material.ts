/**
 * Bytes of key material per slab: versions share one allocation, so a
 * cached version costs a view into a slab rather than an allocation of its
 * own (a KeyObject per version made a cache of 100,000 keys about twice as
 * large). Small, because one version still in use keeps its slab alive.
 */
const SLAB_BYTES = 4096;

let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabOffset = 0;

function slabCopy(bytes: Uint8Array): Buffer {
  if (slabOffset + bytes.length > slab.length) {
    slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bytes.length));
    slabOffset = 0;
  }
  const copy = slab.subarray(slabOffset, slabOffset + bytes.length);
  copy.set(bytes);
  slabOffset += bytes.length;
  return copy;
}

/**
 * Material leaves memory wiped: once a version is no longer reachable (its
 * key left the cache and no request holds it), its bytes are zeroed. Never
 * earlier: a request may hold a version across an await after its key left
 * the cache.
 */
const wipeWhenCollected = new FinalizationRegistry<Buffer>((bytes) => bytes.fill(0));

/**
 * One key version's unwrapped material, as the hot path keeps it. The bytes
 * sit in a private field: util.inspect, JSON.stringify and loggers see an
 * empty object, never the material.
 */
export class VersionMaterial {
  readonly #bytes: Buffer;

  /** Copies the material: the caller wipes its own copy. */
  constructor(material: Uint8Array) {
    this.#bytes = slabCopy(material);
    wipeWhenCollected.register(this, this.#bytes);
  }

  /** The material as an HMAC key; hand it to the crypto core, never keep or log it. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  toJSON(): string {
    return "[key material]";
  }
}
