/**
 * The listKeys page position, shared by every backend so that a marker keeps
 * working whichever store answers the next page.
 */

/** Opaque list position: base64url of "<createdAt>:<keyId>". */
export function encodeMarker(createdAt: number, keyId: string): string {
  return Buffer.from(`${createdAt}:${keyId}`, "utf8").toString("base64url");
}

/** @throws RangeError when the marker was not made by encodeMarker. */
export function decodeMarker(marker: string): { createdAt: number; keyId: string } {
  const invalid = () => new RangeError(`invalid marker ${JSON.stringify(marker)}`);
  // Node's decoder skips characters outside the alphabet; insist on a round trip.
  if (!/^[A-Za-z0-9_-]+$/.test(marker)) throw invalid();
  const bytes = Buffer.from(marker, "base64url");
  if (bytes.toString("base64url") !== marker) throw invalid();
  const match = /^(-?\d{1,16}):(.+)$/s.exec(bytes.toString("utf8"));
  const createdAt = Number(match?.[1]);
  const keyId = match?.[2];
  if (keyId === undefined || !Number.isSafeInteger(createdAt)) throw invalid();
  return { createdAt, keyId };
}
