import type Database from "better-sqlite3";
import { type ChangeRow, toChange } from "../rows.js";
import type { ChangeKind, KeyChange } from "../types.js";

/**
 * The key_changes table, shared by the key and access tables: `record` must
 * run inside the transaction of the mutation it reports, so that a watcher
 * never sees a change that was rolled back nor misses one that committed.
 */
export class ChangeFeed {
  readonly #insert;
  readonly #since;
  readonly #latest;

  constructor(db: Database.Database) {
    this.#insert = db.prepare<[ChangeKind, string, string, number]>(
      "INSERT INTO key_changes (kind, project_id, key_id, changed_at) VALUES (?, ?, ?, ?)",
    );
    this.#since = db.prepare<[number], ChangeRow>(
      "SELECT seq, kind, project_id, key_id FROM key_changes WHERE seq > ? ORDER BY seq",
    );
    this.#latest = db.prepare<[], number>("SELECT coalesce(max(seq), 0) FROM key_changes").pluck();
  }

  /** `id` is the key id, access key or token id, according to `kind`. */
  record(kind: ChangeKind, projectId: string, id: string): void {
    this.#insert.run(kind, projectId, id, Date.now());
  }

  since(afterSeq: number): KeyChange[] {
    return this.#since.all(afterSeq).map(toChange);
  }

  latest(): number {
    return this.#latest.get() ?? 0;
  }
}
