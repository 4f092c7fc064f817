import type { KeyRing } from "../keys/key-ring.js";
import type { KeyStore } from "../keystore/types.js";
import type { Logger } from "../observability/logger.js";

/**
 * Destroys keys whose scheduled deletion date has passed. The store makes
 * the destruction atomic and idempotent, so several processes may sweep
 * the same store at once.
 */
export class DeletionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly store: KeyStore,
    private readonly keyRing: KeyRing,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.sweep().finally(() => {
        this.running = undefined;
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
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
