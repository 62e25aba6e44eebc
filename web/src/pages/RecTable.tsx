// One page of recommendations, in the server's order (never re-sorted here).

import type { Money } from "../gen/google/type/money_pb";
import type { Recommendation } from "../gen/cudly/recommendations/v1/recommendations_pb";
import { commitmentWord, paymentWord, providerName } from "../lib/labels";
import { formatMoney, moneyToDecimal } from "../lib/money";

const countFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 });
const percentFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

function MoneyCell({ money }: { money: Money | undefined }) {
  if (!money) return <td class="num">—</td>;
  const decimal = moneyToDecimal(money);
  return (
    <td class="num" data-amount={decimal} data-currency={money.currencyCode}>
      {formatMoney(decimal, money.currencyCode)}
    </td>
  );
}

function Row({ r }: { r: Recommendation }) {
  return (
    <tr>
      <td>{providerName(r.provider)}</td>
      <td>
        {r.accountName && r.accountName !== r.accountId ? (
          <>
            {r.accountName}
            <span class="muted small"> {r.accountId}</span>
          </>
        ) : (
          r.accountId
        )}
      </td>
      <td>{r.service}</td>
      <td>{r.region}</td>
      <td>
        {r.resourceType}
        {r.platform && <span class="muted small"> {r.platform}</span>}
      </td>
      <td>
        {commitmentWord(r.commitmentType)}, {r.termMonths} months, {paymentWord(r.paymentOption).toLowerCase()}
      </td>
      <td class="num">{countFormat.format(r.recommendedCount)}</td>
      <MoneyCell money={r.estimatedMonthlySavings} />
      <td class="num">{percentFormat.format(r.savingsPercentage)} %</td>
      <MoneyCell money={r.upfrontCost} />
      <td class="num">{r.breakEvenMonths > 0 ? `${percentFormat.format(r.breakEvenMonths)} months` : "—"}</td>
    </tr>
  );
}

export function RecTable({ rows, busy }: { rows: Recommendation[]; busy: boolean }) {
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label="Recommendations table">
      <table class="data" aria-busy={busy}>
        <caption>Recommendations</caption>
        <thead>
          <tr>
            <th scope="col">Provider</th>
            <th scope="col">Account</th>
            <th scope="col">Service</th>
            <th scope="col">Region</th>
            <th scope="col">Resource</th>
            <th scope="col">Commitment</th>
            <th scope="col" class="num">Count</th>
            <th scope="col" class="num">Monthly savings</th>
            <th scope="col" class="num">Savings</th>
            <th scope="col" class="num">Upfront</th>
            <th scope="col" class="num">Break-even</th>
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 ? (
            <tr>
              <td colSpan={11} class="empty">
                {busy ? "Loading…" : "No recommendations match."}
              </td>
            </tr>
          ) : (
            rows.map((r) => <Row key={r.id} r={r} />)
          )}
        </tbody>
      </table>
    </div>
  );
}
