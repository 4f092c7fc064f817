import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { replaceSection } from "../../src/docs/reference-tables.js";
import { generatedFiles, generatedSections } from "../../src/docs/write-docs.js";

describe("generated documentation", () => {
  it.each(generatedSections)(
    "%s section %s matches the code (npm run docs)",
    async (file, name, render) => {
      const document = await readFile(file, "utf8");
      expect(replaceSection(document, name, render())).toBe(document);
    },
  );

  it.each(generatedFiles)("%s matches the code (npm run docs)", async (file, render) => {
    expect(await readFile(file, "utf8")).toBe(render());
  });
});
