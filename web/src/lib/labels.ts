// Enum values in the words the page uses. The numbers are the proto's enum
// numbers (kept here so this module needs no generated code and stays pure).

/** Provider enum number → display name; also used in aria-labels ("AWS accounts"). */
const PROVIDER_NAMES: Record<number, string> = { 1: "AWS", 2: "Azure", 3: "GCP" };

/** URL key (aws|azure|gcp) ↔ Provider enum number. */
export const PROVIDER_NUMBERS = { aws: 1, azure: 2, gcp: 3 } as const;

export function providerName(provider: number): string {
  return PROVIDER_NAMES[provider] ?? "Unknown provider";
}

/** Outcome enum number → the banner's sentence about the last run. */
export function outcomeSentence(outcome: number): string {
  switch (outcome) {
    case 1:
      return "A run is in progress";
    case 2:
      return "Last run succeeded";
    case 3:
      return "Last run partially succeeded";
    case 4:
      return "Last run failed";
    case 5:
      return "Last run was cancelled";
    case 6:
      return "Last run was abandoned";
    default:
      return "Last run ended";
  }
}

/** Outcome enum number → a table cell's word. */
export function outcomeWord(outcome: number): string {
  return ["Unknown", "Running", "Succeeded", "Partially succeeded", "Failed", "Cancelled", "Abandoned"][outcome] ?? "Unknown";
}

/** Trigger enum number → a table cell's word. */
export function triggerWord(trigger: number): string {
  return ["Unspecified", "User", "Cold start", "Stale data", "Schedule"][trigger] ?? "Unknown";
}

/** CommitmentType enum number → words. */
export function commitmentWord(type: number): string {
  return ["Unspecified", "Reserved instance", "Savings plan", "Committed use discount"][type] ?? "Unknown";
}

/** PaymentOption enum number → words. */
export function paymentWord(option: number): string {
  return ["Unspecified", "No upfront", "Partial upfront", "All upfront", "Monthly"][option] ?? "Unknown";
}

/** "1 failure", "3 failures": the count with its noun. */
export function plural(count: number | bigint, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 || count === 1n ? noun : nouns}`;
}
