import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { issueToken } from "../../src/auth/issue-credentials.js";
import { callRpc, withCore } from "../../src/cli/admin-call.js";
import { defaultConfig, type KmsdConfig } from "../../src/config/settings.js";
import type { Role } from "../../src/keystore/access-types.js";
import { openStore, type StoreSettings } from "../../src/keystore/open-store.js";
import { createLogger } from "../../src/observability/logger.js";
import { createServer, type KmsdServer, type ServerOptions } from "../../src/server.js";

/** A fresh data directory under the OS temp dir. */
export function tempDataDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), "kmsd-test-"));
}

/** A fixed root key for tests, so restarts find the same key without a dev key file. */
export const TEST_ROOT_KEY = Buffer.alloc(32, 7).toString("base64");

export interface RunningKmsd {
  readonly server: KmsdServer;
  readonly config: KmsdConfig;
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts kmsd on a random loopback port. */
export async function startKmsd(
  overrides: Partial<KmsdConfig> = {},
  options: ServerOptions = {},
): Promise<RunningKmsd> {
  const config: KmsdConfig = {
    ...defaultConfig(),
    port: 0,
    rootKey: TEST_ROOT_KEY,
    logLevel: "silent",
    shutdownGraceMs: 2000,
    ...overrides,
    dataDir: overrides.dataDir ?? (await tempDataDir()),
  };
  const server = createServer(config, { logger: createLogger(config.logLevel), ...options });
  const address = await server.start();
  return {
    server,
    config,
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    stop: () => server.stop(),
  };
}

/** Creates a key directly in the store (as the CLI does); returns its id. */
export async function createKey(
  config: KmsdConfig,
  projectId: string,
  alias: string,
): Promise<string> {
  return withCore(config, async (core) => {
    const created = await callRpc(core, KmsService.method.createKey, {
      project_id: projectId,
      key_alias: alias,
    });
    return String((created.key_info as { key_id: string }).key_id);
  });
}

const issuedTokens = new Map<string, Promise<string>>();

/**
 * An X-Auth-Token for the project, issued straight into the store of the
 * data directory (as `kmsd tokens create` does) and cached per data
 * directory, project and role.
 */
export function testToken(
  config: StoreSettings,
  projectId: string,
  role: Role = "admin",
): Promise<string> {
  const cacheKey = `${config.dataDir}\0${config.databaseUrl}\0${projectId}\0${role}`;
  let token = issuedTokens.get(cacheKey);
  if (token === undefined) {
    token = (async () => {
      const store = await openStore(config);
      try {
        const issued = await issueToken(store, {
          projectId,
          role,
          ttlMs: 24 * 60 * 60 * 1000,
          description: "tests",
          now: Date.now(),
        });
        return issued.token;
      } finally {
        await store.close();
      }
    })();
    issuedTokens.set(cacheKey, token);
  }
  return token;
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
