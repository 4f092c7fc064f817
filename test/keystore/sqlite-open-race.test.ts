import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { sqliteDriver } from "../../src/keystore/sqlite/driver.js";
import { retryWhileBusy } from "../../src/keystore/sqlite/sql.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Opens and closes the store in `dataDir` in a process of its own (the built code); its exit code and stderr. */
function openInAnotherProcess(dataDir: string): Promise<{ code: number | null; stderr: string }> {
  const store = path.join(ROOT, "dist/src/keystore/sqlite/sqlite-store.js");
  const script = `const { openSqliteStore } = await import(${JSON.stringify(store)});
    const store = await openSqliteStore({ dataDir: process.argv[1] });
    await store.close();`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, dataDir]);
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

describe("opening a new SQLite store from several processes at once", () => {
  it("succeeds in every process: none is refused while another switches the file to WAL", async () => {
    for (let round = 0; round < 4; round++) {
      const dataDir = await mkdtemp(path.join(tmpdir(), "kmsd-open-race-"));
      dirs.push(dataDir);
      const results = await Promise.all(
        Array.from({ length: 6 }, () => openInAnotherProcess(dataDir)),
      );
      expect(results.filter((result) => result.code !== 0)).toEqual([]);
    }
  }, 60_000);
});

describe("retryWhileBusy", () => {
  const busy = () => new (sqliteDriver().SqliteError)("database is locked", "SQLITE_BUSY");

  it("runs the function again while SQLite answers SQLITE_BUSY", async () => {
    let calls = 0;
    const result = await retryWhileBusy(() => {
      calls++;
      if (calls < 3) throw busy();
      return "wal";
    }, 5000);
    expect(result).toBe("wal");
    expect(calls).toBe(3);
  });

  it("throws any other error at once", async () => {
    let calls = 0;
    const failing = () => {
      calls++;
      throw new (sqliteDriver().SqliteError)("disk I/O error", "SQLITE_IOERR");
    };
    await expect(retryWhileBusy(failing, 5000)).rejects.toThrow("disk I/O error");
    expect(calls).toBe(1);
  });

  it("gives up with the busy error once the time is up", async () => {
    let calls = 0;
    const started = Date.now();
    const alwaysBusy = () => {
      calls++;
      throw busy();
    };
    await expect(retryWhileBusy(alwaysBusy, 100)).rejects.toThrow("database is locked");
    expect(calls).toBeGreaterThan(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
  });
});
