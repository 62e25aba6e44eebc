// What the freshness banner shows, derived from the last Freshness seen and
// the state of the stream. Pure, so the rules are unit-tested.

import { outcomeSentence, providerName } from "./labels";

/** The parts of a Freshness message the banner reads (generated types fit). */
export interface FreshnessLike {
  version: bigint;
  collecting: boolean;
  lastCollectedAt?: { seconds: bigint; nanos: number };
  collection?: {
    id: string;
    outcome: number;
    error: string;
    finishedAt?: { seconds: bigint; nanos: number };
    providers: ProviderLike[];
  };
}

export interface ProviderLike {
  provider: number;
  accountsTotal: number;
  accountsSucceeded: number;
  accountsFailed: number;
  accountsPartiallySucceeded: number;
  recommendationCount: bigint;
  requestCount: bigint;
  error: string;
  failedAccounts: {
    accountId: string;
    error: string;
    unitsFailed: number;
    unitsTotal: number;
    failures: { accountId: string; service: string; region: string; error: string }[];
  }[];
}

export type BannerState = "never" | "idle" | "collecting" | "connecting" | "reconnecting" | "signing-in";

/** The stream: never connected yet, receiving, or retrying after a failure. */
export type Connection = "connecting" | "live" | "reconnecting";

export interface ProgressRow {
  label: string;
  done: number;
  total: number;
  recommendations: bigint;
  requests: bigint;
}

export interface FailureRow {
  provider: string;
  account: string;
  service: string;
  region: string;
  error: string;
}

export interface BannerView {
  state: BannerState;
  /** Milliseconds since the epoch of the last collection, for "N min ago". */
  lastCollectedMs?: number;
  progress: ProgressRow[];
  /** The last run's outcome, once it ended. */
  outcome?: string;
  failures: FailureRow[];
}

export function timestampMs(ts: { seconds: bigint; nanos: number } | undefined): number | undefined {
  return ts ? Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6) : undefined;
}

/** Every failure of a run, provider by provider, account by account. */
export function failureRows(providers: ProviderLike[]): FailureRow[] {
  const rows: FailureRow[] = [];
  for (const p of providers) {
    const provider = providerName(p.provider);
    for (const account of p.failedAccounts) {
      if (account.failures.length === 0) {
        rows.push({ provider, account: account.accountId, service: "", region: "", error: account.error });
      }
      for (const f of account.failures) {
        rows.push({ provider, account: f.accountId || account.accountId, service: f.service, region: f.region, error: f.error });
      }
    }
    if (p.failedAccounts.length === 0 && p.error) {
      rows.push({ provider, account: "", service: "", region: "", error: p.error });
    }
  }
  return rows;
}

/** The banner for a freshness snapshot (if any yet), the stream and sign-in. */
export function bannerView(freshness: FreshnessLike | undefined, connection: Connection, signingIn: boolean): BannerView {
  const lastCollectedMs = timestampMs(freshness?.lastCollectedAt);
  const run = freshness?.collection;
  const collecting = freshness?.collecting ?? false;
  let state: BannerState;
  if (signingIn) state = "signing-in";
  else if (connection === "connecting") state = "connecting";
  else if (connection !== "live" || !freshness) state = "reconnecting";
  else if (collecting) state = "collecting";
  else state = lastCollectedMs === undefined ? "never" : "idle";

  const progress: ProgressRow[] = collecting && run
    ? run.providers.map((p) => ({
        label: providerName(p.provider),
        done: p.accountsSucceeded + p.accountsPartiallySucceeded + p.accountsFailed,
        total: p.accountsTotal,
        recommendations: p.recommendationCount,
        requests: p.requestCount,
      }))
    : [];
  const ended = !collecting && run !== undefined;
  return {
    state,
    lastCollectedMs,
    progress,
    outcome: ended ? outcomeSentence(run.outcome) : undefined,
    failures: ended ? failureRows(run.providers) : [],
  };
}

/**
 * A key that changes when a run has finished since the last snapshot: the
 * data behind the tables changed. Undefined while collecting or before any run.
 */
export function finishedRunKey(freshness: FreshnessLike | undefined): string | undefined {
  const run = freshness?.collection;
  if (!freshness || freshness.collecting || !run) return undefined;
  return `${run.id}@${timestampMs(run.finishedAt) ?? ""}`;
}
