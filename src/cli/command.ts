import { parseArgs } from "node:util";
import { type KmsdConfig, resolveConfig, type SettingName, settings } from "../config/settings.js";
import { STORE_SETTING_NAMES } from "../keystore/open-store.js";

/** An option of a command (besides the settings it reads). */
export interface CommandOption {
  readonly description: string;
  readonly required?: true;
  readonly boolean?: true;
}

export interface CommandContext {
  readonly config: KmsdConfig;
  readonly options: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export interface Command {
  /** Words that name it, e.g. ["keys", "create"]. */
  readonly path: readonly string[];
  readonly summary: string;
  readonly options: Readonly<Record<string, CommandOption>>;
  /** The settings it reads, offered as flags and shown in its help. */
  readonly settings: readonly SettingName[];
  /** Resolves to the process exit code. */
  run(context: CommandContext): Promise<number>;
}

/** A mistake in how the command was called: answered with exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The settings of a command that opens the store: where it is (SQLite or PostgreSQL), its root keys, logging. */
export const STORE_SETTINGS: readonly SettingName[] = [
  ...STORE_SETTING_NAMES,
  "rootKey",
  "rootKeyFile",
  "previousRootKeys",
  "previousRootKeysFile",
  "logLevel",
];

/** Settings every command takes besides its own: where the others may come from. */
const commonSettings: readonly SettingName[] = ["config"];

function settingsOf(command: Command): SettingName[] {
  return [
    ...command.settings,
    ...commonSettings.filter((name) => !command.settings.includes(name)),
  ];
}

export function commandHelp(command: Command): string {
  const lines = [`Usage: kmsd ${command.path.join(" ")} [options]`, "", command.summary, ""];
  const rows: [string, string][] = [];
  for (const [name, option] of Object.entries(command.options)) {
    const value = option.boolean ? "" : " <value>";
    rows.push([
      `--${name}${value}`,
      `${option.description}${option.required ? " (required)" : ""}`,
    ]);
  }
  for (const name of settingsOf(command)) {
    const spec = settings[name];
    const flag = spec.flag === "" ? spec.env : `${spec.flag} <value>`;
    const shown =
      "envOnly" in spec ? "" : ` [${spec.env}, default ${JSON.stringify(spec.default)}]`;
    rows.push([flag, `${spec.description}${shown}`]);
  }
  rows.push(["--help", "Show this help"]);
  const width = Math.max(...rows.map(([flag]) => flag.length));
  lines.push("Options:", ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`));
  return `${lines.join("\n")}\n`;
}

/** Parses argv (after the command words) into options and resolved settings. */
export function parseCommandArgs(
  command: Command,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { help: boolean; config: KmsdConfig; options: Record<string, string | undefined> } {
  const flagToSetting = new Map<string, SettingName>();
  const parseOptions: Record<string, { type: "string" | "boolean" }> = {
    help: { type: "boolean" },
  };
  for (const [name, option] of Object.entries(command.options)) {
    parseOptions[name] = { type: option.boolean ? "boolean" : "string" };
  }
  for (const name of settingsOf(command)) {
    const flag = settings[name].flag;
    if (flag === "") continue;
    parseOptions[flag.slice(2)] = { type: "string" };
    flagToSetting.set(flag.slice(2), name);
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options: parseOptions, strict: true }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const help = values.help === true;
  const flags: Partial<Record<SettingName, string>> = {};
  const options: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(values)) {
    const setting = flagToSetting.get(name);
    if (setting !== undefined) flags[setting] = String(value);
    else if (name !== "help")
      options[name] = value === true ? "true" : (value as string | undefined);
  }
  if (!help) {
    for (const [name, option] of Object.entries(command.options)) {
      if (option.required && options[name] === undefined) {
        throw new UsageError(`--${name} is required`);
      }
    }
  }
  return { help, config: resolveConfig(flags, env), options };
}
