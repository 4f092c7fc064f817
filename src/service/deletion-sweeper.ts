import type { KeyRing } from "../keys/key-ring.js";
import type { KeyStore } from "../keystore/types.js";
import type { Logger } from "../observability/logger.js";
import { PeriodicTask } from "./periodic-task.js";

/**
 * Destroys keys whose scheduled deletion date has passed. The store makes
 * the destruction atomic and idempotent, so several processes may sweep
 * the same store at once.
 */
export class DeletionSweeper {
  private readonly task: PeriodicTask;

  constructor(
    private readonly store: KeyStore,
    private readonly keyRing: KeyRing,
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
      for (const keyId of await this.store.destroyDueKeys(Date.now())) {
        this.keyRing.invalidate(keyId);
        this.logger.info({ keyId }, "key destroyed: its deletion date passed");
      }
    } catch (error) {
      this.logger.warn({ error: (error as Error).message }, "deletion sweep failed; will retry");
    }
  }
}
