import { setTimeout as sleep } from "node:timers/promises";
import type { AuditEntry, AuditStore } from "../keystore/audit-types.js";
import type { Logger } from "../observability/logger.js";
import type { AuditKeys } from "./audit-keys.js";
import { chainHash } from "./chain.js";

/** Wait before retrying a failed write, in ms. */
const RETRY_MS = 100;
/** Writes close() tries before it gives up on what is left. */
const CLOSE_ATTEMPTS = 5;

export interface AuditLogOptions {
  /** Longest an entry waits in memory before it is written, in ms. */
  readonly flushMs: number;
  /** Entries written per transaction at most. */
  readonly maxBatch: number;
}

/**
 * The audit trail's writer. Requests only queue their entry (no I/O on the
 * request path); a timer writes the queue in one transaction at most
 * `flushMs` after its first entry arrived. A crash can therefore lose the
 * entries of the last `flushMs` milliseconds plus one write in progress; a
 * graceful stop writes everything (close()).
 */
export class AuditLog {
  private queue: AuditEntry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly store: AuditStore,
    private readonly keys: AuditKeys,
    private readonly options: AuditLogOptions,
    private readonly logger: Logger,
  ) {}

  record(entry: AuditEntry): void {
    this.queue.push(entry);
    if (this.closed || this.queue.length >= this.options.maxBatch) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.options.flushMs).unref();
  }

  /** Entries waiting to be written. */
  get backlog(): number {
    return this.queue.length;
  }

  /** Writes everything queued so far; resolves when it is in the store (or the write failed). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    // Writes are serialised: the chain needs them in order.
    this.writing = this.writing.then(() => this.write(batch));
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
    this.logger.error(
      { lost: this.queue.length },
      "audit records could not be written at shutdown",
    );
    this.queue = [];
  }

  private async write(batch: AuditEntry[]): Promise<void> {
    if (batch.length === 0) return;
    try {
      await this.store.appendAudit(batch, (prevHash, seq, entry) =>
        chainHash(this.keys.chain, prevHash, seq, entry),
      );
    } catch (error) {
      // Keep the entries: they go out with the next write (order is kept, as
      // later entries queue behind them).
      this.queue = batch.concat(this.queue);
      if (!this.closed) {
        this.timer ??= setTimeout(
          () => void this.flush(),
          Math.max(this.options.flushMs, RETRY_MS),
        ).unref();
      }
      this.logger.error(
        { error: (error as Error).message, pending: this.queue.length },
        "audit write failed; will retry",
      );
    }
  }
}
