import type { JsonObject } from "@bufbuild/protobuf";
import { KmsService } from "../../../gen/kms/v1/kms_pb.js";
import { callRpc, storeSettings, withCore } from "../admin-call.js";
import type { Command, CommandContext, CommandOption } from "../command.js";

const project: CommandOption = { description: "Project id", required: true };
const keyId: CommandOption = { description: "Key id", required: true };

function print(context: CommandContext, value: unknown): number {
  context.stdout(`${JSON.stringify(value, null, 2)}\n`);
  return 0;
}

/** Drops options the caller did not give, so the RPC sees its defaults. */
function given(fields: Record<string, string | undefined>): JsonObject {
  const out: JsonObject = {};
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) out[name] = value;
  return out;
}

const method = KmsService.method;

export const keysCommands: Command[] = [
  {
    path: ["keys", "create"],
    summary: "Create an AES_256 customer master key and print it.",
    options: {
      project,
      alias: { description: "Key alias, unique in the project", required: true },
      description: { description: "Key description" },
    },
    settings: storeSettings,
    run: (context) =>
      withCore(context.config, async (core) => {
        const { options } = context;
        const created = await callRpc(
          core,
          method.createKey,
          given({
            project_id: options.project,
            key_alias: options.alias,
            key_description: options.description,
          }),
        );
        const keyInfo = created.key_info as JsonObject;
        const described = await callRpc(core, method.describeKey, {
          project_id: options.project ?? "",
          key_id: keyInfo.key_id ?? "",
        });
        return print(context, described.key_info);
      }),
  },
  {
    path: ["keys", "describe"],
    summary: "Print one key.",
    options: { project, "key-id": keyId },
    settings: storeSettings,
    run: (context) =>
      withCore(context.config, async (core) => {
        const { options } = context;
        const described = await callRpc(
          core,
          method.describeKey,
          given({ project_id: options.project, key_id: options["key-id"] }),
        );
        return print(context, described.key_info);
      }),
  },
  {
    path: ["keys", "list"],
    summary: "List the project's keys (one page; pass --marker for the next).",
    options: {
      project,
      limit: { description: "Keys per page, 1..1000" },
      marker: { description: "next_marker of the previous page" },
      state: {
        description: 'Only keys in this state ("2" enabled, "3" disabled, "4" pending deletion)',
      },
    },
    settings: storeSettings,
    run: (context) =>
      withCore(context.config, async (core) => {
        const { options } = context;
        const listed = await callRpc(
          core,
          method.listKeys,
          given({
            project_id: options.project,
            limit: options.limit,
            marker: options.marker,
            key_state: options.state,
          }),
        );
        return print(context, listed);
      }),
  },
  ...(
    [
      ["enable", "Enable a disabled key.", method.enableKey],
      ["disable", "Disable a key: it can no longer encrypt or decrypt.", method.disableKey],
      [
        "cancel-deletion",
        "Cancel a scheduled deletion (the key returns disabled).",
        method.cancelKeyDeletion,
      ],
    ] as const
  ).map(
    ([name, summary, rpc]): Command => ({
      path: ["keys", name],
      summary,
      options: { project, "key-id": keyId },
      settings: storeSettings,
      run: (context) =>
        withCore(context.config, async (core) => {
          const { options } = context;
          return print(
            context,
            await callRpc(
              core,
              rpc,
              given({ project_id: options.project, key_id: options["key-id"] }),
            ),
          );
        }),
    }),
  ),
  {
    path: ["keys", "schedule-deletion"],
    summary: "Schedule a key's destruction after 7..1096 days.",
    options: {
      project,
      "key-id": keyId,
      days: { description: "Days until destruction", required: true },
    },
    settings: storeSettings,
    run: (context) =>
      withCore(context.config, async (core) => {
        const { options } = context;
        return print(
          context,
          await callRpc(
            core,
            method.scheduleKeyDeletion,
            given({
              project_id: options.project,
              key_id: options["key-id"],
              pending_days: options.days,
            }),
          ),
        );
      }),
  },
];
