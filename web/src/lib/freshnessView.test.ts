import { describe, expect, it } from "vitest";
import { bannerView, finishedRunKey, type FreshnessLike, type ProviderLike } from "./freshnessView";

const ts = (seconds: number) => ({ seconds: BigInt(seconds), nanos: 0 });

function provider(overrides: Partial<ProviderLike> = {}): ProviderLike {
  return {
    provider: 1,
    accountsTotal: 6,
    accountsSucceeded: 2,
    accountsFailed: 1,
    accountsPartiallySucceeded: 1,
    recommendationCount: 40n,
    requestCount: 12n,
    error: "",
    failedAccounts: [],
    ...overrides,
  };
}

function freshness(overrides: Partial<FreshnessLike> = {}): FreshnessLike {
  return { version: 3n, collecting: false, ...overrides };
}

describe("bannerView", () => {
  it("says nothing was collected on a cold database", () => {
    expect(bannerView(freshness(), "live", false).state).toBe("never");
  });

  it("counts done accounts as succeeded, partly succeeded and failed", () => {
    const view = bannerView(
      freshness({ collecting: true, collection: { id: "c", outcome: 1, error: "", providers: [provider()] } }),
      "live",
      false,
    );
    expect(view.state).toBe("collecting");
    expect(view.progress).toEqual([{ label: "AWS", done: 4, total: 6, recommendations: 40n, requests: 12n }]);
    expect(view.outcome).toBeUndefined();
  });

  it("shows the outcome and every failure once the run ended", () => {
    const failed = provider({
      provider: 3,
      failedAccounts: [
        { accountId: "p1", error: "denied", unitsFailed: 3, unitsTotal: 3, failures: [] },
        {
          accountId: "p2",
          error: "first",
          unitsFailed: 2,
          unitsTotal: 9,
          failures: [
            { accountId: "p2", service: "compute", region: "us-east1", error: "quota" },
            { accountId: "", service: "cloud_sql", region: "", error: "timeout" },
          ],
        },
      ],
    });
    const view = bannerView(
      freshness({ lastCollectedAt: ts(100), collection: { id: "c", outcome: 3, error: "", providers: [failed] } }),
      "live",
      false,
    );
    expect(view.state).toBe("idle");
    expect(view.outcome).toBe("Last run partially succeeded");
    expect(view.failures).toEqual([
      { provider: "GCP", account: "p1", service: "", region: "", error: "denied" },
      { provider: "GCP", account: "p2", service: "compute", region: "us-east1", error: "quota" },
      { provider: "GCP", account: "p2", service: "cloud_sql", region: "", error: "timeout" },
    ]);
    expect(view.lastCollectedMs).toBe(100_000);
  });

  it("says reconnecting while the stream is down, and signing in above all", () => {
    const live = freshness({ collecting: true });
    expect(bannerView(live, "reconnecting", false).state).toBe("reconnecting");
    expect(bannerView(undefined, "connecting", false).state).toBe("connecting");
    expect(bannerView(live, "reconnecting", true).state).toBe("signing-in");
  });
});

describe("finishedRunKey", () => {
  it("changes when a new run finishes, and is absent while one runs", () => {
    const running = freshness({ collecting: true, collection: { id: "a", outcome: 1, error: "", providers: [] } });
    const done = freshness({ collection: { id: "a", outcome: 2, error: "", finishedAt: ts(5), providers: [] } });
    const next = freshness({ collection: { id: "b", outcome: 2, error: "", finishedAt: ts(9), providers: [] } });
    expect(finishedRunKey(running)).toBeUndefined();
    expect(finishedRunKey(done)).not.toBe(finishedRunKey(next));
    expect(finishedRunKey(freshness())).toBeUndefined();
  });
});
