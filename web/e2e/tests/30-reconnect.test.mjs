// api-service stopped in the middle of a run and started again on the same
// port: the banner says it is reconnecting, then picks the stream up again
// and reaches the run's final state, the version the server has.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  banner, bannerStates, checkAccessibility, launch, newPage, screenshotAfterEach, recordBanner, waitForBanner,
} from '../lib/browser.mjs';
import { collected } from '../lib/data.mjs';
import { apiService, cudlyctl } from '../lib/services.mjs';

let browser;
let page;
let api;

screenshotAfterEach(import.meta.url, () => page);

before(async () => {
  await collected();
  // An api-service of this test's own (same database and collector), so
  // stopping it leaves the one the other tests use alone.
  api = await apiService({ name: 'api-reconnect' });
  browser = await launch();
  page = await newPage(browser);
  await recordBanner(page);
});

after(async () => {
  await browser?.close();
  await api?.stop();
});

test('the banner reconnects after api-service restarts mid-run and reaches the final state', async () => {
  await page.goto(`${api.url}/`);
  await waitForBanner(page, 'idle');
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.getByTestId('refresh-result').getByText('Started a new collection').waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="freshness"] [role="progressbar"]').length > 0);
  const stoppedAt = Date.now();
  await api.stop();

  await waitForBanner(page, 'reconnecting', 15_000);
  await banner(page).getByText('Reconnecting…').waitFor();
  await checkAccessibility(page, 'recommendations-reconnecting');
  const [during] = await cudlyctl(['freshness']);
  await sleep(1500);
  await api.start();
  const restartedAt = Date.now();

  await page.waitForFunction(
    () => {
      const el = document.querySelector('[data-testid="freshness"]');
      return el?.dataset.state === 'idle' && /Last run succeeded/.test(el.textContent);
    },
    null, { timeout: 60_000, polling: 100 },
  );
  const [freshness] = await cudlyctl(['freshness']);
  assert.equal(freshness.collecting, false);
  assert.equal(freshness.collection.outcome, 'OUTCOME_SUCCEEDED');
  const states = (await bannerStates(page)).filter((s) => s.version && s.at >= stoppedAt - 2000);
  const describe = JSON.stringify(states.map((s) => [Math.round(s.at - stoppedAt), s.state, s.version]));
  const reconnecting = states.findIndex((s) => s.state === 'reconnecting' && s.at >= stoppedAt);
  assert.ok(reconnecting > 0 && states[reconnecting - 1].state === 'collecting', `collecting, then reconnecting: ${describe}`);
  assert.ok(states[reconnecting].at < restartedAt, `reconnecting shown while api-service was down: ${describe}`);
  const final = states.at(-1);
  assert.equal(final.state, 'idle', describe);
  assert.equal(final.version, freshness.version, `the banner ends on the server's version: ${describe}`);
  assert.ok(final.at >= restartedAt, describe);
  // The run went on while api-service was down (the collector runs it).
  assert.equal(during.collecting, true, 'the run was still going when api-service stopped');
  assert.deepEqual(page.pageErrors, []);
});
