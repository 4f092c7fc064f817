import { createServer } from "node:net";
import { type KmsdProcess, spawnKmsd } from "./cli.js";
import { TEST_ROOT_KEY } from "./kmsd.js";

/** A `kmsd serve` child process on a loopback port, ready to serve. */
export interface ReadyServer {
  readonly url: string;
  readonly port: number;
  readonly process: KmsdProcess;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/**
 * Unlike test/audit/cli-helpers.ts's spawnServe, which waits for the
 * "kmsd serving" log line, this polls /readyz: it works at any log level
 * (the fuzzer runs kmsd at warn), and the child's output is kept whole.
 *
 * Starts `node bin/kmsd.js serve` with one worker (so that the child's pid
 * is the server's) on the data directory, with the test root key and the
 * given extra arguments, and waits until /readyz answers 200.
 */
export async function spawnReadyServer(
  dataDir: string,
  args: readonly string[],
): Promise<ReadyServer> {
  const port = await freePort();
  const child = spawnKmsd(
    ["serve", "--port", String(port), "--data-dir", dataDir, "--workers", "1", ...args],
    { KMSD_ROOT_KEY: TEST_ROOT_KEY },
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.child.exitCode !== null) throw new Error(`kmsd exited:\n${child.stderr()}`);
    const ready = await fetch(`${url}/readyz`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`kmsd not ready in 30 s:\n${child.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    port,
    process: child,
    async stop() {
      if (child.child.exitCode === null && child.child.signalCode === null) {
        child.child.kill("SIGTERM");
      }
      await child.finished;
    },
  };
}
