import type { KeyChange, KeyStore } from "../keystore/types.js";

export type ChangeListener = (change: KeyChange) => void;

/**
 * Follows the store's change feed so that this process's caches (keys,
 * credentials, tokens) drop what other processes changed: the CLI, other
 * server workers, other instances on the same store.
 */
export class ChangeWatcher {
  private lastSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  constructor(
    private readonly store: KeyStore,
    private readonly listeners: readonly ChangeListener[],
    private readonly intervalMs: number,
  ) {}

  async start(): Promise<void> {
    this.lastSeq = await this.store.latestChangeSeq();
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
  }

  /** Applies every change since the last poll (one poll at a time). */
  poll(): Promise<void> {
    this.polling ??= this.applyChanges().finally(() => {
      this.polling = undefined;
    });
    return this.polling;
  }

  private async applyChanges(): Promise<void> {
    try {
      for (const change of await this.store.changesSince(this.lastSeq)) {
        for (const listener of this.listeners) listener(change);
        this.lastSeq = change.seq;
      }
    } catch {
      // The store is unreachable for now; the next poll catches up from lastSeq.
    }
  }
}
