/**
 * The PostgreSQL server the tests use (KMSD_TEST_DATABASE_URL, by default
 * the local one CI starts) and a fresh schema per test run. No vitest
 * import: child processes may load this module too.
 *
 * Unreachable PostgreSQL is a test failure, never a skip: every function
 * here rejects when the server does not answer.
 */
import { randomBytes } from "node:crypto";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import pg from "pg";

export const TEST_DATABASE_URL =
  process.env.KMSD_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A schema name no other run uses: lower case, as the store requires. */
export function randomSchemaName(prefix = "kmsd_test"): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
}

/**
 * The test database URL with `schema=<schema>` (kmsd's own URL parameter)
 * and the schema as application_name, so a test can find (and terminate)
 * exactly its own stores' connections: the pool's are named <schema>, the
 * LISTEN connection's <schema>-listen.
 */
export function databaseUrl(schema: string, base = TEST_DATABASE_URL): string {
  const url = new URL(base);
  url.searchParams.set("schema", schema);
  url.searchParams.set("application_name", schema);
  return url.toString();
}

/** Runs `work` on a plain connection to the test database (no schema chosen). */
export async function withAdminClient<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: TEST_DATABASE_URL,
    connectionTimeoutMillis: 5000,
  });
  client.on("error", () => {});
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Drops the schema and everything in it (no error if it does not exist). */
export async function dropSchema(schema: string): Promise<void> {
  await withAdminClient((client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
}

/**
 * A fresh schema name and its URL; the schema itself is created by the
 * store that opens it (as kmsd does). `drop()` removes it.
 */
export interface TestSchema {
  readonly schema: string;
  readonly url: string;
  drop(): Promise<void>;
}

export function freshSchema(prefix?: string): TestSchema {
  const schema = randomSchemaName(prefix);
  return { schema, url: databaseUrl(schema), drop: () => dropSchema(schema) };
}

/**
 * Terminates the server processes of the connections named
 * `applicationName` (see databaseUrl) or with the given pids, as a failover
 * or an administrator would. Resolves to how many it terminated. Never call
 * it without a filter naming this test's connections: other test runs share
 * the database.
 */
export async function terminateConnections(
  filter: { applicationName: string } | { pids: readonly number[] },
): Promise<number> {
  const name = "applicationName" in filter ? filter.applicationName : null;
  const pids = "pids" in filter ? [...filter.pids] : null;
  return withAdminClient(async (client) => {
    const result = await client.query<{ terminated: boolean }>(
      `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
        WHERE pid <> pg_backend_pid() AND datname = current_database()
          AND ($1::text IS NULL OR application_name = $1)
          AND ($2::int[] IS NULL OR pid = ANY($2))`,
      [name, pids],
    );
    return result.rows.filter((row) => row.terminated).length;
  });
}

/**
 * A TCP relay in front of the test server, so a test can make PostgreSQL
 * "go away" for its own stores only (other test runs share the real
 * server): stop() refuses new connections and cuts the open ones, as a
 * server that stopped would; start() serves again on the same port.
 */
export class PostgresRelay {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #port = 0;

  constructor(base = TEST_DATABASE_URL) {
    const url = new URL(base);
    this.#target = { host: url.hostname, port: Number(url.port || 5432) };
  }

  get port(): number {
    return this.#port;
  }

  /** `databaseUrl(schema)` through the relay. */
  url(schema: string): string {
    const url = new URL(databaseUrl(schema));
    url.hostname = "127.0.0.1";
    url.port = String(this.#port);
    return url.toString();
  }

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.#target);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
        socket.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#port, "127.0.0.1", () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    if (server !== undefined) await new Promise((resolve) => server.close(resolve));
  }
}
