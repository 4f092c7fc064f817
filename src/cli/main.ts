import { ConnectError } from "@connectrpc/connect";
import { SettingError } from "../config/settings.js";
import { huaweiCodeOf } from "../errors/kms-error.js";
import { RootKeyError } from "../keys/root-key.js";
import { type Command, commandHelp, parseCommandArgs, UsageError } from "./command.js";
import { accessCommands } from "./commands/access.js";
import { auditCommands } from "./commands/audit.js";
import { keysCommands } from "./commands/keys.js";
import { rootKeyCommands } from "./commands/root-key.js";
import { serveCommand } from "./commands/serve.js";
import { storeCommands } from "./commands/store.js";

const commands: Command[] = [
  serveCommand,
  ...keysCommands,
  ...accessCommands,
  ...auditCommands,
  ...rootKeyCommands,
  ...storeCommands,
];

function mainHelp(): string {
  const width = Math.max(...commands.map((command) => command.path.join(" ").length));
  return [
    "kmsd: a key management service speaking Huawei Cloud KMS's API over gRPC, Connect and REST.",
    "",
    "Usage: kmsd <command> [options]",
    "",
    "Commands:",
    ...commands.map((command) => `  ${command.path.join(" ").padEnd(width)}  ${command.summary}`),
    "",
    "Run `kmsd <command> --help` for a command's options.",
    "",
  ].join("\n");
}

/** The command the arguments name: the longest path matching the first words. */
function findCommand(argv: readonly string[]): Command | undefined {
  return commands
    .filter((command) => command.path.every((word, index) => argv[index] === word))
    .sort((a, b) => b.path.length - a.path.length)[0];
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const stdout = (text: string) => process.stdout.write(text);
  const stderr = (text: string) => process.stderr.write(text);
  const command = findCommand(argv);
  if (command === undefined) {
    const asksHelp = argv.length === 0 || argv[0] === "--help" || argv[0] === "help";
    (asksHelp ? stdout : stderr)(
      asksHelp
        ? mainHelp()
        : `kmsd: unknown command ${JSON.stringify(argv.join(" "))}\n\n${mainHelp()}`,
    );
    return asksHelp ? 0 : 2;
  }
  try {
    const { help, config, options } = parseCommandArgs(
      command,
      argv.slice(command.path.length),
      env,
    );
    if (help) {
      stdout(commandHelp(command));
      return 0;
    }
    return await command.run({ config, options, stdout, stderr });
  } catch (error) {
    if (error instanceof UsageError || error instanceof SettingError) {
      stderr(`kmsd: ${error.message}\n\n${commandHelp(command)}`);
      return 2;
    }
    if (error instanceof RootKeyError) {
      stderr(`kmsd: ${error.message}\n`);
      return 2;
    }
    const message =
      error instanceof ConnectError
        ? `${huaweiCodeOf(error)}: ${error.rawMessage}`
        : (error as Error).message;
    stderr(`kmsd: ${message}\n`);
    return 1;
  }
}
