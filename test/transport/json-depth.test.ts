import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { jsonDepthExceeds } from "../../src/transport/message-codec.js";

/** How deep a parsed JSON value nests objects and arrays (a scalar: 0). */
function depthOf(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + Math.max(0, ...children.map(depthOf));
}

describe("jsonDepthExceeds", () => {
  it("agrees with the depth of the parsed value, brackets inside strings included", () => {
    fc.assert(
      fc.property(
        fc.jsonValue({ maxDepth: 8 }),
        fc.integer({ min: 0, max: 10 }),
        (value, limit) => {
          const text = JSON.stringify(value);
          expect(jsonDepthExceeds(text, limit)).toBe(depthOf(value) > limit);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("tells a deep body from a wide one with as many brackets", () => {
    expect(jsonDepthExceeds("[[[[]]]]", 3)).toBe(true);
    expect(jsonDepthExceeds("[[],[],[],[]]", 3)).toBe(false);
    expect(jsonDepthExceeds('{"a":"[[[[[[["}', 1)).toBe(false);
    expect(jsonDepthExceeds('{"a":"\\"[[[["}', 1)).toBe(false);
  });
});
