import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { VersionMaterial } from "../../src/keys/version-material.js";

describe("VersionMaterial", () => {
  it("keeps its own copy: wiping the caller's bytes leaves the material intact", () => {
    const bytes = randomBytes(32);
    const expected = Buffer.from(bytes);
    const material = new VersionMaterial(bytes);
    bytes.fill(0);
    expect(Buffer.from(material.bytes)).toEqual(expected);
  });

  it("keeps many versions apart, across slabs", () => {
    const originals = Array.from({ length: 300 }, () => randomBytes(32));
    const materials = originals.map((bytes) => new VersionMaterial(bytes));
    materials.forEach((material, index) => {
      expect(Buffer.from(material.bytes)).toEqual(originals[index]);
    });
  });

  it("shows no material to inspect, JSON or string conversion", () => {
    const bytes = Buffer.alloc(32, 0xab);
    const material = new VersionMaterial(bytes);
    const hex = bytes.toString("hex");
    const base64 = bytes.toString("base64");
    for (const shown of [
      inspect(material, { showHidden: true, depth: 5 }),
      JSON.stringify({ material }),
      String(material),
    ]) {
      expect(shown).not.toContain(hex);
      expect(shown).not.toContain(base64);
      expect(shown).not.toMatch(/ab ab|171, 171/);
    }
  });
});
