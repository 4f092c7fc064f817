import { rootKeyStatus, rotateRootKey } from "../../keys/root-key-rotation.js";
import { withCore } from "../admin-call.js";
import { audited } from "../audited.js";
import { type Command, type CommandContext, STORE_SETTINGS, UsageError } from "../command.js";

const DEFAULT_BATCH = 100;
/** Records `status` counts at most per kind (it loads them to count them). */
const STATUS_LIMIT = 1_000_000;

function print(context: CommandContext, value: unknown): number {
  context.stdout(`${JSON.stringify(value, null, 2)}\n`);
  return 0;
}

function batchSize(value: string | undefined): number {
  if (value === undefined) return DEFAULT_BATCH;
  const size = Number(value);
  if (!/^[0-9]+$/.test(value) || size < 1 || size > 10_000) {
    throw new UsageError("--batch-size must be an integer from 1 to 10000");
  }
  return size;
}

export const rootKeyCommands: Command[] = [
  {
    path: ["root-key", "rotate"],
    summary:
      "Rewrap every key, credential and the audit key under the root key (KMSD_ROOT_KEY), reading the old ones with the previous root keys; resumable.",
    options: {
      "batch-size": { description: `Records rewrapped per batch (default ${DEFAULT_BATCH})` },
    },
    settings: STORE_SETTINGS,
    run: (context) => {
      const size = batchSize(context.options["batch-size"]);
      return audited(context, "RotateRootKey", async ({ store, rootKeys }, target) => {
        target.subject = rootKeys.primary.id;
        const report = await rotateRootKey(store, rootKeys, {
          batchSize: size,
          onProgress: ({ keyVersions, credentials }) =>
            context.stderr(
              `kmsd: rewrapped ${keyVersions} key versions, ${credentials} credentials\n`,
            ),
        });
        return print(context, report);
      });
    },
  },
  {
    path: ["root-key", "status"],
    summary:
      "Show which root key the store names and how many records are still wrapped under another one.",
    options: {},
    settings: STORE_SETTINGS,
    run: (context) =>
      withCore(context.config, async ({ store, rootKeys }) =>
        print(context, await rootKeyStatus(store, rootKeys, STATUS_LIMIT)),
      ),
  },
];
