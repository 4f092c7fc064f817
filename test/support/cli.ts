import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: commands run from there, as in a user's checkout. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BIN = path.join(ROOT, "bin", "kmsd.js");

export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The test runner's environment without any KMSD_* variable, plus the given ones. */
export function kmsdEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("KMSD_")) env[name] = value;
  }
  return { ...env, ...extra };
}

/** A running `node bin/kmsd.js ...`, its output collected as it comes. */
export interface KmsdProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly finished: Promise<Finished>;
  /** Resolves with the first stderr line (parsed JSON) for which `match` holds. */
  logLine(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
}

export function spawnKmsd(args: readonly string[], env: Record<string, string>): KmsdProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: kmsdEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const listeners = new Set<() => void>();
  child.stdout?.setEncoding("utf8").on("data", (text: string) => {
    stdout += text;
  });
  child.stderr?.setEncoding("utf8").on("data", (text: string) => {
    stderr += text;
    for (const listener of listeners) listener();
  });
  const finished = new Promise<Finished>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    finished,
    logLine(match, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (const line of stderr.split("\n")) {
            if (!line.startsWith("{")) continue;
            const parsed = JSON.parse(line) as Record<string, unknown>;
            if (match(parsed)) {
              listeners.delete(check);
              clearTimeout(timer);
              resolve(parsed);
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no matching log line in ${timeoutMs} ms:\n${stderr}`));
        }, timeoutMs);
        listeners.add(check);
        void finished.then(() => {
          if (!listeners.has(check)) return;
          listeners.delete(check);
          clearTimeout(timer);
          reject(new Error(`kmsd exited first:\n${stderr}`));
        });
        check();
      });
    },
  };
}

/** Runs `node bin/kmsd.js ...` to completion. */
export function runKmsd(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<Finished> {
  return spawnKmsd(args, env).finished;
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** What a finished command left: its exit code and output (killed by a signal, its code is null). */
export async function outcome(command: KmsdProcess): Promise<CliResult> {
  const { code, stdout, stderr } = await command.finished;
  return { code, stdout, stderr };
}
