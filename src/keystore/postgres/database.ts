import type pg from "pg";
import { storeError } from "./connection.js";

/** A statement: its text, its parameters and, for the hot ones, a name to prepare it under. */
export interface Statement {
  readonly text: string;
  readonly values?: readonly unknown[];
  /** Prepared once per connection under this name (only for fixed texts). */
  readonly name?: string;
}

/** What runs statements: the pool (autocommit) or one transaction's connection. */
export interface Queryable {
  rows<R extends pg.QueryResultRow>(statement: Statement): Promise<R[]>;
  /** Rows changed (INSERT, UPDATE, DELETE). */
  count(statement: Statement): Promise<number>;
}

/** One transaction's connection, with work to do just before it commits. */
export interface Transaction extends Queryable {
  /** Runs `hook` after the transaction's work, before COMMIT (once per key). */
  beforeCommit(key: object, hook: () => Promise<void>): void;
}

export interface TransactionOptions {
  /** REPEATABLE READ READ ONLY: several reads from one snapshot. */
  readonly snapshot?: boolean;
}

function run(client: pg.ClientBase | pg.Pool, statement: Statement): Promise<pg.QueryResult> {
  return client.query({
    text: statement.text,
    values: statement.values ? [...statement.values] : undefined,
    name: statement.name,
  });
}

/**
 * The pool as the store's modules use it: statements and transactions whose
 * connection failures reject with StoreUnavailableError, and a refusal once
 * closed.
 */
export class PgDatabase implements Queryable {
  #closed = false;

  constructor(
    readonly pool: pg.Pool,
    /** The schema kmsd's tables are in (current_schema() of its connections). */
    readonly schema: string,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("the key store is closed");
  }

  async rows<R extends pg.QueryResultRow>(statement: Statement): Promise<R[]> {
    this.#checkOpen();
    try {
      return (await run(this.pool, statement)).rows as R[];
    } catch (error) {
      throw storeError(error);
    }
  }

  async count(statement: Statement): Promise<number> {
    this.#checkOpen();
    try {
      return (await run(this.pool, statement)).rowCount ?? 0;
    } catch (error) {
      throw storeError(error);
    }
  }

  /**
   * Runs `work` in one transaction on one connection. Whatever `work`
   * throws rolls back and is rethrown unchanged (connection failures as
   * StoreUnavailableError). A connection that failed is destroyed, never
   * returned to the pool.
   */
  async transaction<T>(
    work: (tx: Transaction) => Promise<T>,
    options: TransactionOptions = {},
  ): Promise<T> {
    this.#checkOpen();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw storeError(error);
    }
    // A checked-out client whose connection dies emits 'error' (besides
    // failing its query); the pool listens only to idle clients, and an
    // unheard 'error' would crash the process.
    let broken: Error | undefined;
    const onError = (error: Error) => {
      broken = error;
    };
    client.on("error", onError);
    const hooks = new Map<object, () => Promise<void>>();
    const tx: Transaction = {
      rows: async <R extends pg.QueryResultRow>(statement: Statement) =>
        (await run(client, statement)).rows as R[],
      count: async (statement) => (await run(client, statement)).rowCount ?? 0,
      beforeCommit: (key, hook) => {
        if (!hooks.has(key)) hooks.set(key, hook);
      },
    };
    try {
      await client.query(
        options.snapshot ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN",
      );
      const result = await work(tx);
      for (const hook of hooks.values()) await hook();
      await client.query("COMMIT");
      return result;
    } catch (error) {
      try {
        await client.query("ROLLBACK");
      } catch (rollbackFailure) {
        // The connection is gone (the server rolls back on its own) or
        // unusable: it must not serve another transaction.
        broken = rollbackFailure instanceof Error ? rollbackFailure : new Error("rollback failed");
      }
      throw storeError(error);
    } finally {
      client.release(broken);
      client.off("error", onError);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.pool.end();
  }
}
