import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runFuzz } from "../fuzz/properties.js";
import { type Protocol, RPC_NAMES } from "../fuzz/requests.js";
import { type FuzzTarget, serverProblems, startFuzzTarget } from "../fuzz/target.js";

/**
 * A short fuzzing run against a real `kmsd serve` process: a few hundred
 * arbitrary and mutated requests per protocol (REST JSON, Connect JSON,
 * gRPC binary), none answered with a server error or in a shape other than
 * the documented one, and the server still up, healthy and within its
 * memory bound afterwards. `npm run fuzz` runs the same properties at
 * length.
 */
const RUNS_PER_PROTOCOL = Number(process.env.FUZZ_CI_RUNS ?? 500);

let target: FuzzTarget;

beforeAll(async () => {
  target = await startFuzzTarget();
}, 60_000);

afterAll(() => target?.stop());

describe("fuzzing", () => {
  it("has a valid request for every RPC to mutate", () => {
    expect(Object.keys(target.templates).sort()).toEqual([...RPC_NAMES].sort());
  });

  it.each(["rest", "connect", "grpc"] satisfies Protocol[])(
    "%s: never a server error, always the documented shape",
    async (protocol) => {
      const report = await runFuzz({
        url: target.url,
        context: target,
        protocols: [protocol],
        runsPerProtocol: RUNS_PER_PROTOCOL,
        batchSize: RUNS_PER_PROTOCOL,
      });
      expect(report.failures).toEqual([]);
      expect(report.runs[protocol]).toBe(RUNS_PER_PROTOCOL);
      expect(await serverProblems(target)).toEqual([]);
    },
    60_000,
  );
});
