/**
 * What the crypto core costs per message, and what each of its choices buys:
 * kmsd's seal and open as the service calls them (randomness from a pool,
 * the version's material cached as bytes in a VersionMaterial, an
 * HMAC-SHA256 counter-mode KDF per message from two one-shot hashes), each
 * against the same work with one choice undone (a KeyObject's KDF goes
 * through createHmac, as every KDF did before), and
 * the baseline server's plain AES-GCM. The variants run in alternating
 * rounds in one process, so that drift on a shared machine hits them alike.
 *
 *   npx tsx bench/crypto-cost.ts [messages per round] [rounds]
 */
import { createCipheriv, createHmac, createSecretKey, hkdfSync, randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import {
  openCiphertext,
  RANDOMNESS_LENGTH,
  readCiphertextHeader,
  sealCiphertext,
  type VersionKey,
} from "../src/crypto/ciphertext.js";
import { HMAC_SHA256_BYTES, hmacSha256Into } from "../src/crypto/hmac-sha256.js";
import { RandomPool } from "../src/keys/random-pool.js";
import { VersionMaterial } from "../src/keys/version-material.js";
import { median } from "./stats.js";

const PER_ROUND = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 7);
const KEY_ID = "0f8d7d4e-1b7a-4c55-9f0e-3c2b1a096e11";
const material = randomBytes(32);
// As the key cache holds it.
const versionKey = new VersionMaterial(material).bytes;
const keyObject = createSecretKey(material);
const pool = new RandomPool();
/** A KDF input of the real length (docs/ciphertext-format.md): 66 bytes. */
const kdfInput = randomBytes(66);
const messageKey = Buffer.alloc(HMAC_SHA256_BYTES);

interface Variant {
  readonly name: string;
  readonly run: (plaintext: Buffer) => unknown;
}

const seal = (plaintext: Buffer, key: VersionKey, randomness: Buffer) =>
  sealCiphertext({ keyId: KEY_ID, keyVersion: 1, versionKey: key, plaintext, randomness });

function variants(size: number): Variant[] {
  const sealed = seal(Buffer.alloc(size, 7), versionKey, randomBytes(RANDOMNESS_LENGTH));
  const header = readCiphertextHeader(sealed);
  return [
    {
      name: "kmsd seal (pooled randomness, cached material bytes, HMAC KDF)",
      run: (plaintext) => seal(plaintext, versionKey, pool.take(RANDOMNESS_LENGTH)),
    },
    {
      name: "kmsd open",
      run: () => openCiphertext(sealed, readCiphertextHeader(sealed), { versionKey }),
    },
    {
      name: "seal, randomBytes per message instead of the pool",
      run: (plaintext) => seal(plaintext, versionKey, randomBytes(RANDOMNESS_LENGTH)),
    },
    {
      name: "seal, material cached as a KeyObject (so the KDF through createHmac)",
      run: (plaintext) => seal(plaintext, keyObject, pool.take(RANDOMNESS_LENGTH)),
    },
    {
      name: "seal, KeyObject made per message instead of cached",
      run: (plaintext) => seal(plaintext, createSecretKey(material), pool.take(RANDOMNESS_LENGTH)),
    },
    {
      name: "HKDF (hkdfSync) per message key + AES-GCM, pooled IV",
      run: (plaintext) => {
        const salt = pool.take(16);
        const key = Buffer.from(hkdfSync("sha256", material, salt, header.keyId, 32));
        const cipher = createCipheriv("aes-256-gcm", key, pool.take(12));
        cipher.update(plaintext);
        cipher.final();
        return cipher.getAuthTag();
      },
    },
    {
      name: "the message key alone: HMAC-SHA256 from two one-shot hashes (kmsd)",
      run: () => hmacSha256Into(versionKey, kdfInput, messageKey),
    },
    {
      name: "the message key alone: createHmac, as before",
      run: () => createHmac("sha256", versionKey).update(kdfInput).digest(),
    },
    {
      name: "baseline's work: AES-GCM under one key, randomBytes(12) IV",
      run: (plaintext) => {
        const cipher = createCipheriv("aes-256-gcm", material, randomBytes(12));
        const body = cipher.update(plaintext);
        cipher.final();
        return [body, cipher.getAuthTag()];
      },
    },
  ];
}

function measure(size: number): void {
  const plaintext = Buffer.alloc(size, 7);
  const all = variants(size);
  const samples = new Map<string, number[]>(all.map((v) => [v.name, []]));
  for (const variant of all) for (let i = 0; i < 2000; i++) variant.run(plaintext); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of all) {
      const started = performance.now();
      for (let i = 0; i < PER_ROUND; i++) variant.run(plaintext);
      samples.get(variant.name)?.push(((performance.now() - started) * 1000) / PER_ROUND);
    }
  }
  console.log(`\n${size} B plaintext: µs per message, median of ${ROUNDS} rounds`);
  console.log("| variant | µs |\n|---|---:|");
  for (const variant of all) {
    console.log(`| ${variant.name} | ${median(samples.get(variant.name) ?? []).toFixed(2)} |`);
  }
}

console.log(`Node.js ${process.version}, ${PER_ROUND} messages per round`);
for (const size of [8, 4096]) measure(size);
