/**
 * Whether kmsd can serve: the one status behind the gRPC health service,
 * /readyz and the kmsd_serving gauge. Every service kmsd has depends on the
 * store, so they share it: serving once the store answered, while it keeps
 * answering, and never again once shutdown began.
 */
export class HealthState {
  /** Undefined until the first check (the server listens only after it). */
  private reachable: boolean | undefined;
  private stopping = false;
  private waiters = new Set<() => void>();

  /** `services`: the services with a status of their own, besides "" (the server). */
  constructor(readonly services: readonly string[]) {}

  /** Why kmsd cannot serve, or undefined when it can. */
  get notServingReason(): string | undefined {
    if (this.stopping) return "shutting down";
    if (this.reachable === undefined) return "starting";
    if (!this.reachable) return "store unreachable";
    return undefined;
  }

  get serving(): boolean {
    return this.notServingReason === undefined;
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  get storeReachable(): boolean | undefined {
    return this.reachable;
  }

  /** Whether the service serves: "" names the server; undefined for a service kmsd lacks. */
  serviceServing(service: string): boolean | undefined {
    if (service !== "" && !this.services.includes(service)) return undefined;
    return this.serving;
  }

  setStoreReachable(reachable: boolean): void {
    if (reachable === this.reachable) return;
    const before = this.serving;
    this.reachable = reachable;
    if (this.serving !== before) this.notify();
  }

  /** From now on not serving, for good. */
  beginShutdown(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.notify();
  }

  /** Resolves at the next change of status, or when the signal aborts. */
  nextChange(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const wake = () => {
        this.waiters.delete(wake);
        signal.removeEventListener("abort", wake);
        resolve();
      };
      this.waiters.add(wake);
      signal.addEventListener("abort", wake, { once: true });
    });
  }

  private notify(): void {
    for (const wake of [...this.waiters]) wake();
  }
}
