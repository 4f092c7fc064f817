/**
 * Driving load with the standard tools and measuring the server while they
 * run: throughput, latency percentiles and the server's CPU time per
 * request. h2load drives both HTTP versions (`loadOver`), so that every
 * latency is the same measure: the time each request took. wrk drives the
 * loads that need a script (a key drawn at random per request); its
 * latencies are corrected for coordinated omission (see `wrk`).
 */
import { execFile, spawnSync } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Server CPU (user + system) per request, in microseconds. */
  readonly cpuUsPerRequest: number;
  /** The system (kernel) part of cpuUsPerRequest. */
  readonly systemUsPerRequest: number;
  readonly failures: number;
}

export interface Target {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer | string;
}

export interface LoadOptions {
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Requests in flight. */
  readonly concurrency: number;
  /** The processes whose CPU time counts as the server's. */
  readonly serverPids: () => Promise<number[]>;
  /** Prefix for the load generator's command (e.g. taskset -c 1). */
  readonly pin: readonly string[];
  readonly workDir: string;
  /**
   * Requests the server has answered with an error so far (kmsd's metrics):
   * failures a load tool cannot see, gRPC's. The run's failures are the
   * larger of the tool's count and this one's growth.
   */
  readonly failedRequests?: () => Promise<number>;
}

export function missingTools(): string[] {
  return ["h2load", "wrk"].filter((tool) => spawnSync("which", [tool]).status !== 0);
}

/**
 * The command prefixes that pin the server to core 0 and the load
 * generator to core 1 (taskset, where it exists; else nothing is pinned).
 */
export function corePins(): {
  readonly pinned: boolean;
  readonly server: string[];
  readonly load: string[];
} {
  const pinned = spawnSync("which", ["taskset"]).status === 0;
  return {
    pinned,
    server: pinned ? ["taskset", "-c", "0"] : [],
    load: pinned ? ["taskset", "-c", "1"] : [],
  };
}

const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"]).stdout?.toString().trim() || 100);

/** CPU seconds of a measured run, user and system together and system alone. */
interface CpuTime {
  readonly total: number;
  readonly system: number;
}

/** CPU seconds of the processes so far. */
async function cpuSeconds(pids: number[]): Promise<CpuTime> {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start at ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    user += Number(fields[11]);
    system += Number(fields[12]);
  }
  return { total: (user + system) / CLOCK_TICKS, system: system / CLOCK_TICKS };
}

/** CPU time spent since `before`. */
async function cpuSince(pids: number[], before: CpuTime): Promise<CpuTime> {
  const now = await cpuSeconds(pids);
  return { total: now.total - before.total, system: now.system - before.system };
}

