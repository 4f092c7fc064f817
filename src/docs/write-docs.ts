import { readFile, writeFile } from "node:fs/promises";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { authErrorsTable, rolesTable } from "../auth/roles.js";
import { openApiJson } from "../transport/rest/openapi.js";
import { RouteTable } from "../transport/rest/route-table.js";
import { errorsTable, replaceSection, settingsTable } from "./reference-tables.js";

/** The generated sections of the documentation: file, section name, content. */
export const generatedSections: readonly [string, string, () => string][] = [
  ["README.md", "settings", settingsTable],
  ["docs/errors.md", "error-codes", errorsTable],
  ["docs/authentication.md", "roles", () => rolesTable(KmsService)],
  ["docs/authentication.md", "auth-errors", authErrorsTable],
];

/** The generated files of the documentation, whole: file, content. */
export const generatedFiles: readonly [string, () => string][] = [
  // The same document GET /openapi.json serves.
  ["docs/openapi.json", () => openApiJson(new RouteTable([KmsService]))],
];

/** `npm run docs`: rewrites the generated sections and files in place. */
async function main(): Promise<void> {
  for (const [file, name, render] of generatedSections) {
    const before = await readFile(file, "utf8");
    const after = replaceSection(before, name, render());
    if (after !== before) {
      await writeFile(file, after);
      console.log(`updated ${file} (${name})`);
    }
  }
  for (const [file, render] of generatedFiles) {
    const before = await readFile(file, "utf8").catch(() => undefined);
    const after = render();
    if (after !== before) {
      await writeFile(file, after);
      console.log(`updated ${file}`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
