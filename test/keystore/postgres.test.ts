import { afterEach, describe, expect, it } from "vitest";
import {
  openPostgresStore,
  type PostgresStore,
} from "../../src/keystore/postgres/postgres-store.js";
import { freshSchema, type TestSchema } from "../support/postgres.js";
import { describeStoreContract } from "./contract.js";

let contractSchema: TestSchema | undefined;
describeStoreContract(
  "postgres",
  async () => {
    contractSchema = freshSchema();
    return openPostgresStore({ url: contractSchema.url, poolSize: 4 });
  },
  async () => {
    await contractSchema?.drop();
    contractSchema = undefined;
  },
);

describe("PostgreSQL key store", () => {
  const schemas: TestSchema[] = [];
  const open: PostgresStore[] = [];

  function schema(): TestSchema {
    const fresh = freshSchema();
    schemas.push(fresh);
    return fresh;
  }

  async function openStore(at: TestSchema, poolSize = 4): Promise<PostgresStore> {
    const store = await openPostgresStore({ url: at.url, poolSize });
    open.push(store);
    return store;
  }

  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    for (const s of schemas.splice(0)) await s.drop();
  });

  it("creates the schema named in the URL", async () => {
    const at = schema();
    const store = await openStore(at);
    expect(store.schema).toBe(at.schema);
  });
});
