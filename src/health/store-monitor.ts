import type { Logger } from "../observability/logger.js";
import type { HealthState } from "./health-state.js";

/** The store as the monitor needs it. */
export interface Pingable {
  ping(): Promise<void>;
}

/**
 * Pings the store every `intervalMs` and reports whether it answered (in
 * time: a ping still pending after an interval counts as a failure) to the
 * health state. Reachability changes are logged once each, not every ping.
 */
export class StoreMonitor {
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;

  constructor(
    private readonly store: Pingable,
    private readonly health: HealthState,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  /** Checks once (so the status is known when this resolves), then every interval. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.checking;
  }

  /** One check at a time: a slow store does not pile pings up. */
  check(): Promise<void> {
    this.checking ??= this.ping().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async ping(): Promise<void> {
    let failure: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.store.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.intervalMs} ms`)),
            this.intervalMs,
          );
        }),
      ]);
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
    } finally {
      clearTimeout(timer);
    }
    const before = this.health.storeReachable;
    this.health.setStoreReachable(failure === undefined);
    if (failure !== undefined && before !== false) {
      this.logger.error({ error: failure }, "store unreachable: not serving until it answers");
    } else if (failure === undefined && before === false) {
      this.logger.info("store reachable again: serving");
    }
  }
}
