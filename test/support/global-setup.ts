import { spawnSync } from "node:child_process";

/**
 * CLI tests run bin/kmsd.js, which runs the compiled dist/: build it once
 * first. Type errors do not stop the tests (tsc still emits, and CI's
 * typecheck step reports them); a build that emits nothing does.
 */
export default function setup(): void {
  const build = spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  // tsc exits 2 when it emitted despite type errors, 1 when it could not emit.
  if (build.status !== 0 && build.status !== 2) {
    throw new Error(`building dist/ failed (tsc exit ${build.status})`);
  }
}
