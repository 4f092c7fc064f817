import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

/** PEM files of a throwaway PKI: paths, and their contents for clients. */
export interface TestPki {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A second CA and a client certificate it issued (which kmsd must refuse). */
  readonly otherClientCert: string;
  readonly otherClientKey: string;
  read(file: string): Promise<Buffer>;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** A key and a certificate signed by the CA, with the extensions in `<name>.ext`. */
function issue(dir: string, name: string, ca: string, subject: string): void {
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
  openssl(["req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`], dir);
  openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.crt`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`,
    ],
    dir,
  );
}

function selfSignedCa(dir: string, name: string): void {
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
  openssl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      `${name}.key`,
      "-subj",
      `/CN=${name}`,
      "-days",
      "2",
      "-out",
      `${name}.crt`,
    ],
    dir,
  );
}

/** Makes a CA, a server certificate for 127.0.0.1/localhost, and client certificates, with openssl. */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(tmpdir(), "kmsd-pki-"));
  selfSignedCa(dir, "ca");
  selfSignedCa(dir, "other-ca");
  await writeFile(
    path.join(dir, "server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
  );
  await writeFile(path.join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  await writeFile(path.join(dir, "other-client.ext"), "extendedKeyUsage=clientAuth\n");
  issue(dir, "server", "ca", "/CN=localhost");
  issue(dir, "client", "ca", "/CN=kmsd-test-client");
  issue(dir, "other-client", "other-ca", "/CN=intruder");
  const at = (file: string) => path.join(dir, file);
  return {
    dir,
    caCert: at("ca.crt"),
    serverCert: at("server.crt"),
    serverKey: at("server.key"),
    clientCert: at("client.crt"),
    clientKey: at("client.key"),
    otherClientCert: at("other-client.crt"),
    otherClientKey: at("other-client.key"),
    read: (file) => readFile(file),
  };
}
