import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { defaultConfig } from "../../src/config/settings.js";
import type { KmsdProcess } from "../support/cli.js";
import { removeDir, tempDataDir, testToken } from "../support/kmsd.js";
import { spawnReadyServer } from "../support/serve-process.js";

/**
 * The server the fuzzer attacks: a real `kmsd serve` child process (one
 * worker, so that its pid is the server's: a crash shows as an exit, its
 * memory as its RSS), a token, and one valid request per RPC to mutate.
 */
export interface FuzzTarget {
  readonly url: string;
  readonly port: number;
  readonly project: string;
  readonly token: string;
  /** A key only serverProblems() uses. */
  readonly checkKey: string;
  /** A valid request per RPC name, in Huawei's JSON (proto field names, no project_id). */
  readonly templates: Readonly<Record<string, Record<string, unknown>>>;
  readonly process: KmsdProcess;
  /** The server's resident set size now, in bytes (Linux /proc). */
  rssBytes(): Promise<number>;
  /** What kmsd logged (warn and above) since it started serving. */
  newLog(): string;
  /** Whether the server process is still running. */
  alive(): boolean;
  stop(): Promise<void>;
}

export const FUZZ_PROJECT = "pfuzz";

/** Starts kmsd as a child process and prepares what the fuzzer sends. */
export async function startFuzzTarget(extraArgs: readonly string[] = []): Promise<FuzzTarget> {
  const dataDir = await tempDataDir();
  const token = await testToken({ ...defaultConfig(), dataDir }, FUZZ_PROJECT);
  const server = await spawnReadyServer(dataDir, [
    // Only what kmsd fails itself is logged at warn and above: every such
    // line the fuzzer provokes is a finding.
    "--log-level",
    "warn",
    // The fuzzer sends as fast as it can: the limit would answer most
    // cryptographic operations with 429 before their code ran.
    "--rate-limit-per-second",
    "0",
    ...extraArgs,
  ]);
  const { url, port, process: child } = server;
  const startupLog = child.stderr().length;
  const call = async (action: string, body: Record<string, unknown>) => {
    const response = await fetch(`${url}/v1.0/${FUZZ_PROJECT}/kms/${action}`, {
      method: "POST",
      headers: { "x-auth-token": token, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const json = (await response.json()) as Record<string, unknown>;
    if (response.status !== 200)
      throw new Error(`${action}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  };
  const keyIdOf = async (alias: string) =>
    String(
      ((await call("create-key", { key_alias: alias })).key_info as { key_id: string }).key_id,
    );
  const keyId = await keyIdOf("fuzz-main");
  // Admin RPCs that change a key's state get a key of their own, so that the
  // main key stays usable and valid requests keep reaching the service code.
  const victim = await keyIdOf("fuzz-victim");
  // The after-run check's key: in no template, so no fuzzed request can
  // reach it (one sent to another RPC's path may disable the others).
  const checkKey = await keyIdOf("fuzz-check");
  const context = { purpose: "fuzz" };
  const encrypted = await call("encrypt-data", {
    key_id: keyId,
    plain_text: "fuzz plaintext",
    encryption_context: context,
  });
  const dataKey = Buffer.alloc(32, 0x5a);
  const dataKeyHex = dataKey.toString("hex") + createHash("sha256").update(dataKey).digest("hex");
  const wrapped = await call("encrypt-datakey", {
    key_id: keyId,
    plain_text: dataKeyHex,
    datakey_plain_length: "32",
  });
  const cipherText = String(encrypted.cipher_text);
  const templates: Record<string, Record<string, unknown>> = {
    CreateKey: { key_alias: "fuzz-created", key_description: "made by the fuzzer" },
    DescribeKey: { key_id: keyId },
    ListKeys: { limit: "10" },
    EnableKey: { key_id: victim },
    DisableKey: { key_id: victim },
    ScheduleKeyDeletion: { key_id: victim, pending_days: "7" },
    CancelKeyDeletion: { key_id: victim },
    UpdateKeyAlias: { key_id: victim, key_alias: "fuzz-victim-2" },
    UpdateKeyDescription: { key_id: victim, key_description: "changed" },
    EncryptData: { key_id: keyId, plain_text: "hello fuzz", encryption_context: context },
    DecryptData: { cipher_text: cipherText, encryption_context: context },
    ReEncrypt: {
      cipher_text: cipherText,
      destination_key_id: keyId,
      source_encryption_context: context,
    },
    CreateDatakey: { key_id: keyId, datakey_length: "256" },
    CreateDatakeyWithoutPlaintext: { key_id: keyId, datakey_length: "512" },
    EncryptDatakey: { key_id: keyId, plain_text: dataKeyHex, datakey_plain_length: "32" },
    DecryptDatakey: {
      key_id: keyId,
      cipher_text: String(wrapped.cipher_text),
      datakey_cipher_length: "32",
    },
    GenRandom: { random_data_length: "256" },
    EnableKeyRotation: { key_id: victim },
    DisableKeyRotation: { key_id: victim },
    GetKeyRotationStatus: { key_id: keyId },
    UpdateKeyRotationInterval: { key_id: victim, rotation_interval: 90 },
    RotateOnDemand: { key_id: victim },
    BatchEncryptData: {
      items: [
        { reference: "a", key_id: keyId, plain_text: "one" },
        { reference: "b", key_id: keyId, plain_text: "two", encryption_context: context },
      ],
    },
    BatchDecryptData: { items: [{ reference: "a", cipher_text: cipherText }] },
  };
  const pid = child.child.pid ?? 0;
  return {
    url,
    port,
    project: FUZZ_PROJECT,
    token,
    checkKey,
    templates,
    process: child,
    async rssBytes() {
      const status = await readFile(`/proc/${pid}/status`, "utf8");
      const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
      return Number(kb ?? 0) * 1024;
    },
    newLog: () => child.stderr().slice(startupLog),
    alive: () => child.child.exitCode === null && child.child.signalCode === null,
    async stop() {
      await server.stop();
      await removeDir(dataDir);
    },
  };
}

/** Resident memory the server may reach during a fuzz run (it starts near 100 MiB). */
export const RSS_BOUND_BYTES = 400 * 1024 * 1024;

/**
 * What is wrong with the server after fuzzing, if anything: it exited, it
 * no longer answers /healthz or a valid request, it logged a failure of its
 * own (warn or error), or its memory passed the bound.
 */
export async function serverProblems(target: FuzzTarget): Promise<string[]> {
  if (!target.alive()) {
    return [
      `kmsd exited (${target.process.child.exitCode ?? target.process.child.signalCode}):\n${target.process.stderr().slice(-4000)}`,
    ];
  }
  const problems: string[] = [];
  const health = await fetch(`${target.url}/healthz`).catch((error: Error) => error);
  if (health instanceof Error || health.status !== 200)
    problems.push("/healthz does not answer 200");
  const valid = await fetch(`${target.url}/v1.0/${target.project}/kms/encrypt-data`, {
    method: "POST",
    headers: { "x-auth-token": target.token, "content-type": "application/json" },
    body: JSON.stringify({ key_id: target.checkKey, plain_text: "after the fuzzing" }),
  }).catch((error: Error) => error);
  if (valid instanceof Error || valid.status !== 200) {
    const answer = valid instanceof Error ? valid.message : `${valid.status} ${await valid.text()}`;
    problems.push(`a valid encrypt-data fails: ${answer}`);
  }
  const log = target.newLog().trim();
  if (log !== "") problems.push(`kmsd logged failures of its own:\n${log.slice(0, 4000)}`);
  const rss = await target.rssBytes();
  if (rss > RSS_BOUND_BYTES) {
    problems.push(
      `resident memory ${Math.round(rss / 2 ** 20)} MiB is over the ${RSS_BOUND_BYTES / 2 ** 20} MiB bound`,
    );
  }
  return problems;
}
