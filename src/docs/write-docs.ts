import { readFile, writeFile } from "node:fs/promises";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { authErrorsTable, rolesTable } from "../auth/roles.js";
import { errorsTable, replaceSection, settingsTable } from "./reference-tables.js";

/** The generated sections of the documentation: file, section name, content. */
export const generatedSections: readonly [string, string, () => string][] = [
  ["README.md", "settings", settingsTable],
  ["docs/errors.md", "error-codes", errorsTable],
  ["docs/authentication.md", "roles", () => rolesTable(KmsService)],
  ["docs/authentication.md", "auth-errors", authErrorsTable],
];

/** `npm run docs`: rewrites the generated sections in place. */
async function main(): Promise<void> {
  for (const [file, name, render] of generatedSections) {
    const before = await readFile(file, "utf8");
    const after = replaceSection(before, name, render());
    if (after !== before) {
      await writeFile(file, after);
      console.log(`updated ${file} (${name})`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
