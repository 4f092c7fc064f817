/**
 * Starting and stopping the processes a benchmark measures: kmsd in its
 * production setup (the compiled CLI, authentication and audit on, SQLite)
 * and the grpc-js baseline, each pinned to the server core when it can be.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface Running {
  readonly port: number;
  readonly process: ChildProcess;
  /** The pids whose CPU counts: the process and, with --workers, its workers. */
  pids(): Promise<number[]>;
  rssMb(): Promise<number>;
  /** The most its processes have each held resident since they started (VmHWM), summed. */
  peakRssMb(): Promise<number>;
  stop(): Promise<void>;
}

/** Resolves with the `count`th line matching `pattern` (a pattern without the g flag). */
function waitForLine(
  child: ChildProcess,
  pattern: RegExp,
  what: string,
  count = 1,
): Promise<RegExpExecArray> {
  const every = new RegExp(pattern.source, `${pattern.flags}g`);
  return new Promise((resolve, reject) => {
    let seen = "";
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const match = [...seen.matchAll(every)][count - 1];
      if (match !== undefined) {
        child.stdout?.off("data", onData);
        child.stderr?.off("data", onData);
        resolve(match);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) =>
      reject(new Error(`${what} exited (${code}) before it was ready:\n${seen}`)),
    );
  });
}

async function childPids(pid: number): Promise<number[]> {
  try {
    const children = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8");
    return children.split(" ").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A /proc/<pid>/status field in kB (VmRSS, VmHWM), summed over `pids`, in MB. */
async function statusMb(pids: number[], field: string): Promise<number> {
  const pattern = new RegExp(`${field}:\\s+(\\d+)`);
  let kb = 0;
  for (const pid of pids) {
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    kb += Number(pattern.exec(status)?.[1] ?? 0);
  }
  return kb / 1024;
}

function running(child: ChildProcess, port: number): Running {
  const pids = async () => {
    const pid = child.pid ?? 0;
    return [pid, ...(await childPids(pid))];
  };
  return {
    port,
    process: child,
    pids,
    rssMb: async () => statusMb(await pids(), "VmRSS"),
    peakRssMb: async () => statusMb(await pids(), "VmHWM"),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export async function startKmsd(options: {
  pin: readonly string[];
  dataDir: string;
  rootKey: string;
  port: number;
  args?: readonly string[];
  /** The checkout whose build to run (this one by default). */
  root?: string;
  /** Flags for node itself, e.g. --cpu-prof to profile under load. */
  nodeArgs?: readonly string[];
  /**
   * A file to keep everything the server prints in (for node flags that
   * trace to stdout, e.g. --trace-gc-nvp); otherwise output after the
   * ready line is dropped.
   */
  outputFile?: string;
}): Promise<Running> {
  const args = [
    "serve",
    "--port",
    String(options.port),
    "--data-dir",
    options.dataDir,
    // info: the "kmsd serving" line is how the harness knows it is up;
    // successful requests are logged at debug, so the log stays quiet.
    "--log-level",
    "info",
    "--workers",
    "1",
    // Benchmarks measure capacity: the per-project rate limit would cap it.
    "--rate-limit-per-second",
    "0",
    ...(options.args ?? []),
  ];
  const child = spawn(
    options.pin[0] ?? process.execPath,
    [
      ...options.pin.slice(1),
      ...(options.pin.length > 0 ? [process.execPath] : []),
      ...(options.nodeArgs ?? []),
      path.join(options.root ?? ROOT, "bin/kmsd.js"),
      ...args,
    ],
    { env: { ...process.env, KMSD_ROOT_KEY: options.rootKey }, stdio: ["ignore", "pipe", "pipe"] },
  );
  if (options.outputFile !== undefined) {
    const output = createWriteStream(options.outputFile);
    child.stdout?.pipe(output);
    child.stderr?.pipe(output);
  }
  // With --workers N, each worker logs it once it listens: a load started
  // before the last one does would be spread over the others only.
  const workersAt = args.lastIndexOf("--workers");
  await waitForLine(child, /kmsd serving/, "kmsd", Number(args[workersAt + 1]));
  return running(child, options.port);
}

export async function startBaseline(options: {
  pin: readonly string[];
  port: number;
}): Promise<Running> {
  const tsx = path.join(ROOT, "node_modules/.bin/tsx");
  const script = path.join(ROOT, "bench/baseline-server.ts");
  const child = spawn(
    options.pin[0] ?? tsx,
    [
      ...options.pin.slice(1),
      ...(options.pin.length > 0 ? [tsx] : []),
      script,
      String(options.port),
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  await waitForLine(child, /baseline listening/, "baseline");
  return running(child, options.port);
}
