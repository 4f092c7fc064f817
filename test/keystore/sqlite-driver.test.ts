import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { openSqliteDatabase, sqliteDriverPackage } from "../../src/keystore/sqlite/driver.js";

describe("the SQLite driver for each Node.js", () => {
  it.each(["20.12.0", "20.20.2", "22.23.3", "23.11.0"])(
    "is better-sqlite3 12 on Node.js %s",
    (version) => {
      expect(sqliteDriverPackage(version)).toBe("better-sqlite3");
    },
  );

  // 12 aborts the process there when it frees a statement (driver.ts).
  it.each(["24.9.0", "24.21.0", "26.0.0"])("is better-sqlite3 13 on Node.js %s", (version) => {
    expect(sqliteDriverPackage(version)).toBe("better-sqlite3-node24");
  });

  it("loads, on the Node.js running the tests, the version its package names", () => {
    const expected = sqliteDriverPackage() === "better-sqlite3" ? /^12\./ : /^13\./;
    const db = openSqliteDatabase(":memory:");
    try {
      expect(db.prepare("SELECT sqlite_version() AS v").get()).toMatchObject({
        v: expect.any(String),
      });
    } finally {
      db.close();
    }
    // The version of the package it came from, as npm installed it.
    const require = createRequire(import.meta.url);
    expect(require(`${sqliteDriverPackage()}/package.json`).version).toMatch(expected);
  });
});
