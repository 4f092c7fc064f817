import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { TlsOptions } from "node:tls";
import { type KmsdConfig, SettingError, settings } from "../config/settings.js";

/**
 * The listener's TLS options from --tls-cert, --tls-key and --tls-client-ca,
 * or undefined for plaintext. Every file is read and parsed here, at start,
 * so that a missing, unreadable or mismatched one stops kmsd with a message
 * naming its setting (exit code 2) instead of failing the first handshake.
 */
export function loadTlsOptions(
  config: Pick<KmsdConfig, "tlsCert" | "tlsKey" | "tlsClientCa">,
): TlsOptions | undefined {
  const { tlsCert, tlsKey, tlsClientCa } = config;
  if (tlsCert === "" && tlsKey === "") {
    if (tlsClientCa !== "") {
      throw new SettingError(
        settings.tlsClientCa.flag,
        `needs ${settings.tlsCert.flag} and ${settings.tlsKey.flag}`,
      );
    }
    return undefined;
  }
  if (tlsCert === "")
    throw new SettingError(settings.tlsCert.flag, `is required with ${settings.tlsKey.flag}`);
  if (tlsKey === "")
    throw new SettingError(settings.tlsKey.flag, `is required with ${settings.tlsCert.flag}`);

  const cert = readPem(settings.tlsCert.flag, tlsCert);
  const key = readPem(settings.tlsKey.flag, tlsKey);
  const certificate = parse(settings.tlsCert.flag, tlsCert, () => new X509Certificate(cert));
  const privateKey: KeyObject = parse(settings.tlsKey.flag, tlsKey, () => createPrivateKey(key));
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new SettingError(settings.tlsKey.flag, `${tlsKey} is not the private key of ${tlsCert}`);
  }
  const options: TlsOptions = { cert, key };
  if (tlsClientCa !== "") {
    const ca = readPem(settings.tlsClientCa.flag, tlsClientCa);
    parse(settings.tlsClientCa.flag, tlsClientCa, () => new X509Certificate(ca));
    // Verified by node during the handshake: no certificate, or one the CA did not issue, is refused.
    Object.assign(options, { ca, requestCert: true, rejectUnauthorized: true });
  }
  return options;
}

function readPem(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new SettingError(setting, `cannot read ${path}: ${(error as Error).message}`);
  }
}

function parse<T>(setting: string, path: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    throw new SettingError(setting, `${path} is not usable PEM: ${(error as Error).message}`);
  }
}
