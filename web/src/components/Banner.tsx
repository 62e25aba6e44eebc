// The freshness banner: live from WatchFreshness, with "N min ago" kept
// current by a local timer (no request).

import { useEffect, useState } from "preact/hooks";
import { freshnessState } from "../freshness";
import { formatAgo, msUntilNextMinute } from "../lib/ago";
import { bannerView, type BannerView, type FailureRow, type ProgressRow } from "../lib/freshnessView";
import { plural } from "../lib/labels";
import { session } from "../session";
import { useStore } from "../store";

/** The current time, re-rendered when the "N min ago" count changes. */
function useNow(sinceMs: number | undefined): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (sinceMs === undefined) return;
    const timer = setTimeout(() => setNow(Date.now()), msUntilNextMinute(sinceMs, Date.now()) + 50);
    return () => clearTimeout(timer);
  }, [sinceMs, now]);
  return now;
}

function headline(view: BannerView, now: number): string {
  switch (view.state) {
    case "signing-in":
      return "Signing in…";
    case "connecting":
      return "Connecting…";
    case "reconnecting":
      return "Reconnecting…";
    case "collecting":
      return "Collecting…";
    case "never":
      return "Nothing collected yet";
    case "idle":
      return `Last refreshed ${formatAgo(view.lastCollectedMs ?? now, now)}`;
  }
}

function Progress({ row }: { row: ProgressRow }) {
  const percent = row.total > 0 ? Math.round((row.done / row.total) * 100) : 0;
  const text = `${row.done} of ${row.total} accounts, ${plural(row.recommendations, "recommendation")} so far, ${plural(row.requests, "request")}`;
  return (
    <div class="progress-row">
      <span class="progress-name">{row.label}</span>
      <div
        role="progressbar"
        aria-label={`${row.label} accounts`}
        aria-valuemin={0}
        aria-valuemax={row.total}
        aria-valuenow={row.done}
        aria-valuetext={`${row.done} of ${row.total} accounts`}
        class="progress-track"
      >
        <div class="progress-fill" style={{ width: `${percent}%` }} />
      </div>
      <span class="progress-text">{text}</span>
    </div>
  );
}

function Failures({ rows }: { rows: FailureRow[] }) {
  return (
    <details class="failures">
      <summary>{plural(rows.length, "failure")}</summary>
      <table>
        <caption class="visually-hidden">Failures of the last run</caption>
        <thead>
          <tr>
            <th scope="col">Provider</th>
            <th scope="col">Account</th>
            <th scope="col">Service</th>
            <th scope="col">Region</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((f, i) => (
            <tr key={i}>
              <td>{f.provider}</td>
              <td>{f.account || "—"}</td>
              <td>{f.service || "—"}</td>
              <td>{f.region || "—"}</td>
              <td class="error-text">{f.error}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

export function Banner() {
  const { connection, freshness } = useStore(freshnessState);
  const { signingIn } = useStore(session);
  const view = bannerView(freshness, connection, signingIn);
  const now = useNow(view.lastCollectedMs);
  return (
    <section class="banner" aria-label="Freshness">
      <div role="status" data-testid="freshness" data-state={view.state} data-version={freshness?.version.toString()}>
        <p class="banner-headline">{headline(view, now)}</p>
        {view.progress.length > 0 && (
          <div class="progress">
            {view.progress.map((row) => (
              <Progress key={row.label} row={row} />
            ))}
          </div>
        )}
        {view.outcome && <p class="banner-outcome">{view.outcome}</p>}
        {view.failures.length > 0 && <Failures rows={view.failures} />}
      </div>
    </section>
  );
}
