/**
 * Key rotation and key metadata updates, shared by the REST, gRPC and
 * Connect suites.
 */
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { expectFailure, versionOf } from "./case-helpers.js";
import { type Kit, str, UNKNOWN_KEY_ID } from "./grpc-cases.js";

const invalid = (reason: string, message: string | RegExp) => ({
  code: Code.InvalidArgument,
  reason,
  message,
});

export function describeRotationCases(kit: () => Kit): void {
  describe("key rotation", () => {
    const status = async (k: Kit, project: string, keyId: string) =>
      k.driver.call("GetKeyRotationStatus", { project_id: project, key_id: keyId });

    it("a new key has rotation off, every Huawei field in its JSON type", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      expect(await status(k, project, keyId)).toEqual({
        key_rotation_enabled: false,
        rotation_interval: 365,
        last_rotation_time: "",
        number_of_rotations: 0,
      });
      const described = await k.driver.call("DescribeKey", { project_id: project, key_id: keyId });
      expect(str(described, "key_info.key_rotation_enabled")).toBe("false");
    });

    it("enable and disable answer {}, show in status, describe-key and list-keys, and repeat harmlessly", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const request = { project_id: project, key_id: keyId };
      const shown = async () => {
        const described = await k.driver.call("DescribeKey", request);
        const listed = await k.driver.call("ListKeys", { project_id: project });
        const [detail] = listed.key_details as { key_rotation_enabled: string }[];
        const enabled = (await status(k, project, keyId)).key_rotation_enabled;
        return [
          enabled,
          str(described, "key_info.key_rotation_enabled"),
          detail?.key_rotation_enabled,
        ];
      };

      expect(await k.driver.call("EnableKeyRotation", request)).toEqual({});
      expect(await shown()).toEqual([true, "true", "true"]);
      expect(
        await k.driver.call("EnableKeyRotation", {
          ...request,
          sequence: "919c82d4-8046-4722-9094-35c3c6524cff",
        }),
      ).toEqual({});
      expect(await shown()).toEqual([true, "true", "true"]);

      expect(await k.driver.call("DisableKeyRotation", request)).toEqual({});
      expect(await shown()).toEqual([false, "false", "false"]);
      expect(await k.driver.call("DisableKeyRotation", request)).toEqual({});
      expect(await shown()).toEqual([false, "false", "false"]);
    });

    it("update-key-rotation-interval takes 30..365 days while rotation is on", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      await k.driver.call("EnableKeyRotation", { project_id: project, key_id: keyId });
      for (const days of [30, 365, 90]) {
        expect(
          await k.driver.call("UpdateKeyRotationInterval", {
            project_id: project,
            key_id: keyId,
            rotation_interval: days,
          }),
        ).toEqual({});
        expect((await status(k, project, keyId)).rotation_interval).toBe(days);
      }
      // Kept while rotation is off, and again when it is back on.
      await k.driver.call("DisableKeyRotation", { project_id: project, key_id: keyId });
      expect(await status(k, project, keyId)).toMatchObject({
        key_rotation_enabled: false,
        rotation_interval: 90,
      });
      await k.driver.call("EnableKeyRotation", { project_id: project, key_id: keyId });
      expect((await status(k, project, keyId)).rotation_interval).toBe(90);
    });

    it("update-key-rotation-interval on a key whose rotation is off is KMS.0313", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      await expectFailure(
        k,
        "UpdateKeyRotationInterval",
        { project_id: project, key_id: keyId, rotation_interval: 30 },
        {
          code: Code.FailedPrecondition,
          reason: "KMS.0313",
          message: `rotation is not enabled for key ${keyId}: enable it (enable-key-rotation) before changing its interval`,
        },
      );
    });

    it.each([29, 366, -30])("rotation_interval %d is KMS.0308", async (days) => {
      const k = kit();
      await expectFailure(
        k,
        "UpdateKeyRotationInterval",
        { project_id: k.project(), key_id: UNKNOWN_KEY_ID, rotation_interval: days },
        invalid(
          "KMS.0308",
          "rotation_interval: must be greater than or equal to 30 and less than or equal to 365",
        ),
      );
    });

    it("a missing rotation_interval is KMS.0204", async () => {
      const k = kit();
      await expectFailure(
        k,
        "UpdateKeyRotationInterval",
        { project_id: k.project(), key_id: UNKNOWN_KEY_ID },
        invalid("KMS.0204", "rotation_interval is required"),
      );
    });

    it("rotate-on-demand makes a new primary version; ciphertexts of every version still decrypt", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const context = { purpose: "rotation" };
      const cipherTexts: string[] = [];
      const before = Date.now();
      for (let version = 1; version <= 4; version += 1) {
        const cipherText = await k.encrypt(project, keyId, `made under v${version}`, context);
        expect(versionOf(cipherText)).toBe(version);
        cipherTexts.push(cipherText);
        expect(
          await k.driver.call("RotateOnDemand", { project_id: project, key_id: keyId }),
        ).toEqual({});
      }
      const after = Date.now();
      expect(versionOf(await k.encrypt(project, keyId, "newest"))).toBe(5);
      for (const [index, cipherText] of cipherTexts.entries()) {
        expect(
          await k.driver.call("DecryptData", {
            project_id: project,
            cipher_text: cipherText,
            encryption_context: context,
          }),
        ).toMatchObject({ key_id: keyId, plain_text: `made under v${index + 1}` });
      }
      const rotation = await status(k, project, keyId);
      expect(rotation).toMatchObject({ key_rotation_enabled: false, number_of_rotations: 4 });
      const last = Number(rotation.last_rotation_time);
      expect(last).toBeGreaterThanOrEqual(before);
      expect(last).toBeLessThanOrEqual(after);
    });

    it("rotate-on-demand needs an enabled key: disabled is KMS.0209, pending deletion KMS.0210, unknown KMS.0207", async () => {
      const k = kit();
      const project = k.project();
      const disabled = await k.createKey(project);
      await k.driver.call("DisableKey", { project_id: project, key_id: disabled });
      await expectFailure(
        k,
        "RotateOnDemand",
        { project_id: project, key_id: disabled },
        {
          code: Code.FailedPrecondition,
          reason: "KMS.0209",
          message: `key ${disabled} is disabled`,
        },
      );
      const pending = await k.createKey(project);
      await k.driver.call("ScheduleKeyDeletion", {
        project_id: project,
        key_id: pending,
        pending_days: "7",
      });
      await expectFailure(
        k,
        "RotateOnDemand",
        { project_id: project, key_id: pending },
        {
          code: Code.FailedPrecondition,
          reason: "KMS.0210",
          message: `key ${pending} is pending deletion and cannot be used`,
        },
      );
      await expectFailure(
        k,
        "RotateOnDemand",
        { project_id: project, key_id: UNKNOWN_KEY_ID },
        {
          code: Code.NotFound,
          reason: "KMS.0207",
          message: `key ${UNKNOWN_KEY_ID} does not exist`,
        },
      );
      // Nothing was rotated.
      expect((await status(k, project, disabled)).number_of_rotations).toBe(0);
    });

    it("rotation settings of a disabled key may change; of a key pending deletion they are KMS.0210", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      await k.driver.call("DisableKey", { project_id: project, key_id: keyId });
      expect(
        await k.driver.call("EnableKeyRotation", { project_id: project, key_id: keyId }),
      ).toEqual({});
      await k.driver.call("ScheduleKeyDeletion", {
        project_id: project,
        key_id: keyId,
        pending_days: "7",
      });
      const pending = {
        code: Code.FailedPrecondition,
        reason: "KMS.0210",
        message: `key ${keyId} is pending deletion: cancel the deletion first`,
      };
      await expectFailure(k, "DisableKeyRotation", { project_id: project, key_id: keyId }, pending);
      await expectFailure(k, "EnableKeyRotation", { project_id: project, key_id: keyId }, pending);
      await expectFailure(
        k,
        "UpdateKeyRotationInterval",
        { project_id: project, key_id: keyId, rotation_interval: 60 },
        pending,
      );
      // Readable still.
      expect((await status(k, project, keyId)).key_rotation_enabled).toBe(true);
    });

    it("a user may read the rotation status but not change rotation (KMS.0307)", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const user = { kind: "x-auth-token", token: await k.tokens.userFor(project) } as const;
      const request = { project_id: project, key_id: keyId };
      expect(await k.driver.call("GetKeyRotationStatus", request, user)).toMatchObject({
        key_rotation_enabled: false,
      });
      for (const method of ["EnableKeyRotation", "DisableKeyRotation", "RotateOnDemand"] as const) {
        const error = await k.driver.fail(method, request, user);
        expect([Code[error.code], error.reason, error.message]).toEqual([
          Code[Code.PermissionDenied],
          "KMS.0307",
          `role user may not call ${method}`,
        ]);
      }
    });
  });

  describe("UpdateKeyAlias and UpdateKeyDescription", () => {
    it("rename a key: describe shows the new alias and the old one is free again", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project, "before-rename");
      expect(
        await k.driver.call("UpdateKeyAlias", {
          project_id: project,
          key_id: keyId,
          key_alias: "after/rename:1",
        }),
      ).toEqual({ key_info: { key_id: keyId, key_alias: "after/rename:1" } });
      const described = await k.driver.call("DescribeKey", { project_id: project, key_id: keyId });
      expect(str(described, "key_info.key_alias")).toBe("after/rename:1");
      expect(await k.createKey(project, "before-rename")).not.toBe(keyId);
    });

    it("an alias taken in the project is KMS.0308, and the key keeps its alias", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project, "mine");
      await k.createKey(project, "taken");
      const error = await k.driver.fail("UpdateKeyAlias", {
        project_id: project,
        key_id: keyId,
        key_alias: "taken",
      });
      expect([error.reason, error.message]).toEqual([
        "KMS.0308",
        'key_alias "taken" is already used in this project',
      ]);
      const described = await k.driver.call("DescribeKey", { project_id: project, key_id: keyId });
      expect(str(described, "key_info.key_alias")).toBe("mine");
    });

    it("alias rules are create-key's: /default suffix and bad characters are KMS.0308", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      await expectFailure(
        k,
        "UpdateKeyAlias",
        { project_id: project, key_id: keyId, key_alias: "app/default" },
        invalid("KMS.0308", "key_alias must not end with /default"),
      );
      await expectFailure(
        k,
        "UpdateKeyAlias",
        { project_id: project, key_id: keyId, key_alias: "a b" },
        invalid("KMS.0308", "key_alias: does not match regex pattern `^[a-zA-Z0-9:/_-]{1,255}$`"),
      );
      await expectFailure(
        k,
        "UpdateKeyAlias",
        { project_id: project, key_id: keyId },
        invalid("KMS.0204", "key_alias is required"),
      );
    });

    it("sets and clears a description; over 255 characters is KMS.0308", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const update = (description: string) =>
        k.driver.call("UpdateKeyDescription", {
          project_id: project,
          key_id: keyId,
          key_description: description,
        });
      expect(await update("orders — ünïcode")).toEqual({
        key_info: { key_id: keyId, key_description: "orders — ünïcode" },
      });
      const described = await k.driver.call("DescribeKey", { project_id: project, key_id: keyId });
      expect(str(described, "key_info.key_description")).toBe("orders — ünïcode");
      expect(await update("")).toEqual({ key_info: { key_id: keyId, key_description: "" } });
      await expectFailure(
        k,
        "UpdateKeyDescription",
        { project_id: project, key_id: keyId, key_description: "d".repeat(256) },
        invalid("KMS.0308", "key_description: must be at most 255 characters"),
      );
    });

    it("a key pending deletion cannot be renamed or described anew (KMS.0210)", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      await k.driver.call("ScheduleKeyDeletion", {
        project_id: project,
        key_id: keyId,
        pending_days: "7",
      });
      const pending = {
        code: Code.FailedPrecondition,
        reason: "KMS.0210",
        message: `key ${keyId} is pending deletion: cancel the deletion first`,
      };
      await expectFailure(
        k,
        "UpdateKeyAlias",
        { project_id: project, key_id: keyId, key_alias: "x" },
        pending,
      );
      await expectFailure(
        k,
        "UpdateKeyDescription",
        { project_id: project, key_id: keyId, key_description: "x" },
        pending,
      );
    });

    it("another project's key is KMS.0207", async () => {
      const k = kit();
      const keyId = await k.createKey(k.project());
      await expectFailure(
        k,
        "UpdateKeyDescription",
        { project_id: k.project(), key_id: keyId, key_description: "x" },
        { code: Code.NotFound, reason: "KMS.0207", message: `key ${keyId} does not exist` },
      );
    });
  });
}
