import { describe, expect, it } from "vitest";
import { HealthState } from "../../src/health/health-state.js";
import { StoreMonitor } from "../../src/health/store-monitor.js";
import type { Logger } from "../../src/observability/logger.js";

/** A logger that keeps what it is told, by level. */
function recordingLogger(): { logger: Logger; lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const at =
    (level: string) =>
    (...args: unknown[]) => {
      lines.push({ level, msg: String(args.find((arg) => typeof arg === "string")) });
    };
  const logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    fatal: at("fatal"),
    child: () => logger,
    isLevelEnabled: () => true,
  } as unknown as Logger;
  return { logger, lines };
}

describe("HealthState", () => {
  it("is starting until the first check, then follows the store, and stays down after shutdown", () => {
    const health = new HealthState(["kms.v1.KmsService"]);
    expect(health.notServingReason).toBe("starting");
    health.setStoreReachable(true);
    expect(health.serving).toBe(true);
    expect(health.serviceServing("")).toBe(true);
    expect(health.serviceServing("kms.v1.KmsService")).toBe(true);
    expect(health.serviceServing("other.Service")).toBeUndefined();
    health.setStoreReachable(false);
    expect(health.notServingReason).toBe("store unreachable");
    health.setStoreReachable(true);
    health.beginShutdown();
    expect(health.notServingReason).toBe("shutting down");
    health.setStoreReachable(true);
    expect(health.serving).toBe(false);
  });

  it("wakes waiters on a change of status only, and on abort", async () => {
    const health = new HealthState([]);
    health.setStoreReachable(true);
    let woken = 0;
    const controller = new AbortController();
    const waiting = health.nextChange(controller.signal).then(() => woken++);
    health.setStoreReachable(true); // no change
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(woken).toBe(0);
    health.setStoreReachable(false);
    await waiting;
    expect(woken).toBe(1);
    const aborted = health.nextChange(controller.signal);
    controller.abort();
    await aborted;
  });
});

describe("StoreMonitor", () => {
  it("counts a ping that does not answer within the interval as unreachable, and logs each change once", async () => {
    const health = new HealthState([]);
    const { logger, lines } = recordingLogger();
    let mode: "ok" | "hang" | "fail" = "ok";
    const store = {
      ping: () =>
        mode === "ok"
          ? Promise.resolve()
          : mode === "fail"
            ? Promise.reject(new Error("refused"))
            : new Promise<void>(() => {}),
    };
    const monitor = new StoreMonitor(store, health, 100, logger);
    await monitor.start();
    try {
      expect(health.serving).toBe(true);
      mode = "hang";
      await monitor.check();
      expect(health.notServingReason).toBe("store unreachable");
      mode = "fail";
      await monitor.check();
      await monitor.check();
      mode = "ok";
      await monitor.check();
      expect(health.serving).toBe(true);
      expect(lines.filter((line) => line.level !== "debug")).toEqual([
        { level: "error", msg: "store unreachable: not serving until it answers" },
        { level: "info", msg: "store reachable again: serving" },
      ]);
    } finally {
      await monitor.stop();
    }
  });
});
