// When things go wrong: a Refresh the collector cannot take says so and
// leaves the button usable, and a run's failures are listed per provider and
// account in the banner, one click away.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  banner, checkAccessibility, launch, newPage, screenshotAfterEach, waitForBanner,
} from '../lib/browser.mjs';
import { collected } from '../lib/data.mjs';
import { apiService, collectorService, cudlyctl, freePort } from '../lib/services.mjs';

let browser;
let page;
const started = [];

screenshotAfterEach(import.meta.url, () => page);

before(async () => {
  await collected();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  for (const s of started.reverse()) await s.stop();
});

test('Refresh with the collector unreachable says so, leaves no run behind, and can be clicked again', async () => {
  // Nothing listens on this port: dispatch fails, the lease is released.
  const api = await apiService({ name: 'api-no-collector', env: { CUDLY_COLLECTOR_URL: `http://127.0.0.1:${await freePort()}` } });
  started.push(api);
  page = await newPage(browser);
  await page.goto(`${api.url}/`);
  await waitForBanner(page, 'idle');
  const refresh = page.getByRole('button', { name: 'Refresh' });
  const result = page.getByTestId('refresh-result');
  for (let attempt = 1; attempt <= 2; attempt += 1) {
    const answered = page.waitForResponse((r) => r.url().endsWith('/RefreshRecommendations'));
    await refresh.click();
    await answered;
    await result.getByText('The collector is unavailable; try again shortly').waitFor();
    assert.equal(await refresh.isEnabled(), true, `attempt ${attempt}: the button is usable again`);
    const [freshness] = await cudlyctl(['freshness'], { api: api.url });
    assert.equal(freshness.collecting, false, `attempt ${attempt}: the lease taken for the refused run was released`);
  }
  await checkAccessibility(page, 'recommendations-collector-unavailable');
  assert.deepEqual(page.pageErrors, []);
});

test('a run with failures lists them per provider and account in the banner, one click away', async () => {
  // A collector whose simulated clouds fail a third of the calls, and an
  // api-service delivering to it.
  const collector = await collectorService({ name: 'collector-failing', env: { CUDLY_SIM_FAILURE_RATE: '0.3', CUDLY_SIM_LATENCY: '20ms' } });
  started.push(collector);
  const api = await apiService({ name: 'api-failing', env: { CUDLY_COLLECTOR_URL: collector.url } });
  started.push(api);
  page = await newPage(browser);
  await page.goto(`${api.url}/`);
  await waitForBanner(page, 'idle');
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.getByTestId('refresh-result').getByText('Started a new collection').waitFor();
  await page.waitForFunction(
    () => {
      const el = document.querySelector('[data-testid="freshness"]');
      return el?.dataset.state === 'idle' && /Last run (partially succeeded|failed)/.test(el.textContent);
    },
    null, { timeout: 60_000, polling: 100 },
  );

  const [freshness] = await cudlyctl(['freshness'], { api: api.url });
  const failed = freshness.collection.providers.flatMap((p) => (p.failedAccounts ?? []).map((a) => ({ provider: p.provider, ...a })));
  assert.ok(failed.length > 0, 'a third of the calls failing fails some accounts');
  const expectedRows = failed.reduce((n, a) => n + Math.max(1, (a.failures ?? []).length), 0);

  const details = banner(page).locator('details');
  const summary = details.locator('summary');
  assert.equal((await summary.textContent()).trim(), `${expectedRows} failure${expectedRows === 1 ? '' : 's'}`);
  const table = details.getByRole('table', { name: 'Failures of the last run' });
  assert.equal(await table.isVisible(), false, 'folded until asked for');
  await summary.click();
  await table.waitFor();
  const rows = await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent.trim())));
  assert.equal(rows.length, expectedRows);
  const names = { PROVIDER_AWS: 'AWS', PROVIDER_AZURE: 'Azure', PROVIDER_GCP: 'GCP' };
  for (const account of failed) {
    const mine = rows.filter(([provider, id]) => provider === names[account.provider] && id === account.accountId);
    assert.equal(mine.length, Math.max(1, (account.failures ?? []).length), `rows of ${account.accountId}: ${JSON.stringify(rows)}`);
    for (const f of account.failures ?? []) {
      assert.ok(mine.some(([, , service, region, error]) => service === f.service && region === (f.region || '—') && error === f.error),
        `${account.accountId}: ${f.service} ${f.region} listed with its error`);
    }
  }
  await checkAccessibility(page, 'recommendations-failures');
  assert.deepEqual(page.pageErrors, []);
});
