// A cold console (nothing ever collected): Refresh starts the first
// collection, progress streams into the banner while the run goes on, and the
// table and summary then show what ListRecommendations serves.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  banner, bannerStates, checkAccessibility, dataRows, launch, newPage, screenshotAfterEach, recordBanner, tableRows, waitForBanner,
} from '../lib/browser.mjs';
import { decimalNanos, moneyNanos } from '../lib/money.mjs';
import { rowShows } from '../lib/data.mjs';
import { cudlyctl, need } from '../lib/services.mjs';

const API = need('CUDLY_API_URL');
let browser;
let page;

screenshotAfterEach(import.meta.url, () => page);

before(async () => {
  const [freshness] = await cudlyctl(['freshness']);
  assert.ok(!freshness.lastCollectedAt && !freshness.collection, 'this test needs a database where nothing was collected yet');
  browser = await launch();
  page = await newPage(browser);
  await recordBanner(page);
});

after(async () => {
  await browser?.close();
});

test('a cold console says nothing was collected yet', async () => {
  await page.goto(`${API}/`);
  await waitForBanner(page, 'never');
  await assert.doesNotReject(banner(page).getByText('Nothing collected yet').waitFor());
  // Opening the page alone must not start a run behind the user's back.
  await page.waitForTimeout(1000);
  // Before the stream's first message (no data-version yet) the banner may
  // show that it is connecting; from the first message on it must say never.
  const seen = (await bannerStates(page)).filter((s) => s.version);
  assert.deepEqual([...new Set(seen.map((s) => s.state))], ['never'], `banner states before any click: ${JSON.stringify(seen)}`);
  await checkAccessibility(page, 'recommendations-cold');
});

let clickedAt;

test('Refresh starts a new collection and a second click joins it', async () => {
  clickedAt = Date.now();
  await page.getByRole('button', { name: 'Refresh' }).click();
  const result = page.getByTestId('refresh-result');
  await result.getByText('Started a new collection').waitFor();
  await waitForBanner(page, 'collecting', 10_000);
  await checkAccessibility(page, 'recommendations-collecting');
  await page.getByRole('button', { name: 'Refresh' }).click();
  await result.getByText('Joined the collection already running').waitFor();
  const [freshness] = await cudlyctl(['freshness']);
  assert.equal(freshness.collecting, true, 'the second click landed while the run was going');
});

test('progress arrives in the banner while the run is going, not in one batch at the end', async () => {
  await waitForBanner(page, 'idle', 60_000);
  await banner(page).getByText(/Last run succeeded/).waitFor();
  const [{ collections: [run] }] = await cudlyctl(['collections']);
  assert.equal(run.outcome, 'OUTCOME_SUCCEEDED');
  const finishedAt = Date.parse(run.finishedAt);

  const states = (await bannerStates(page)).filter((s) => s.at >= clickedAt);
  const progress = states.filter((s) => s.state === 'collecting' && s.bars.length > 0);
  const final = states.at(-1);
  const describe = JSON.stringify(states.map((s) => [Math.round(s.at - clickedAt), s.state, s.version, s.bars.map((b) => `${b.label} ${b.now}/${b.max}`).join(', ')]));
  assert.equal(final.state, 'idle', describe);
  const distinct = new Set(progress.map((s) => JSON.stringify(s.bars)));
  assert.ok(distinct.size >= 3, `at least three distinct progress states, saw ${distinct.size}: ${describe}`);
  for (const s of progress) {
    for (const b of s.bars) {
      assert.match(b.label, /^(AWS|Azure|GCP) accounts$/, describe);
      assert.ok(b.now >= 0 && b.now <= b.max, `progress within its total: ${describe}`);
    }
  }
  // Spread over the run: the first progress shows well before the run
  // finished (by the server's clock, the same machine), and the progress
  // states themselves span a good part of the run.
  const runMs = finishedAt - Date.parse(run.startedAt);
  assert.ok(progress[0].at <= finishedAt - runMs / 2, `first progress ${Math.round(finishedAt - progress[0].at)} ms before the end of a ${runMs} ms run: ${describe}`);
  const span = progress.at(-1).at - progress[0].at;
  assert.ok(span >= runMs / 3, `progress states spread over ${Math.round(span)} ms of a ${runMs} ms run: ${describe}`);
  assert.ok(final.at >= finishedAt - 50, `final state shown after the run ended: ${describe}`);
});

