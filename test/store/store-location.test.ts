import { describe, expect, it } from "vitest";
import {
  describeLocation,
  parseStoreLocation,
} from "../../src/keystore/transfer/store-location.js";

describe("store locations for kmsd store copy", () => {
  it("a postgres:// or postgresql:// URL names a database, anything else a data directory", () => {
    expect(parseStoreLocation("postgres://u@h/db")).toEqual({
      kind: "postgres",
      url: "postgres://u@h/db",
    });
    expect(parseStoreLocation("postgresql://u@h/db").kind).toBe("postgres");
    expect(parseStoreLocation("./postgres://x")).toEqual({
      kind: "sqlite",
      dataDir: "./postgres://x",
    });
    expect(parseStoreLocation("/var/lib/kmsd")).toEqual({
      kind: "sqlite",
      dataDir: "/var/lib/kmsd",
    });
  });

  it("never shows a URL's password", () => {
    const shown = describeLocation(
      parseStoreLocation("postgres://kmsd:s3cret-pass@db:5432/kms?schema=kmsd"),
    );
    expect(shown).not.toContain("s3cret-pass");
    expect(shown).toBe("postgres://kmsd:***@db:5432/kms?schema=kmsd");
    expect(describeLocation(parseStoreLocation("postgres://%zz:pw@"))).not.toContain("pw");
  });
});
