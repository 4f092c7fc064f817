import { readFile, writeFile } from "node:fs/promises";

/**
 * Puts `report` between the results markers of a docs page (creating the
 * page, titled `title`, when it has none), leaving the rest as written.
 */
export async function writeResults(file: string, title: string, report: string): Promise<void> {
  const current = await readFile(file, "utf8").catch(() => "");
  const begin = "<!-- begin results -->";
  const end = "<!-- end results -->";
  const from = current.indexOf(begin);
  const to = current.indexOf(end);
  const next =
    from >= 0 && to > from
      ? `${current.slice(0, from + begin.length)}\n${report}${current.slice(to)}`
      : `# ${title}\n\n${begin}\n${report}${end}\n`;
  await writeFile(file, next);
}
