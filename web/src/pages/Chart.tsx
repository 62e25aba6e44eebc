// Savings by provider and by service, as HTML bars: each bar's label and
// amount are text, so screen readers and copy-paste get the figures.

import type { CurrencyTotal } from "../gen/cudly/recommendations/v1/recommendations_pb";
import { formatMoney, nanosToDecimal, shareOf, toNanos } from "../lib/money";

/** One bar's source: a label and the totals per currency for it. */
export interface Series {
  label: string;
  totals: CurrencyTotal[];
}

interface Bar {
  label: string;
  nanos: bigint;
}

/** Bars grouped by currency, largest first within each. */
function barsByCurrency(series: Series[]): Map<string, Bar[]> {
  const groups = new Map<string, Bar[]>();
  for (const s of series) {
    for (const t of s.totals) {
      if (!t.monthlySavings) continue;
      const bars = groups.get(t.currencyCode) ?? [];
      bars.push({ label: s.label, nanos: toNanos(t.monthlySavings) });
      groups.set(t.currencyCode, bars);
    }
  }
  for (const bars of groups.values()) bars.sort((a, b) => (a.nanos === b.nanos ? 0 : a.nanos > b.nanos ? -1 : 1));
  return groups;
}

export function BarChart(props: {
  caption: string;
  series: Series[];
  /** Bars shown at most per currency (the largest); a note counts the rest. */
  limit?: number;
}) {
  const groups = barsByCurrency(props.series);
  const many = groups.size > 1;
  const limit = props.limit ?? Number.POSITIVE_INFINITY;
  return (
    <figure class="chart">
      <figcaption>{props.caption}</figcaption>
      {groups.size === 0 && <p class="muted">No savings to show.</p>}
      {[...groups].map(([currency, all]) => {
        const bars = all.slice(0, limit);
        const largest = bars.reduce((max, b) => (b.nanos > max ? b.nanos : max), 0n);
        return (
          <div key={currency}>
            {many && <p class="chart-currency">{currency}</p>}
            <ul class="bars">
              {bars.map((bar) => {
                const decimal = nanosToDecimal(bar.nanos);
                return (
                  <li key={bar.label} class="bar-row">
                    <span class="bar-label" title={bar.label}>{bar.label}</span>
                    <span class="bar-track" aria-hidden="true">
                      <span class="bar-fill" style={{ width: `${(shareOf(bar.nanos, largest) * 100).toFixed(2)}%` }} />
                    </span>
                    <span class="bar-value" data-amount={decimal} data-currency={currency}>
                      {formatMoney(decimal, currency)}
                    </span>
                  </li>
                );
              })}
            </ul>
            {all.length > bars.length && (
              <p class="chart-note">
                {all.length - bars.length} more with less savings{many ? ` in ${currency}` : ""} not shown.
              </p>
            )}
          </div>
        );
      })}
    </figure>
  );
}
