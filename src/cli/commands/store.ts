import { loadAuditKeys } from "../../audit/audit-keys.js";
import { ChainVerifier, describeBreak } from "../../audit/chain.js";
import type { SettingName } from "../../config/settings.js";
import { ROOT_KEY_META, type RootKey, resolveRootKey } from "../../keys/root-key.js";
import { copyStore } from "../../keystore/transfer/copy-store.js";
import {
  auditRecords,
  type StoreSummary,
  summarizeStore,
  TABLES,
  type TableName,
} from "../../keystore/transfer/store-contents.js";
import {
  describeLocation,
  openStoreAt,
  parseStoreLocation,
  type StoreLocation,
} from "../../keystore/transfer/store-location.js";
import type { Store } from "../../keystore/types.js";
import { createLogger } from "../../observability/logger.js";
import type { Command, CommandContext } from "../command.js";

const copySettings: SettingName[] = ["rootKey", "rootKeyFile", "logLevel"];

export interface ChainReport {
  readonly ok: boolean;
  readonly verified: number;
  readonly reason?: string;
}

export interface CopyVerification {
  readonly ok: boolean;
  readonly tables: Record<
    TableName,
    { source: StoreSummary[TableName]; target: StoreSummary[TableName]; match: boolean }
  >;
  readonly audit_chain: ChainReport;
}

/** Walks the whole audit trail of the store with the chain key its metadata holds. */
export async function verifyAuditChain(store: Store, rootKey: RootKey): Promise<ChainReport> {
  if ((await store.auditHead()) === undefined) return { ok: true, verified: 0 };
  const verifier = new ChainVerifier((await loadAuditKeys(store, rootKey)).chain);
  for await (const page of auditRecords(store)) {
    for (const record of page) {
      const broken = verifier.check(record);
      if (broken !== undefined) {
        return { ok: false, verified: verifier.verified, reason: describeBreak(broken) };
      }
    }
  }
  return { ok: true, verified: verifier.verified };
}

/**
 * Compares the target with the source table by table (counts and digests of
 * every record, audit records up to the source's head when the copy began),
 * then checks the target's audit chain with the root key.
 */
export async function verifyCopy(
  source: Store,
  target: Store,
  auditHeadSeq: number,
  rootKey: RootKey,
): Promise<CopyVerification> {
  const expected = await summarizeStore(source, auditHeadSeq);
  const actual = await summarizeStore(target);
  const tables = Object.fromEntries(
    TABLES.map((table) => {
      const match =
        expected[table].count === actual[table].count &&
        expected[table].sha256 === actual[table].sha256;
      return [table, { source: expected[table], target: actual[table], match }];
    }),
  ) as CopyVerification["tables"];
  const chain = await verifyAuditChain(target, rootKey);
  const ok = chain.ok && TABLES.every((table) => tables[table].match);
  return { ok, tables, audit_chain: chain };
}

/** One line naming what differs: the tables, and where the audit chain breaks. */
function mismatchMessage(verification: CopyVerification): string {
  const problems: string[] = [];
  const differing = TABLES.filter((table) => !verification.tables[table].match);
  if (differing.length > 0) problems.push(`tables that differ: ${differing.join(", ")}`);
  if (!verification.audit_chain.ok) {
    problems.push(`its audit chain breaks: ${verification.audit_chain.reason}`);
  }
  return `the copy does not match its source (${problems.join("; ")})`;
}

/**
 * The root key the source was made with, checked against it. A source
 * without one is no kmsd store (and must not adopt a key now).
 */
async function sourceRootKey(
  context: CommandContext,
  source: Store,
  location: StoreLocation,
): Promise<RootKey> {
  if ((await source.getMeta(ROOT_KEY_META)) === undefined) {
    throw new Error(`${describeLocation(location)} holds no kmsd store (it names no root key)`);
  }
  const logger = createLogger(context.config.logLevel);
  return resolveRootKey(
    {
      rootKey: context.config.rootKey,
      rootKeyFile: context.config.rootKeyFile,
      // A development store's key file lives in its data directory.
      dataDir: location.kind === "sqlite" ? location.dataDir : context.config.dataDir,
    },
    source,
    (message) => logger.warn(message),
  );
}

export const storeCommands: Command[] = [
  {
    path: ["store", "copy"],
    summary:
      "Copy a whole store (keys, versions, credentials, tokens, audit trail) into an empty one, then verify the copy.",
    options: {
      from: {
        description: "The store to copy: a data directory or a postgres:// URL",
        required: true,
      },
      to: {
        description: "The empty store to copy into: a data directory or a postgres:// URL",
        required: true,
      },
    },
    settings: copySettings,
    async run(context) {
      const from = parseStoreLocation(context.options.from ?? "");
      const to = parseStoreLocation(context.options.to ?? "");
      const source = await openStoreAt(from, { mustExist: true });
      try {
        const rootKey = await sourceRootKey(context, source, from);
        const target = await openStoreAt(to, { mustExist: false });
        try {
          const started = Date.now();
          const { auditHeadSeq } = await copyStore(source, target);
          const verification = await verifyCopy(source, target, auditHeadSeq, rootKey);
          const report = {
            from: describeLocation(from),
            to: describeLocation(to),
            seconds: (Date.now() - started) / 1000,
            ...verification,
          };
          context.stdout(`${JSON.stringify(report, null, 2)}\n`);
          if (verification.ok) return 0;
          context.stderr(`kmsd: ${mismatchMessage(verification)}\n`);
          return 1;
        } finally {
          await target.close();
        }
      } finally {
        await source.close();
      }
    },
  },
];
