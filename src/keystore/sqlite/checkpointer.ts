import { Worker } from "node:worker_threads";
import { sqliteDriverPath } from "./driver.js";

/**
 * Runs the WAL checkpoints of a SQLite file on a worker thread, on its own
 * connection, instead of in whichever commit crosses the autocheckpoint
 * threshold. With the audit trail appending every few milliseconds, that
 * commit was an audit append on the event loop: copying ~1000 pages into
 * the database and syncing it stalled every request for milliseconds, about
 * every 5,000 records (docs/benchmarks.md#checkpoints). PASSIVE: a
 * checkpoint never waits for, or blocks, readers and writers.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path, { timeout: workerData.busyTimeoutMs, fileMustExist: true });
const checkpoint = () => {
  // A failed checkpoint is retried on the next tick; the connections'
  // own autocheckpoint still bounds the WAL should this thread fall behind.
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on("message", () => {
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.close();
});
`;

/** Pages the WAL may reach before a commit checkpoints itself, background checkpoints or not. */
export const SAFETY_AUTOCHECKPOINT_PAGES = 10_000;

export class BackgroundCheckpointer {
  readonly #worker: Worker;
  readonly #exited: Promise<void>;

  private constructor(worker: Worker) {
    this.#worker = worker;
    this.#exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    // It must not keep a process alive that is otherwise done.
    worker.unref();
    // A worker that fails to start (or dies) leaves checkpoints to the
    // connections' own autocheckpoint, which still bounds the WAL.
    worker.on("error", () => {});
  }

  static start(path: string, intervalMs: number, busyTimeoutMs: number): BackgroundCheckpointer {
    const driver = sqliteDriverPath();
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver, path, intervalMs, busyTimeoutMs },
    });
    return new BackgroundCheckpointer(worker);
  }

  /** A last checkpoint, then the worker's connection closes and the thread exits. */
  async stop(): Promise<void> {
    // Held until it exits: otherwise a process with nothing else to do would
    // end (a top-level await left unsettled) before the last checkpoint.
    this.#worker.ref();
    this.#worker.postMessage("stop");
    await this.#exited;
  }
}
