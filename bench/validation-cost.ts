/**
 * What validating a request costs: kmsd's validator (the quick proof of
 * validity, src/validation/certainly-valid.ts, then kmsd's own rules)
 * against protovalidate alone, on valid EncryptData and DecryptData
 * requests as the benchmarks send them. Alternating rounds in one process.
 *
 *   npx tsx bench/validation-cost.ts [checks per round] [rounds]
 */
import { create, type DescMessage, type Message } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { DecryptDataRequestSchema, EncryptDataRequestSchema } from "../gen/kms/v1/kms_pb.js";
import { createRequestValidator, matchRegex } from "../src/validation/request-validator.js";
import { median } from "./stats.js";

const PER_ROUND = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 7);
const KEY_ID = "0f8d7d4e-1b7a-4c55-9f0e-3c2b1a096e11";

const requests: [string, DescMessage, Message][] = [
  [
    "EncryptData 8 B",
    EncryptDataRequestSchema,
    create(EncryptDataRequestSchema, {
      projectId: "bench",
      keyId: KEY_ID,
      plainText: "x".repeat(8),
    }),
  ],
  [
    "DecryptData",
    DecryptDataRequestSchema,
    create(DecryptDataRequestSchema, { projectId: "bench", cipherText: "A".repeat(100) }),
  ],
];

const kmsd = createRequestValidator();
const protovalidate = createValidator({ failFast: true, regexMatch: matchRegex });

function microseconds(run: () => unknown): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < PER_ROUND; i++) run();
  return Number(process.hrtime.bigint() - started) / 1000 / PER_ROUND;
}

console.log(`µs per check, median of ${ROUNDS} rounds of ${PER_ROUND}`);
console.log("| request | kmsd's validator | protovalidate alone |\n|---|---:|---:|");
for (const [name, schema, message] of requests) {
  if (kmsd.check(schema, message) !== undefined) throw new Error(`${name} is not valid`);
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    ours.push(microseconds(() => kmsd.check(schema, message)));
    theirs.push(microseconds(() => protovalidate.validate(schema, message)));
  }
  console.log(`| ${name} | ${median(ours).toFixed(2)} | ${median(theirs).toFixed(2)} |`);
}
