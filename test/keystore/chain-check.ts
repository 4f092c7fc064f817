import { expect } from "vitest";
import type { AuditRecord } from "../../src/keystore/audit-types.js";
import { GENESIS, testChain } from "./fixtures.js";

/** Seqs 1, 2, 3, ... from the genesis hash, each linked to and hashed over its predecessor. */
export function expectUnbrokenChain(records: readonly AuditRecord[]): void {
  let prevHash = GENESIS;
  for (const [i, record] of records.entries()) {
    const { seq, prevHash: linked, hash, ...entry } = record;
    expect({ seq, linked }).toEqual({ seq: i + 1, linked: prevHash });
    expect(hash).toBe(testChain(prevHash, seq, entry));
    prevHash = hash;
  }
}
