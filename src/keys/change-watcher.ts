import type { KeyChange, KeyStore } from "../keystore/types.js";

export type ChangeListener = (change: KeyChange) => void;

export interface ChangeWatcherOptions {
  /**
   * After this long without reaching the store, `onStale` runs (once, until
   * the store answers again): what the caches hold may have been changed
   * elsewhere meanwhile, unseen.
   */
  readonly staleAfterMs: number;
  readonly onStale: () => void;
}

/**
 * Follows the store's change feed so that this process's caches (keys,
 * credentials, tokens) drop what other processes changed: the CLI, other
 * server workers, other instances on the same store. It polls every
 * `intervalMs`, and also as soon as the store signals a change (a store with
 * onChangeRecorded, such as PostgreSQL's), so polling is the fallback.
 */
export class ChangeWatcher {
  private lastSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  /** A wake-up arrived while a poll ran: that poll may have read too early, so poll again. */
  private again = false;
  private unsubscribe: (() => void) | undefined;
  /** When the current run of failed polls began (epoch ms); undefined while polls succeed. */
  private failingSince: number | undefined;
  private stale = false;
  private staleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: KeyStore,
    private readonly listeners: readonly ChangeListener[],
    private readonly intervalMs: number,
    private readonly options?: ChangeWatcherOptions,
  ) {}

  async start(): Promise<void> {
    this.lastSeq = await this.store.latestChangeSeq();
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
    this.unsubscribe = this.store.onChangeRecorded?.(() => this.wake());
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearInterval(this.timer);
    clearTimeout(this.staleTimer);
    this.timer = undefined;
    await this.polling;
  }

  /** Applies every change since the last poll (one poll at a time). */
  poll(): Promise<void> {
    this.polling ??= this.applyChanges().finally(() => {
      this.polling = undefined;
      if (this.again && this.timer !== undefined) {
        this.again = false;
        void this.poll();
      }
    });
    return this.polling;
  }

  private wake(): void {
    if (this.polling !== undefined) this.again = true;
    else void this.poll();
  }

  private async applyChanges(): Promise<void> {
    try {
      for (const change of await this.store.changesSince(this.lastSeq)) {
        for (const listener of this.listeners) listener(change);
        this.lastSeq = change.seq;
      }
      this.failingSince = undefined;
      this.stale = false;
    } catch {
      // The store is unreachable for now; the next poll catches up from lastSeq.
      this.noteFailure();
    }
  }

  /**
   * Counts how long the store has been unreachable; once that reaches
   * staleAfterMs, calls onStale. A poll is scheduled for that moment, so the
   * bound holds even when polls are further apart.
   */
  private noteFailure(): void {
    if (this.options === undefined || this.stale || this.timer === undefined) return;
    const now = Date.now();
    this.failingSince ??= now;
    const left = this.failingSince + this.options.staleAfterMs - now;
    if (left <= 0) {
      this.stale = true;
      this.options.onStale();
    } else if (this.staleTimer === undefined) {
      this.staleTimer = setTimeout(() => {
        this.staleTimer = undefined;
        void this.poll();
      }, left);
      this.staleTimer.unref();
    }
  }
}
