import type { KeyRing } from "../keys/key-ring.js";
import type { KeyStore, MakeKeyVersion } from "../keystore/types.js";
import type { Logger } from "../observability/logger.js";
import { PeriodicTask } from "./periodic-task.js";

/** Keys rotated per store transaction: bounds how long one sweep holds the write lock. */
const BATCH = 100;

/**
 * Runs the automatic rotations that are due. The store selects and rotates
 * due keys in one transaction, so several processes may sweep the same
 * store at once and each due rotation still happens exactly once.
 */
export class RotationSweeper {
  private readonly task: PeriodicTask;

  constructor(
    private readonly store: KeyStore,
    private readonly keyRing: KeyRing,
    private readonly makeVersion: MakeKeyVersion,
    intervalMs: number,
    private readonly logger: Logger,
  ) {
    this.task = new PeriodicTask(intervalMs, () => this.sweep());
  }

  start(): void {
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  async sweep(): Promise<void> {
    try {
      let rotated: Awaited<ReturnType<KeyStore["rotateDueKeys"]>>;
      do {
        rotated = await this.store.rotateDueKeys(Date.now(), this.makeVersion, BATCH);
        for (const key of rotated) {
          this.keyRing.update(key);
          this.logger.info(
            { keyId: key.keyId, version: key.primaryVersion },
            "key rotated: its rotation interval passed",
          );
        }
      } while (rotated.length === BATCH);
    } catch (error) {
      this.logger.warn({ error: (error as Error).message }, "rotation sweep failed; will retry");
    }
  }
}
