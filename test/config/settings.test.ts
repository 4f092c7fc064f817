import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig, resolveConfig, SettingError, settings } from "../../src/config/settings.js";
import { removeDir, tempDataDir } from "../support/kmsd.js";

let dir: string;
beforeAll(async () => {
  dir = await tempDataDir();
});
afterAll(() => removeDir(dir));

async function configFile(name: string, content: unknown): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}

/** The SettingError resolveConfig throws: the setting it names and its message. */
function refusal(run: () => unknown): { setting: string; message: string } {
  try {
    run();
  } catch (error) {
    if (error instanceof SettingError) return { setting: error.setting, message: error.message };
    throw error;
  }
  throw new Error("resolveConfig accepted it");
}

describe("resolveConfig", () => {
  it("takes flags over environment over the config file over defaults", async () => {
    const file = await configFile("all.json", {
      port: 9001,
      host: "0.0.0.0",
      realm: "from-file",
      "log-level": "warn",
      "data-dir": "/var/lib/kmsd",
    });
    const config = resolveConfig(
      { config: file, port: "9003" },
      { KMSD_PORT: "9002", KMSD_HOST: "127.0.0.2" },
    );
    expect(config).toEqual({
      ...defaultConfig(),
      config: file,
      port: 9003,
      host: "127.0.0.2",
      realm: "from-file",
      logLevel: "warn",
      dataDir: "/var/lib/kmsd",
    });
  });

  it("finds the file through KMSD_CONFIG too, a flag winning over it", async () => {
    const fromEnv = await configFile("env.json", { realm: "env-file" });
    const fromFlag = await configFile("flag.json", { realm: "flag-file" });
    expect(resolveConfig({}, { KMSD_CONFIG: fromEnv }).realm).toBe("env-file");
    expect(resolveConfig({ config: fromFlag }, { KMSD_CONFIG: fromEnv }).realm).toBe("flag-file");
  });

  it("offers every setting that has a flag as a file key, checked like the flag", async () => {
    const keys = Object.values(settings)
      .filter((spec) => spec.flag !== "" && spec.flag !== "--config")
      .map((spec) => spec.flag.slice(2));
    expect(keys).toContain("tls-cert");
    expect(keys).toContain("health-check-ms");
    const file = await configFile("bad-port.json", { port: 70000 });
    expect(refusal(() => resolveConfig({ config: file }, {}))).toEqual({
      setting: `"port" in ${file}`,
      message: `invalid setting "port" in ${file}: must be between 0 and 65535`,
    });
  });

  it("refuses an unknown key, naming it, rather than ignoring a typo", async () => {
    const file = await configFile("typo.json", { prot: 8443 });
    const { setting, message } = refusal(() => resolveConfig({ config: file }, {}));
    expect(setting).toBe(`"prot" in ${file}`);
    expect(message).toContain("unknown setting");
  });

  it("refuses the root key (a secret with a file setting of its own) and a nested config", async () => {
    for (const key of ["root-key", "config"]) {
      const file = await configFile(`${key}.json`, { [key]: "x" });
      expect(refusal(() => resolveConfig({ config: file }, {})).setting).toBe(
        `"${key}" in ${file}`,
      );
    }
  });

  it("refuses values that are neither strings nor numbers", async () => {
    const file = await configFile("object.json", { realm: { nested: true } });
    expect(refusal(() => resolveConfig({ config: file }, {})).message).toContain(
      "must be a string or a number",
    );
  });

  it("names --config or KMSD_CONFIG when the file cannot be read or is not a JSON object", async () => {
    const missing = path.join(dir, "missing.json");
    expect(refusal(() => resolveConfig({ config: missing }, {})).setting).toBe("--config");
    expect(refusal(() => resolveConfig({}, { KMSD_CONFIG: missing })).setting).toBe("KMSD_CONFIG");
    const broken = await configFile("broken.json", '{"port": ');
    expect(refusal(() => resolveConfig({ config: broken }, {})).message).toContain(
      "not valid JSON",
    );
    const array = await configFile("array.json", [1, 2]);
    expect(refusal(() => resolveConfig({ config: array }, {})).message).toContain(
      "must hold a JSON object",
    );
  });

  it("names the flag or the variable a bad value came from", () => {
    expect(refusal(() => resolveConfig({ port: "x" }, {})).setting).toBe("--port");
    expect(refusal(() => resolveConfig({}, { KMSD_HEALTH_CHECK_MS: "5" })).setting).toBe(
      "KMSD_HEALTH_CHECK_MS",
    );
  });

  it("checks a database URL as the store reads it, never quoting it (it may hold a password)", () => {
    const url = "postgres://kmsd:s3cret@db:5432/kms?schema=tenant_a&sslmode=require";
    expect(resolveConfig({}, { KMSD_DATABASE_URL: url }).databaseUrl).toBe(url);
    expect(resolveConfig({}, {}).databaseUrl).toBe("");
    for (const bad of [
      "mysql://kmsd:s3cret@db/kms",
      "postgres://kmsd:s3cret@db/kms?schema=Bad-Name",
      "s3cret",
    ]) {
      const { setting, message } = refusal(() => resolveConfig({ databaseUrl: bad }, {}));
      expect(setting).toBe("--database-url");
      expect(message).not.toContain("s3cret");
    }
  });
});
