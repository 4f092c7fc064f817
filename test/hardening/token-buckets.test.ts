import { describe, expect, it } from "vitest";
import { processRateLimit } from "../../src/interceptors/rate-limit.js";
import { TokenBuckets } from "../../src/interceptors/token-buckets.js";

/** A clock the test moves by hand. */
function manualClock() {
  let ms = 0;
  return {
    now: () => ms,
    advance: (by: number) => {
      ms += by;
    },
  };
}

describe("TokenBuckets", () => {
  it("passes a burst, then refuses with the wait until the next token, then refills", () => {
    const clock = manualClock();
    const buckets = new TokenBuckets({ perSecond: 10, burst: 3 }, 100, clock.now);
    expect([buckets.take("p"), buckets.take("p"), buckets.take("p")]).toEqual([0, 0, 0]);
    expect(buckets.take("p")).toBeCloseTo(100);
    clock.advance(40);
    expect(buckets.take("p")).toBeCloseTo(60);
    clock.advance(60);
    expect(buckets.take("p")).toBe(0);
    expect(buckets.take("p")).toBeGreaterThan(0);
    // Never more than the burst, however long it was idle.
    clock.advance(60_000);
    expect([buckets.take("p"), buckets.take("p"), buckets.take("p")]).toEqual([0, 0, 0]);
    expect(buckets.take("p")).toBeGreaterThan(0);
  });

  it("keeps one bucket per name", () => {
    const clock = manualClock();
    const buckets = new TokenBuckets({ perSecond: 1, burst: 1 }, 100, clock.now);
    expect(buckets.take("a")).toBe(0);
    expect(buckets.take("a")).toBeGreaterThan(0);
    expect(buckets.take("b")).toBe(0);
  });

  it("stays within its bound, dropping refilled buckets before busy ones", () => {
    const clock = manualClock();
    const buckets = new TokenBuckets({ perSecond: 1, burst: 2 }, 10, clock.now);
    // "busy" has used its burst; the others took one token each.
    buckets.take("busy");
    buckets.take("busy");
    for (let i = 0; i < 9; i++) buckets.take(`idle-${i}`);
    expect(buckets.size).toBe(10);
    // One second later the idle ones are full again (2 tokens), "busy" is not (1).
    clock.advance(1000);
    buckets.take("new");
    expect(buckets.size).toBe(2);
    buckets.take("busy");
    expect(buckets.take("busy")).toBeGreaterThan(0);
    // Thousands of names, all busy: the map never grows past its bound.
    for (let i = 0; i < 5000; i++) {
      buckets.take(`flood-${i}`);
      buckets.take(`flood-${i}`);
      expect(buckets.size).toBeLessThanOrEqual(10);
    }
  });

  it("refuses a rate that could never pass a request", () => {
    expect(() => new TokenBuckets({ perSecond: 0, burst: 1 })).toThrow(RangeError);
    expect(() => new TokenBuckets({ perSecond: 1, burst: 0.5 })).toThrow(RangeError);
  });
});

describe("processRateLimit", () => {
  it("is off at rate 0, defaults the burst to the rate, and splits both over workers", () => {
    expect(processRateLimit({ rateLimitPerSecond: 0, rateLimitBurst: 50 }, 1)).toBeUndefined();
    expect(processRateLimit({ rateLimitPerSecond: 1000, rateLimitBurst: 0 }, 1)).toEqual({
      perSecond: 1000,
      burst: 1000,
    });
    expect(processRateLimit({ rateLimitPerSecond: 1000, rateLimitBurst: 200 }, 4)).toEqual({
      perSecond: 250,
      burst: 50,
    });
    // A worker still passes a request now and then, however small its share.
    expect(processRateLimit({ rateLimitPerSecond: 2, rateLimitBurst: 0 }, 8)).toEqual({
      perSecond: 0.25,
      burst: 1,
    });
  });
});
