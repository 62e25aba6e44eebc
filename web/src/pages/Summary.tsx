// The totals over every matching row, per currency, exact.

import type { Summary as SummaryMessage } from "../gen/cudly/recommendations/v1/recommendations_pb";
import { plural } from "../lib/labels";
import { formatMoney, moneyToDecimal } from "../lib/money";

export function Summary({ summary }: { summary: SummaryMessage | undefined }) {
  const count = summary?.count ?? 0n;
  const attributes: Record<string, string> = {};
  const totals = (summary?.totals ?? []).map((t) => {
    const savings = t.monthlySavings ? moneyToDecimal(t.monthlySavings) : "0";
    const upfront = t.upfrontCost ? moneyToDecimal(t.upfrontCost) : "0";
    attributes[`data-savings-${t.currencyCode}`] = savings;
    return { currency: t.currencyCode, count: t.count, savings, upfront };
  });
  return (
    <section class="summary" aria-label="Summary" data-testid="summary" data-count={count.toString()} {...attributes}>
      <p class="summary-count">
        <strong>{plural(count, "recommendation")}</strong> match the filters
      </p>
      {totals.length > 0 && (
        <dl class="summary-totals">
          {totals.map((t) => (
            <div key={t.currency} class="summary-total">
              <dt>Monthly savings ({t.currency}, {plural(t.count, "row")})</dt>
              <dd data-amount={t.savings}>{formatMoney(t.savings, t.currency)}</dd>
              <dt>Upfront cost ({t.currency})</dt>
              <dd data-amount={t.upfront}>{formatMoney(t.upfront, t.currency)}</dd>
            </div>
          ))}
        </dl>
      )}
    </section>
  );
}