function perRequest(cpu: CpuTime, requests: number) {
  return {
    cpuUsPerRequest: (cpu.total * 1e6) / Math.max(1, requests),
    systemUsPerRequest: (cpu.system * 1e6) / Math.max(1, requests),
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

interface H2loadRun {
  /** Connections, each with `streams` requests in flight at most. */
  readonly clients: number;
  readonly streams: number;
  /** HTTP/1.1 (`--h1`, one request in flight per connection) rather than h2c. */
  readonly http1?: boolean;
  readonly seconds: number;
  /** Requests per second per connection; unpaced (as fast as answers come) when absent. */
  readonly rpsPerClient?: number;
  /** Where per-request lines go, for the latency percentiles. */
  readonly logFile?: string;
}

/** Runs h2load once against the target; resolves to its summary output. */
async function runH2load(
  target: Target,
  bodyFile: string,
  pin: readonly string[],
  spec: H2loadRun,
): Promise<string> {
  const [command, ...args] = [
    ...pin,
    "h2load",
    ...(spec.http1 === true ? ["--h1"] : []),
    "-c",
    String(spec.clients),
    "-m",
    String(spec.streams),
    "-D",
    String(spec.seconds),
    ...(spec.rpsPerClient === undefined ? [] : ["--rps", String(spec.rpsPerClient)]),
    "-d",
    bodyFile,
    ...Object.entries(target.headers).flatMap(([name, value]) => ["-H", `${name}: ${value}`]),
    ...(spec.logFile === undefined ? [] : ["--log-file", spec.logFile]),
    target.url,
  ];
  const { stdout } = await run(command ?? "h2load", args, { maxBuffer: 1 << 24 });
  return stdout;
}

/** Counts from h2load's own summary; latencies from its per-request log. */
async function h2loadResult(
  stdout: string,
  logFile: string,
  plannedSeconds: number,
  cpu: CpuTime,
): Promise<LoadResult> {
  const latencies: number[] = [];
  for (const line of (await readFile(logFile, "utf8")).split("\n")) {
    const [, status, micros] = line.split("\t");
    if (status !== undefined && micros !== undefined) latencies.push(Number(micros) / 1000);
  }
  latencies.sort((a, b) => a - b);
  const finished = /finished in ([\d.]+)s, ([\d.]+) req\/s/.exec(stdout);
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(stdout);
  const ok = /status codes: (\d+) 2xx/.exec(stdout);
  const seconds = Number(finished?.[1] ?? plannedSeconds);
  const requests = Number(done?.[1] ?? 0);
  const failures = requests - Math.min(Number(done?.[2] ?? 0), Number(ok?.[1] ?? 0));
  return {
    requests,
    seconds,
    rps: Number(finished?.[2] ?? requests / seconds),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    ...perRequest(cpu, requests),
    failures,
  };
}

/** HTTP/2 (h2c, prior knowledge) load with h2load: one connection, `concurrency` streams. */
export function h2load(target: Target, options: LoadOptions): Promise<LoadResult> {
  return loadOver("h2", target, options);
}

/**
 * Load over either HTTP version with h2load, `concurrency` requests in
 * flight: HTTP/2 as one connection with that many streams, HTTP/1.1 as
 * that many keep-alive connections with one request each (wrk's shape).
 */
export async function loadOver(
  http: "h2" | "h1",
  target: Target,
  options: LoadOptions,
): Promise<LoadResult> {
  const bodyFile = `${options.workDir}/h2load-body`;
  const logFile = `${options.workDir}/h2load.log`;
  await writeFile(bodyFile, target.body);
  await rm(logFile, { force: true });
  const shape =
    http === "h2"
      ? { clients: 1, streams: options.concurrency }
      : { clients: options.concurrency, streams: 1, http1: true };
  await runH2load(target, bodyFile, options.pin, { ...shape, seconds: options.warmupSeconds });
  const pids = await options.serverPids();
  const failedBefore = (await options.failedRequests?.()) ?? 0;
  const before = await cpuSeconds(pids);
  const stdout = await runH2load(target, bodyFile, options.pin, {
    ...shape,
    seconds: options.seconds,
    logFile,
  });
  const cpu = await cpuSince(pids, before);
  const result = await h2loadResult(stdout, logFile, options.seconds, cpu);
  const failedAfter = (await options.failedRequests?.()) ?? 0;
  return { ...result, failures: Math.max(result.failures, failedAfter - failedBefore) };
}

export interface PacedOptions {
  readonly seconds: number;
  /** Requests per second in all (spread over the connections, rounded down per connection). */
  readonly rps: number;
  readonly clients: number;
  /** Most requests in flight per connection (enough for rps × latency). */
  readonly streams: number;
  readonly pin: readonly string[];
  /** A directory of its own: the body and log files live there. */
  readonly workDir: string;
}

/**
 * HTTP/2 load at a fixed rate (h2load --rps): for soak runs, where the
 * server must keep up with a steady rate rather than be driven flat out.
 */
export async function h2loadPaced(target: Target, options: PacedOptions): Promise<LoadResult> {
  const bodyFile = `${options.workDir}/h2load-body`;
  const logFile = `${options.workDir}/h2load.log`;
  await writeFile(bodyFile, target.body);
  await rm(logFile, { force: true });
  const stdout = await runH2load(target, bodyFile, options.pin, {
    clients: options.clients,
    streams: options.streams,
    seconds: options.seconds,
    rpsPerClient: Math.max(1, Math.floor(options.rps / options.clients)),
    logFile,
  });
  // Paced runs measure latency at a set rate: no CPU is counted.
  return h2loadResult(stdout, logFile, options.seconds, { total: 0, system: 0 });
}

/**
 * HTTP/1.1 load with wrk: `concurrency` keep-alive connections, one request
 * in flight each, and an optional Lua script. wrk's latency percentiles are
 * corrected for coordinated omission: a request that took k times the mean
 * interval between a connection's requests adds k - 1 samples, each one
 * interval shorter. One garbage collection pause of 200 ms then reads as a
 * p99 of 130–200 ms where the requests themselves (h2load, or a packet
 * capture) had a p99 of ~4.5 ms (docs/benchmarks.md, "wrk's p99"). That is an open-loop client's view, not
 * the closed-loop "32 in flight" the targets state: use loadOver for
 * latencies, wrk where a script must vary the requests.
 */
export async function wrk(
  target: Target,
  options: LoadOptions,
  script?: string,
): Promise<LoadResult> {
  const scriptFile = `${options.workDir}/wrk.lua`;
  await writeFile(scriptFile, script ?? wrkScript(target));
  const args = (seconds: number) => [
    ...options.pin,
    "wrk",
    "-t1",
    `-c${options.concurrency}`,
    `-d${seconds}s`,
    "--latency",
    "-s",
    scriptFile,
    target.url,
  ];
  const [command, ...rest] = args(options.warmupSeconds);
  await run(command ?? "wrk", rest);
  const pids = await options.serverPids();
  const before = await cpuSeconds(pids);
  const [measured, ...measuredArgs] = args(options.seconds);
  const { stdout } = await run(measured ?? "wrk", measuredArgs);
  const cpu = await cpuSince(pids, before);
  const requests = Number(/(\d+) requests in ([\d.]+)(m?s)/.exec(stdout)?.[1] ?? 0);
  const took = /\d+ requests in ([\d.]+)(m?s)/.exec(stdout);
  const seconds = took ? Number(took[1]) / (took[2] === "ms" ? 1000 : 1) : options.seconds;
  const failures = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  return {
    requests,
    seconds,
    rps: requests / seconds,
    p50Ms: wrkPercentile(stdout, "50"),
    p99Ms: wrkPercentile(stdout, "99"),
    ...perRequest(cpu, requests),
    failures,
  };
}

function wrkPercentile(stdout: string, p: string): number {
  const match = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(stdout);
  if (match === null) return Number.NaN;
  const value = Number(match[1]);
  return match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value;
}

function wrkScript(target: Target): string {
  const headers = Object.entries(target.headers)
    .map(([name, value]) => `wrk.headers[${JSON.stringify(name)}] = ${JSON.stringify(value)}`)
    .join("\n");
  return `wrk.method = "POST"\nwrk.body = ${luaString(String(target.body))}\n${headers}\n`;
}

/** A Lua long string holding the text verbatim. */
export function luaString(text: string): string {
  let level = "";
  while (text.includes(`]${level}]`)) level += "=";
  return `[${level}[${text}]${level}]`;
}
