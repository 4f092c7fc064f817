import { writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { settings } from "../../src/config/settings.js";
import { runKmsd, spawnKmsd } from "../support/cli.js";
import { removeDir, TEST_ROOT_KEY, tempDataDir } from "../support/kmsd.js";
import { eventually } from "../support/store-faults.js";

const dirs: string[] = [];
async function newDir(): Promise<string> {
  const dir = await tempDataDir();
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await removeDir(dir);
});

/** A port something else is listening on, for as long as the returned server is open. */
function occupiedPort(): Promise<net.Server> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

describe("help", () => {
  it("kmsd --help lists the commands; kmsd serve --help lists every setting", async () => {
    const main = await runKmsd(["--help"]);
    expect(main.code).toBe(0);
    expect(main.stdout).toContain("serve");
    expect(main.stdout).toContain("keys create");

    const serve = await runKmsd(["serve", "--help"]);
    expect(serve.code).toBe(0);
    for (const spec of Object.values(settings)) {
      expect(serve.stdout, spec.env).toContain(
        spec.flag === "" ? spec.env : `${spec.flag} <value>`,
      );
      expect(serve.stdout, spec.env).toContain(spec.description);
    }
  });

  it("every command takes --config", async () => {
    for (const command of [
      ["keys", "list"],
      ["tokens", "create"],
      ["audit", "verify"],
    ]) {
      const help = await runKmsd([...command, "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain("--config <value>");
    }
  });
});

describe("an invalid setting stops kmsd serve with exit code 2, naming it", () => {
  it.each([
    ["a port out of range", ["--port", "70000"], {}, "--port"],
    ["a port that is not a number, from the environment", [], { KMSD_PORT: "http" }, "KMSD_PORT"],
    ["an unknown log level", ["--log-level", "loud"], {}, "--log-level"],
    ["a health check interval too short", ["--health-check-ms", "1"], {}, "--health-check-ms"],
    [
      "an unreadable certificate",
      ["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
      {},
      "--tls-cert",
    ],
    ["a certificate without its key", ["--tls-cert", "/nonexistent/cert.pem"], {}, "--tls-key"],
    // 192.0.2.1 (TEST-NET-1) is no address of this machine.
    ["an address kmsd cannot listen on", ["--host", "192.0.2.1"], {}, "--host"],
  ] as const)("%s", async (_, args, env, named) => {
    const dataDir = await newDir();
    // Port 0 by the environment, so that a case's own port (flag or variable) takes precedence.
    const result = await runKmsd(["serve", ...args], {
      KMSD_DATA_DIR: dataDir,
      KMSD_ROOT_KEY: TEST_ROOT_KEY,
      ...((args as readonly string[]).includes("--port") ? {} : { KMSD_PORT: "0" }),
      ...env,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`kmsd: invalid setting ${named}`);
    expect(result.stderr).not.toContain("kmsd serving");
  });

  it("a port already in use", async () => {
    const taken = await occupiedPort();
    try {
      const result = await runKmsd(["serve", "--port", String(portOf(taken))], {
        KMSD_DATA_DIR: await newDir(),
        KMSD_ROOT_KEY: TEST_ROOT_KEY,
      });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(
        `kmsd: invalid setting --port: 127.0.0.1:${portOf(taken)} is already in use`,
      );
    } finally {
      taken.close();
    }
  });

  it("an unknown key in the config file", async () => {
    const dir = await newDir();
    const file = path.join(dir, "kmsd.json");
    await writeFile(file, JSON.stringify({ "data-dir": dir, prot: 8443 }));
    const result = await runKmsd(["serve", "--config", file], { KMSD_ROOT_KEY: TEST_ROOT_KEY });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`kmsd: invalid setting "prot" in ${file}: unknown setting`);
  });
});

describe("kmsd serve --config", () => {
  it("serves with the file's settings, the environment overriding them", async () => {
    const dir = await newDir();
    const taken = await occupiedPort();
    const free = await occupiedPort();
    const port = portOf(free);
    await new Promise((resolve) => free.close(resolve));
    const file = path.join(dir, "kmsd.json");
    // The file's port is taken: only the environment's override lets kmsd start.
    await writeFile(
      file,
      JSON.stringify({
        port: portOf(taken),
        "data-dir": dir,
        realm: "from-file",
        "log-level": "warn",
      }),
    );
    const kmsd = spawnKmsd(["serve"], {
      KMSD_CONFIG: file,
      KMSD_PORT: String(port),
      KMSD_ROOT_KEY: TEST_ROOT_KEY,
    });
    try {
      await eventually(
        async () =>
          (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200,
        10_000,
        "kmsd ready",
      );
      // log-level warn from the file: the info line saying it serves is not written.
      expect(kmsd.stderr()).not.toContain("kmsd serving");
      kmsd.child.kill("SIGTERM");
      expect((await kmsd.finished).code).toBe(0);
    } finally {
      taken.close();
      kmsd.child.kill("SIGKILL");
    }
  });
});
