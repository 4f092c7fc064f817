import type Database from "better-sqlite3";
import type { ChangeKind, KeyChange } from "../types.js";

interface ChangeRow {
  seq: number;
  kind: string;
  project_id: string;
  key_id: string;
}

const CHANGE_KINDS: ReadonlySet<string> = new Set<ChangeKind>(["key", "credential", "token"]);

function isChangeKind(value: string): value is ChangeKind {
  return CHANGE_KINDS.has(value);
}

function toChange(row: ChangeRow): KeyChange {
  if (!isChangeKind(row.kind)) {
    throw new Error(`change ${row.seq} has an unknown kind ${JSON.stringify(row.kind)}`);
  }
  return { seq: row.seq, kind: row.kind, projectId: row.project_id, keyId: row.key_id };
}

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
