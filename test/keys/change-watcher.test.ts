import { afterEach, describe, expect, it } from "vitest";
import { ChangeWatcher } from "../../src/keys/change-watcher.js";
import type { KeyChange, KeyStore } from "../../src/keystore/types.js";
import { eventually } from "../support/store-faults.js";

/**
 * The change feed part of a store, in memory: changes are appended by the
 * test, reads can be made to fail or to wait, and a store "with
 * notifications" calls its subscribers when asked to.
 */
class FakeFeed {
  readonly changes: KeyChange[] = [];
  failing = false;
  reads = 0;
  /** While set, changesSince waits for it (a slow read). */
  gate: Promise<void> | undefined;
  readonly wakers = new Set<() => void>();

  append(keyId: string): void {
    this.changes.push({ seq: this.changes.length + 1, kind: "key", projectId: "p", keyId });
  }

  notify(): void {
    for (const wake of this.wakers) wake();
  }

  store(withNotifications: boolean): KeyStore {
    const store = {
      latestChangeSeq: async () => this.changes.length,
      changesSince: async (after: number) => {
        this.reads++;
        const snapshot = this.changes.filter((c) => c.seq > after);
        await this.gate;
        if (this.failing) throw new Error("connection refused");
        return snapshot;
      },
      ...(withNotifications
        ? {
            onChangeRecorded: (wake: () => void) => {
              this.wakers.add(wake);
              return () => this.wakers.delete(wake);
            },
          }
        : {}),
    };
    return store as unknown as KeyStore;
  }
}

describe("ChangeWatcher", () => {
  const watchers: ChangeWatcher[] = [];

  afterEach(async () => {
    for (const watcher of watchers.splice(0)) await watcher.stop();
  });

  async function watch(
    feed: FakeFeed,
    options: { notifications?: boolean; intervalMs?: number; staleAfterMs?: number } = {},
  ) {
    const seen: string[] = [];
    let stale = 0;
    const watcher = new ChangeWatcher(
      feed.store(options.notifications ?? true),
      [(change) => seen.push(change.keyId)],
      options.intervalMs ?? 60_000,
      options.staleAfterMs === undefined
        ? undefined
        : {
            staleAfterMs: options.staleAfterMs,
            onStale: () => {
              stale++;
            },
          },
    );
    watchers.push(watcher);
    await watcher.start();
    return { watcher, seen, stale: () => stale };
  }

  it("applies changes as soon as the store signals one, long before its next poll", async () => {
    const feed = new FakeFeed();
    feed.append("before-start");
    const { seen } = await watch(feed);

    feed.append("k1");
    feed.notify();

    await eventually(() => seen.length === 1, 1000, "the change to be applied");
    expect(seen).toEqual(["k1"]);
  });

  it("polls again when signalled during a poll, so a change committed meanwhile is not left waiting", async () => {
    const feed = new FakeFeed();
    const { watcher, seen } = await watch(feed);
    let open = () => {};
    feed.gate = new Promise((resolve) => {
      open = resolve;
    });
    const first = watcher.poll();
    feed.append("during");
    feed.notify();
    feed.gate = undefined;
    open();
    await first;

    await eventually(() => seen.includes("during"), 1000, "the second poll");
    expect(feed.reads).toBe(2);
  });

  it("keeps polling without notifications, and stops listening when stopped", async () => {
    const feed = new FakeFeed();
    const { seen } = await watch(feed, { notifications: false, intervalMs: 20 });
    feed.append("polled");
    await eventually(() => seen.length === 1, 1000, "a poll");

    const notified = new FakeFeed();
    const { watcher } = await watch(notified);
    expect(notified.wakers.size).toBe(1);
    await watcher.stop();
    expect(notified.wakers.size).toBe(0);
  });

  it("reports the caches stale once the store has been unreachable for staleAfterMs, even between distant polls", async () => {
    const feed = new FakeFeed();
    const { watcher, stale } = await watch(feed, { intervalMs: 60_000, staleAfterMs: 150 });

    feed.failing = true;
    const started = Date.now();
    await watcher.poll();
    expect(stale()).toBe(0);
    await eventually(() => stale() === 1, 1000, "onStale");
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await watcher.poll();
    expect(stale()).toBe(1);

    // Back, then away again: the bound counts from the new failure.
    feed.failing = false;
    await watcher.poll();
    feed.failing = true;
    await watcher.poll();
    expect(stale()).toBe(1);
    await eventually(() => stale() === 2, 1000, "onStale after the second outage");
  });
});
