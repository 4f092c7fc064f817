import { setTimeout as sleep } from "node:timers/promises";
import { ChainVerifier, describeBreak } from "../../audit/chain.js";
import { parseAuditRecord } from "../../audit/record-text.js";
import type { AuditQuery, AuditRecord, StoredAuditRecord } from "../../keystore/audit-types.js";
import { auditRecords } from "../../keystore/transfer/store-contents.js";
import type { Store } from "../../keystore/types.js";
import { withCore } from "../admin-call.js";
import { type Command, STORE_SETTINGS, UsageError } from "../command.js";

const storeSettings = STORE_SETTINGS;
const PAGE = 1000;

/** Huawei-style snake_case, one JSON object per record. */
export function auditRecordJson(record: AuditRecord): Record<string, unknown> {
  return {
    seq: record.seq,
    time: new Date(record.time).toISOString(),
    request_id: record.requestId,
    protocol: record.protocol,
    project_id: record.projectId,
    principal: record.principal,
    operation: record.operation,
    key_id: record.keyId,
    sequence: record.sequence,
    outcome: record.outcome,
    latency_us: record.latencyUs,
    context: record.context,
    format: record.format,
    // On the last record of every append (format 2) or every record (format 1).
    seal: record.seal ?? null,
  };
}

/** A stored record as export and tail print it: one JSON line. */
function auditLine(record: StoredAuditRecord): string {
  return `${JSON.stringify(auditRecordJson(parseAuditRecord(record)))}\n`;
}

/**
 * The newest record verified: keep it somewhere the store's writers cannot
 * reach, as only a known head reveals records cut off the end of the trail.
 */
function headOf(record: StoredAuditRecord | undefined) {
  if (record === undefined) return null;
  return { seq: record.seq, seal: record.seal, time: new Date(record.time).toISOString() };
}

/** --head: "<seq>:<seal>" as verify prints them. */
function parseHead(value: string | undefined): { seq: number; seal: string } | undefined {
  if (value === undefined) return undefined;
  const match = /^([1-9][0-9]*):([0-9a-f]{64})$/.exec(value);
  if (match === null) throw new UsageError("--head must be <seq>:<seal>, as audit verify prints");
  return { seq: Number(match[1]), seal: match[2] ?? "" };
}

/** An ISO 8601 time, or a duration back from now (90s, 30m, 24h, 7d). */
export function parseSince(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const relative = /^([0-9]+)([smhd])$/.exec(value);
  if (relative !== null) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
      relative[2] as "s" | "m" | "h" | "d"
    ];
    return now - Number(relative[1]) * unit;
  }
  const time = Date.parse(value);
  if (Number.isNaN(time))
    throw new UsageError(`--since must be an ISO 8601 time or like 30m, 24h, 7d`);
  return time;
}

/** Every record matching the query, a page at a time. */
async function* readAll(
  store: Store,
  query: Omit<AuditQuery, "limit">,
): AsyncGenerator<StoredAuditRecord> {
  let afterSeq = query.afterSeq ?? 0;
  for (;;) {
    const page = await store.readAudit({ ...query, afterSeq, limit: PAGE });
    yield* page;
    const last = page.at(-1);
    if (last === undefined || page.length < PAGE) return;
    afterSeq = last.seq;
  }
}

function filterOf(options: Readonly<Record<string, string | undefined>>) {
  const since = parseSince(options.since, Date.now());
  return {
    ...(options.project === undefined ? {} : { projectId: options.project }),
    ...(since === undefined ? {} : { since }),
  };
}

export const auditCommands: Command[] = [
  {
    path: ["audit", "verify"],
    summary: "Check the whole audit chain; prints its head (exit 0) or where it breaks (exit 1).",
    options: {
      head: {
        description:
          "A head an earlier verify printed, as <seq>:<seal>: also fail if that record is gone or changed (records cut off the end)",
      },
    },
    settings: storeSettings,
    run: (context) =>
      withCore(context.config, async ({ store, auditKeys }) => {
        const known = parseHead(context.options.head);
        const verifier = new ChainVerifier(auditKeys.chain);
        let knownSeal: string | undefined;
        const fail = (brokenAt: number, reason: string) => {
          const report = {
            ok: false,
            verified: verifier.verified,
            broken_at: brokenAt,
            reason,
            last_good: headOf(verifier.lastGood),
          };
          context.stdout(`${JSON.stringify(report, null, 2)}\n`);
          context.stderr(`kmsd: the audit chain breaks at record ${brokenAt}: ${reason}\n`);
          return 1;
        };
        const broken = await verifier.checkPages(auditRecords(store), (record) => {
          if (record.seq === known?.seq) knownSeal = record.seal ?? "";
        });
        if (broken !== undefined) {
          // Where the chain breaks: for a gap, the first missing record.
          return fail(
            broken.reason === "gap" ? broken.expectedSeq : broken.seq,
            describeBreak(broken),
          );
        }
        const head = verifier.lastGood;
        if (known !== undefined && knownSeal === undefined) {
          return fail(
            (head?.seq ?? 0) + 1,
            `the trail ends at record ${head?.seq ?? 0}, before the known head ${known.seq}: records were removed from its end`,
          );
        }
        if (known !== undefined && knownSeal !== known.seal) {
          return fail(
            known.seq,
            `record ${known.seq} is not the known head: records were cut off the end of the trail and others appended in their place`,
          );
        }
        // The seals hold; what reads by project or time rely on must too.
        const index = await store.auditIndexProblem();
        if (index !== undefined) return fail(index.seq, index.problem);
        const report = { ok: true, verified: verifier.verified, head: headOf(head) };
        context.stdout(`${JSON.stringify(report, null, 2)}\n`);
        return 0;
      }),
  },
  {
    path: ["audit", "export"],
    summary: "Print audit records as JSON lines.",
    options: {
      project: { description: "Only this project's records" },
      since: { description: "Only records from this time (ISO 8601, or 30m, 24h, 7d ago)" },
    },
    settings: storeSettings,
    run: (context) =>
      withCore(context.config, async ({ store }) => {
        for await (const record of readAll(store, filterOf(context.options))) {
          context.stdout(auditLine(record));
        }
        return 0;
      }),
  },
  {
    path: ["audit", "tail"],
    summary: "Print the newest audit records as JSON lines; --follow keeps printing new ones.",
    options: {
      project: { description: "Only this project's records" },
      since: { description: "Only records from this time (ISO 8601, or 30m, 24h, 7d ago)" },
      lines: { description: "How many records (default 20)" },
      follow: {
        description: "Keep printing records as they arrive (until interrupted)",
        boolean: true,
      },
    },
    settings: storeSettings,
    run: (context) =>
      withCore(context.config, async ({ store }) => {
        const lines = Number(context.options.lines ?? "20");
        if (!Number.isInteger(lines) || lines < 1)
          throw new UsageError("--lines must be a positive integer");
        const filter = filterOf(context.options);
        const newest: StoredAuditRecord[] = [];
        for await (const record of readAll(store, filter)) {
          newest.push(record);
          if (newest.length > lines) newest.shift();
        }
        for (const record of newest) context.stdout(auditLine(record));
        let afterSeq = newest.at(-1)?.seq ?? (await store.auditHead())?.seq ?? 0;
        while (context.options.follow === "true") {
          await sleep(500);
          for await (const record of readAll(store, { ...filter, afterSeq })) {
            context.stdout(auditLine(record));
            afterSeq = record.seq;
          }
        }
        return 0;
      }),
  },
];
