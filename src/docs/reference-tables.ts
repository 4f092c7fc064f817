import { Code } from "@connectrpc/connect";
import { settings } from "../config/settings.js";
import { huaweiCodes } from "../errors/huawei-codes.js";

/**
 * Markdown tables written from the code's own tables, so that README.md and
 * docs/errors.md cannot drift from what kmsd does (test/docs checks them).
 */
export function settingsTable(): string {
  const rows = Object.values(settings).map((spec) => {
    const flag = spec.flag === "" ? "(environment only)" : `\`${spec.flag}\``;
    const fallback =
      "defaultText" in spec
        ? spec.defaultText
        : spec.default === ""
          ? "(none)"
          : `\`${String(spec.default)}\``;
    return `| ${flag} | \`${spec.env}\` | ${fallback} | ${spec.description} |`;
  });
  return ["| Flag | Environment | Default | Meaning |", "|---|---|---|---|", ...rows].join("\n");
}

export function errorsTable(): string {
  const rows = Object.entries(huaweiCodes).map(([code, entry]) => {
    const body = "flatBody" in entry ? "flat" : "nested";
    return `| \`${code}\` | ${entry.httpStatus} | ${body} | \`${Code[entry.connectCode]}\` | ${entry.meaning} |`;
  });
  return [
    "| Huawei code | HTTP status (REST) | REST body | Connect / gRPC code | Meaning |",
    "|---|---|---|---|---|",
    ...rows,
  ].join("\n");
}

/** Replaces the text between `<!-- begin NAME -->` and `<!-- end NAME -->`. */
export function replaceSection(document: string, name: string, content: string): string {
  const begin = `<!-- begin ${name} -->`;
  const end = `<!-- end ${name} -->`;
  const from = document.indexOf(begin);
  const to = document.indexOf(end);
  if (from < 0 || to < from) throw new Error(`section ${name} not found`);
  return `${document.slice(0, from + begin.length)}\n${content}\n${document.slice(to)}`;
}
