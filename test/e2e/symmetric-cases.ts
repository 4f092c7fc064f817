/**
 * Everything issue 4 added to the API (rotation, data keys, re-encryption,
 * metadata updates, the newer encrypt/decrypt fields, integrity checks and
 * batches), as one case table each suite runs with its own protocol.
 */
import { describeBatchCases } from "./batch-cases.js";
import { describeDataKeyCases } from "./datakey-cases.js";
import type { Kit } from "./grpc-cases.js";
import { describeIntegrityCases } from "./integrity-cases.js";
import { describeReEncryptCases } from "./reencrypt-cases.js";
import { describeRotationCases } from "./rotation-cases.js";

export function describeSymmetricCases(kit: () => Kit): void {
  describeRotationCases(kit);
  describeDataKeyCases(kit);
  describeReEncryptCases(kit);
  describeIntegrityCases(kit);
  describeBatchCases(kit);
}