test('the table fills and the summary matches ListRecommendations', async () => {
  await dataRows(page, 'Recommendations').first().waitFor();
  const rows = await tableRows(page, 'Recommendations');
  assert.ok(rows.length > 0);

  const [listed] = await cudlyctl(['list', '--limit', '1']);
  const summary = page.getByTestId('summary');
  await page.waitForFunction((n) => document.querySelector('[data-testid="summary"]')?.getAttribute('data-count') === n, listed.summary.count);
  const attrs = await summary.evaluate((el) => Object.fromEntries(el.getAttributeNames().map((n) => [n, el.getAttribute(n)])));
  assert.equal(attrs['data-count'], listed.summary.count);
  const shown = Object.entries(attrs).filter(([n]) => n.startsWith('data-savings-'));
  assert.deepEqual(shown.map(([n]) => n.slice('data-savings-'.length).toUpperCase()).sort(),
    listed.summary.totals.map((t) => t.currencyCode).sort(), 'one savings figure per currency');
  for (const total of listed.summary.totals) {
    const [, text] = shown.find(([n]) => n.slice('data-savings-'.length).toUpperCase() === total.currencyCode);
    assert.equal(decimalNanos(text), moneyNanos(total.monthlySavings), `${total.currencyCode} savings ${text}`);
  }
  // The first row is the server's first (biggest savings first).
  assert.ok(rowShows(rows[0], listed.recommendations[0]),
    `first row ${JSON.stringify(rows[0])} is ${listed.recommendations[0].id}`);
  await checkAccessibility(page, 'recommendations');
  assert.deepEqual(page.pageErrors, []);
});

test('the charts total every matching row by provider and by service, as the server sums them', async () => {
  const [listed] = await cudlyctl(['list', '--limit', '1']);
  const names = { PROVIDER_AWS: 'AWS', PROVIDER_AZURE: 'Azure', PROVIDER_GCP: 'GCP' };
  const bars = (caption) => page.getByRole('figure', { name: caption }).locator('li').evaluateAll((items) => items.map((li) => ({
    label: li.querySelector('.bar-label')?.textContent,
    amount: li.querySelector('.bar-value')?.getAttribute('data-amount'),
    currency: li.querySelector('.bar-value')?.getAttribute('data-currency'),
  })));
  const usd = (groups) => groups.filter((g) => g.total.currencyCode === 'USD')
    .sort((a, b) => (moneyNanos(b.total.monthlySavings) > moneyNanos(a.total.monthlySavings) ? 1 : -1));

  const byProvider = await bars('Savings by provider');
  const expected = usd(listed.summary.byProvider);
  assert.equal(expected.length, 3, 'the fleet has three providers');
  assert.deepEqual(byProvider.map((b) => [b.label, decimalNanos(b.amount)]),
    expected.map((g) => [names[g.provider], moneyNanos(g.total.monthlySavings)]));
  const usdTotal = listed.summary.totals.find((t) => t.currencyCode === 'USD');
  assert.equal(byProvider.reduce((sum, b) => sum + decimalNanos(b.amount), 0n), moneyNanos(usdTotal.monthlySavings),
    'the provider bars add up to every matching row, not one page');

  const byService = await bars('Savings by service');
  const services = usd(listed.summary.byService);
  assert.ok(services.length > byService.length, `more services (${services.length}) than bars: the rest is counted`);
  assert.deepEqual(byService.map((b) => [b.label, decimalNanos(b.amount)]),
    services.slice(0, byService.length).map((g) => [g.service, moneyNanos(g.total.monthlySavings)]));
  await page.getByText(`${services.length - byService.length} more with less savings not shown.`).waitFor();
});
