/**
 * Searching text for secrets in every form they may take when written
 * down: as given, base64 (padded or not, standard or URL alphabet) of their
 * bytes, and hex in either case.
 */

export interface Secret {
  /** What it is, for the report ("plaintext of the REST encrypt"). */
  readonly name: string;
  /** Text (searched as is and as the base64 and hex of its UTF-8) or bytes (base64 and hex). */
  readonly value: string | Uint8Array;
}

/** Shorter forms would match by chance (hex of 4 bytes is 8 characters). */
const MIN_FORM_CHARS = 12;

/** The forms a secret is searched in. */
export function secretForms(value: string | Uint8Array): string[] {
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value);
  const base64 = bytes.toString("base64");
  const forms = [
    base64,
    base64.replace(/=+$/, ""),
    bytes.toString("base64url"),
    bytes.toString("hex"),
    bytes.toString("hex").toUpperCase(),
  ];
  if (typeof value === "string") forms.unshift(value);
  return [...new Set(forms)].filter((form) => form.length >= MIN_FORM_CHARS);
}

export interface Finding {
  readonly secret: string;
  readonly form: string;
  readonly where: string;
}

/** Every secret found in any of the corpora, in any of its forms. */
export function findSecrets(
  corpora: Readonly<Record<string, string>>,
  secrets: readonly Secret[],
): Finding[] {
  const findings: Finding[] = [];
  for (const secret of secrets) {
    const forms = secretForms(secret.value);
    if (forms.length === 0) throw new Error(`${secret.name} is too short to search for`);
    for (const [where, text] of Object.entries(corpora)) {
      const form = forms.find((candidate) => text.includes(candidate));
      if (form !== undefined) findings.push({ secret: secret.name, form, where });
    }
  }
  return findings;
}
