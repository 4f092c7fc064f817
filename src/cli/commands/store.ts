import type { KeyObject } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ChainVerifier, describeBreak } from "../../audit/chain.js";
import type { KmsdConfig, SettingName } from "../../config/settings.js";
import { DEV_ROOT_KEY_FILE, ROOT_KEY_META } from "../../keys/root-key.js";
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
import { withCore } from "../admin-call.js";
import type { Command } from "../command.js";

// Not the store location settings: --from and --to name both stores. The
// data directory is where a development server on PostgreSQL keeps its
// generated root key.
const copySettings: SettingName[] = [
  "dataDir",
  "rootKey",
  "rootKeyFile",
  "previousRootKeys",
  "previousRootKeysFile",
  "logLevel",
];

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

/** Walks the store's whole audit trail, checking every seal with the chain key. */
export async function verifyAuditChain(store: Store, chainKey: KeyObject): Promise<ChainReport> {
  const verifier = new ChainVerifier(chainKey);
  const broken = await verifier.checkPages(auditRecords(store));
  if (broken !== undefined) {
    return { ok: false, verified: verifier.verified, reason: describeBreak(broken) };
  }
  return { ok: true, verified: verifier.verified };
}

/**
 * Compares the target with the source table by table (counts and digests of
 * every record, audit records up to the source's head when the copy began),
 * then checks the target's audit chain with the chain key `chainKey` gives
 * (asked for only when the target has audit records).
 */
export async function verifyCopy(
  source: Store,
  target: Store,
  auditHeadSeq: number,
  chainKey: () => Promise<KeyObject>,
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
  const chain =
    actual.audit_records.count === 0
      ? { ok: true, verified: 0 }
      : await verifyAuditChain(target, await chainKey());
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
 * The settings under which kmsd opens the store at the location, as the
 * server would: its root key (checked against the store) and audit keys
 * come from there. A development source's generated key file serves for
 * the target too, unless a root key is configured.
 */
function settingsFor(config: KmsdConfig, location: StoreLocation, from: StoreLocation): KmsdConfig {
  // A development server on PostgreSQL keeps its generated key in its data directory.
  const devKey = join(from.kind === "sqlite" ? from.dataDir : config.dataDir, DEV_ROOT_KEY_FILE);
  const configured = config.rootKey !== "" || config.rootKeyFile !== "";
  const rootKeyFile = configured || !existsSync(devKey) ? config.rootKeyFile : devKey;
  return location.kind === "sqlite"
    ? { ...config, rootKeyFile, dataDir: location.dataDir, databaseUrl: "" }
    : { ...config, rootKeyFile, databaseUrl: location.url };
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
        // A source that names no root key is no kmsd store (and must not adopt one now).
        if ((await source.getMeta(ROOT_KEY_META)) === undefined) {
          throw new Error(`${describeLocation(from)} holds no kmsd store (it names no root key)`);
        }
        // Opening it as kmsd does checks the configured root key against it
        // (a wrong one is refused, exit 2) before anything is written.
        await withCore(settingsFor(context.config, from, from), async () => undefined);
        const target = await openStoreAt(to, { mustExist: false });
        try {
          const started = Date.now();
          const { auditHeadSeq } = await copyStore(source, target);
          const verification = await verifyCopy(source, target, auditHeadSeq, () =>
            withCore(settingsFor(context.config, to, from), async (core) => core.auditKeys.chain),
          );
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
