import type { MessageInitShape } from "@bufbuild/protobuf";
import type { KeyInfoSchema } from "../../gen/kms/v1/kms_pb.js";
import type { KeyRecord } from "../keystore/types.js";

/** A key as describe-key and list-keys report it, in Huawei's string forms. */
export function keyInfo(key: KeyRecord, realm: string): MessageInitShape<typeof KeyInfoSchema> {
  return {
    keyId: key.keyId,
    domainId: key.projectId,
    keyAlias: key.alias,
    realm,
    keySpec: key.keySpec,
    keyUsage: key.keyUsage,
    keyDescription: key.description,
    creationDate: String(key.createdAt),
    scheduledDeletionDate: key.deletionAt === null ? "" : String(key.deletionAt),
    keyState: key.state,
    defaultKeyFlag: "0",
    keyType: "1",
    expirationTime: "",
    origin: key.origin,
    keyRotationEnabled: key.rotationEnabled ? "true" : "false",
    sysEnterpriseProjectId: key.enterpriseProjectId,
    keystoreId: "0",
  };
}
