import pg from "pg";
import { type ChangeRow, toChange } from "../rows.js";
import type { ChangeKind, KeyChange } from "../types.js";
import type { PgDatabase, Transaction } from "./database.js";
import { LockClass } from "./migrations.js";

/** The NOTIFY channel; the payload is the schema, so stores in other schemas ignore it. */
export const CHANGE_CHANNEL = "kmsd_changes";

interface PendingChange {
  readonly kind: ChangeKind;
  readonly projectId: string;
  readonly id: string;
}

/**
 * The key_changes table. A transaction's changes are appended just before
 * it commits, under a transaction-scoped advisory lock: seqs are handed out
 * in commit order, so a watcher that has read up to seq N never later finds
 * a smaller seq appear (which a plain sequence, with concurrent writers,
 * would allow). The NOTIFY is sent on commit, and never for a rollback.
 */
export class PgChangeFeed {
  readonly #pending = new WeakMap<Transaction, PendingChange[]>();

  constructor(private readonly db: PgDatabase) {}

  /** `id` is the key id, access key or token id, according to `kind`. */
  record(tx: Transaction, kind: ChangeKind, projectId: string, id: string): void {
    let pending = this.#pending.get(tx);
    if (pending === undefined) {
      const changes: PendingChange[] = [];
      pending = changes;
      this.#pending.set(tx, changes);
      tx.beforeCommit(this, () => this.#append(tx, changes));
    }
    pending.push({ kind, projectId, id });
  }

  async #append(tx: Transaction, changes: readonly PendingChange[]): Promise<void> {
    await tx.rows({
      name: "kmsd_feed_lock",
      text: "SELECT pg_advisory_xact_lock($1, hashtext($2))",
      values: [LockClass.ChangeFeed, this.db.schema],
    });
    const now = Date.now();
    const values: unknown[] = [];
    const rows = changes.map((change, i) => {
      values.push(change.kind, change.projectId, change.id, now);
      const at = i * 4;
      return `($${at + 1}, $${at + 2}, $${at + 3}, $${at + 4})`;
    });
    await tx.count({
      text: `INSERT INTO key_changes (kind, project_id, key_id, changed_at) VALUES ${rows.join(", ")}`,
      values,
    });
    await tx.rows({
      name: "kmsd_feed_notify",
      text: "SELECT pg_notify($1, $2)",
      values: [CHANGE_CHANNEL, this.db.schema],
    });
  }

  async since(afterSeq: number): Promise<KeyChange[]> {
    const rows = await this.db.rows<ChangeRow>({
      name: "kmsd_changes_since",
      text: "SELECT seq, kind, project_id, key_id FROM key_changes WHERE seq > $1 ORDER BY seq",
      values: [afterSeq],
    });
    return rows.map(toChange);
  }

  async latest(): Promise<number> {
    const [row] = await this.db.rows<{ seq: number }>({
      text: "SELECT coalesce(max(seq), 0)::bigint AS seq FROM key_changes",
    });
    return row?.seq ?? 0;
  }
}

/** First and longest wait before reconnecting the LISTEN connection, in ms. */
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 2000;

/**
 * One LISTEN connection per store, opened with the first subscriber: each
 * committed change (by any instance on the schema) wakes every subscriber.
 * When the connection is lost it reconnects by itself (backing off up to
 * RECONNECT_MAX_MS) and then wakes everyone, since changes may have been
 * missed meanwhile. Subscribers keep polling too: a notification only
 * shortens the wait.
 */
export class ChangeNotifications {
  readonly #wakers = new Set<() => void>();
  #client: pg.Client | undefined;
  #connecting: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #delayMs = RECONNECT_MIN_MS;
  #closed = false;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly schema: string,
  ) {}

  /** Whether the LISTEN connection is up (for tests and diagnostics). */
  get listening(): boolean {
    return this.#client !== undefined;
  }

  subscribe(wake: () => void): () => void {
    this.#wakers.add(wake);
    if (this.#client === undefined && this.#connecting === undefined && !this.#timer) {
      this.#connecting = this.#connect();
    }
    return () => {
      this.#wakers.delete(wake);
    };
  }

  /** Resolves once the current connection attempt has settled. */
  async settled(): Promise<void> {
    await this.#connecting;
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({
      ...this.config,
      application_name: `${this.config.application_name ?? "kmsd"}-listen`,
    });
    let lost = false;
    const onLost = () => {
      if (lost) return;
      lost = true;
      const wasListening = this.#client === client;
      if (wasListening) this.#client = undefined;
      client.end().catch(() => {});
      this.#retry();
      // Subscribers poll now: the store may be unreachable (they notice at
      // once rather than at their next poll) or the loss only this connection's.
      if (wasListening && !this.#closed) this.#wakeAll();
    };
    client.on("error", onLost);
    client.on("end", onLost);
    client.on("notification", (message) => {
      if (message.channel === CHANGE_CHANNEL && message.payload === this.schema) this.#wakeAll();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch {
      onLost();
      return;
    } finally {
      this.#connecting = undefined;
    }
    if (this.#closed || lost) {
      await client.end().catch(() => {});
      return;
    }
    this.#client = client;
    this.#delayMs = RECONNECT_MIN_MS;
    // Whatever changed while no connection listened is picked up now.
    this.#wakeAll();
  }

  #retry(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#closed) this.#connecting = this.#connect();
    }, this.#delayMs);
    this.#timer.unref();
    this.#delayMs = Math.min(this.#delayMs * 2, RECONNECT_MAX_MS);
  }

  #wakeAll(): void {
    for (const wake of this.#wakers) wake();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#connecting;
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}
