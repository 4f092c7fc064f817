/** Why a ciphertext could not be opened. Each reason has its own message. */
export type CiphertextFailure =
  | "malformed"
  | "context-missing"
  | "context-unexpected"
  | "aad-missing"
  | "aad-unexpected"
  | "authentication";

export class CiphertextError extends Error {
  constructor(
    readonly failure: CiphertextFailure,
    message: string,
  ) {
    super(message);
    this.name = "CiphertextError";
  }
}
