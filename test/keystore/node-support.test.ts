import { describe, expect, it } from "vitest";
import { sqliteUnsupportedReason } from "../../src/keystore/sqlite/node-support.js";

describe("the SQLite store's Node.js versions", () => {
  it.each(["20.12.0", "20.20.2", "22.23.3"])("runs on Node.js %s", (version) => {
    expect(sqliteUnsupportedReason(version)).toBeUndefined();
  });

  it.each(["24.9.0", "24.21.0", "26.0.0"])(
    "refuses Node.js %s, naming the versions and the store that work",
    (version) => {
      const reason = sqliteUnsupportedReason(version);
      expect(reason).toContain(version);
      expect(reason).toMatch(/Node\.js 20 or 22/);
      expect(reason).toMatch(/PostgreSQL \(--database-url\)/);
    },
  );

  it("judges the Node.js running the tests, which the suite supports", () => {
    expect(sqliteUnsupportedReason()).toBeUndefined();
  });
});
