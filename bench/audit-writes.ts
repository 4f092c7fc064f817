/**
 * What the audit trail's writes cost inside a running server, read from its
 * own metrics: records per write, and the time per record its writes held
 * the event loop in the store's append (the seal and the SQLite
 * transaction). Measured where the records are written, so it is not
 * subject to the load generator's or the machine's swings between runs the
 * way an audit-on-versus-off comparison of two servers is.
 */
import { sampleValue } from "../test/support/metrics-text.js";
import { readMetrics } from "./metrics.js";

export interface AuditWrites {
  readonly records: number;
  readonly writes: number;
  readonly seconds: number;
}

export async function auditWrites(port: number): Promise<AuditWrites> {
  const samples = await readMetrics(port);
  const append = { operation: "appendAudit" };
  return {
    records: sampleValue(samples, "kmsd_audit_records_written_total") ?? 0,
    writes: sampleValue(samples, "kmsd_store_operation_duration_seconds_count", append) ?? 0,
    seconds: sampleValue(samples, "kmsd_store_operation_duration_seconds_sum", append) ?? 0,
  };
}

/** Between two readings: "N records per write, X µs per record". */
export function describeAuditWrites(before: AuditWrites, after: AuditWrites): string {
  const records = after.records - before.records;
  const writes = after.writes - before.writes;
  if (records <= 0 || writes <= 0) return "no audit writes";
  const perRecordUs = ((after.seconds - before.seconds) * 1e6) / records;
  return `${Math.round(records / writes)} records per write, ${perRecordUs.toFixed(2)} µs per record in the store's append (seal and transaction)`;
}
