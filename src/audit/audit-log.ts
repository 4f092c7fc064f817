import { setTimeout as sleep } from "node:timers/promises";
import type { AuditEntry, AuditStore } from "../keystore/audit-types.js";
import type { Logger } from "../observability/logger.js";
import type { AuditKeys } from "./audit-keys.js";
import { sealEntries } from "./chain.js";

/** First wait before retrying a failed write, in ms; it doubles up to MAX_RETRY_MS. */
const RETRY_MS = 100;
const MAX_RETRY_MS = 2000;
/** Writes close() tries before it gives up on what is left. */
const CLOSE_ATTEMPTS = 5;
/** While writes keep failing, one log line per this many ms, not one per retry. */
const FAILURE_LOG_INTERVAL_MS = 10_000;

export interface AuditLogOptions {
  /** Longest an entry waits in memory before it is written, in ms. */
  readonly flushMs: number;
  /** Entries written per transaction at most. */
  readonly maxBatch: number;
  /**
   * Entries that may wait unwritten (the store unreachable) before new
   * requests are refused: see `saturated`. Unbounded when not given.
   */
  readonly maxBacklog?: number;
  /** False when the operator turned the audit trail off (--audit off): nothing is recorded. */
  readonly enabled?: boolean;
}

/**
 * The audit trail's writer. Requests only queue their entry (no I/O on the
 * request path); a timer writes the queue, in transactions of at most
 * `maxBatch` entries, at most `flushMs` after its first entry arrived. A
 * crash can therefore lose the entries of the last `flushMs` milliseconds
 * plus one write in progress; a graceful stop writes everything (close()).
 *
 * When the store cannot be written, entries wait in memory, in order, and
 * writes are retried with a growing delay; once `maxBacklog` entries wait,
 * the log is `saturated` and the audit interceptor refuses new requests
 * (KMS.0104) rather than serve requests it could not record.
 */
export class AuditLog {
  private queue: AuditEntry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;
  /** Set while writes fail: the retry timer alone then triggers writes. */
  private failingSince: number | undefined;
  private retryMs = RETRY_MS;
  private lastFailureLog = 0;
  private writtenRecords = 0;

  constructor(
    private readonly store: AuditStore,
    private readonly keys: AuditKeys,
    private readonly options: AuditLogOptions,
    private readonly logger: Logger,
  ) {}

  record(entry: AuditEntry): void {
    if (this.options.enabled === false) return;
    this.queue.push(entry);
    const full = this.queue.length >= this.options.maxBatch && this.failingSince === undefined;
    if (this.closed || full) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.options.flushMs).unref();
  }

  /** Entries waiting to be written. */
  get backlog(): number {
    return this.queue.length;
  }

  /**
   * Entries written to the store since the log was made: with the store's
   * appendAudit timings (kmsd_store_operation_duration_seconds), what a
   * record costs the event loop to write, measured where it is written.
   */
  get written(): number {
    return this.writtenRecords;
  }

  /** True when as many entries wait unwritten as the log may hold: new requests must be refused. */
  get saturated(): boolean {
    return this.queue.length >= (this.options.maxBacklog ?? Number.POSITIVE_INFINITY);
  }

  /** Writes everything queued so far; resolves when it is in the store (or a write failed). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    // Writes are serialised: the chain needs them in order.
    this.writing = this.writing.then(() => this.drain());
    return this.writing;
  }

  /**
   * Stops the timer and writes every queued entry, retrying a failed write a
   * few times. Entries recorded later are written at once.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (let attempt = 1; ; attempt++) {
      await this.flush();
      if (this.queue.length === 0) return;
      if (attempt === CLOSE_ATTEMPTS) break;
      await sleep(RETRY_MS);
    }
    clearTimeout(this.timer);
    this.logger.error(
      { lost: this.queue.length },
      "audit records could not be written at shutdown",
    );
    this.queue = [];
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      try {
        await this.store.appendAudit(sealEntries(this.keys.chain, batch));
      } catch (error) {
        // Keep the entries in front: they go out with the next write, ahead
        // of everything recorded meanwhile.
        this.queue = batch.concat(this.queue);
        this.failed(error);
        return;
      }
      this.writtenRecords += batch.length;
      this.succeeded();
    }
  }

  private failed(error: unknown): void {
    const now = Date.now();
    const first = this.failingSince === undefined;
    this.failingSince ??= now;
    if (first || now - this.lastFailureLog >= FAILURE_LOG_INTERVAL_MS) {
      this.lastFailureLog = now;
      this.logger.error(
        {
          error: (error as Error).message,
          pending: this.queue.length,
          maxBacklog: this.options.maxBacklog,
          failingForMs: now - this.failingSince,
        },
        "audit writes are failing; records wait in memory and are retried",
      );
    }
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.flush(), this.retryMs).unref();
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
  }

  private succeeded(): void {
    if (this.failingSince === undefined) return;
    this.logger.warn(
      { failedForMs: Date.now() - this.failingSince, pending: this.queue.length },
      "audit writes succeed again",
    );
    this.failingSince = undefined;
    this.retryMs = RETRY_MS;
  }
}
