// The other pages with authentication off: the run history shows what
// ListCollections serves, the Accounts page is in the navigation (every
// caller may do everything), and each passes axe.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkAccessibility, dataRows, launch, newPage, screenshotAfterEach, tableRows } from '../lib/browser.mjs';
import { collected } from '../lib/data.mjs';
import { cudlyctl, need } from '../lib/services.mjs';

const API = need('CUDLY_API_URL');
let browser;
let page;

screenshotAfterEach(import.meta.url, () => page);

before(async () => {
  await collected();
  browser = await launch();
  page = await newPage(browser);
});

after(async () => {
  await browser?.close();
});

const OUTCOME = {
  OUTCOME_SUCCEEDED: /succeeded/i, OUTCOME_PARTIALLY_SUCCEEDED: /partially/i, OUTCOME_FAILED: /failed/i,
  OUTCOME_CANCELLED: /cancelled/i, OUTCOME_ABANDONED: /abandoned/i, OUTCOME_RUNNING: /running/i,
};

test('the Runs page lists the run history with outcomes and counts', async () => {
  await page.goto(`${API}/`);
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link', { name: 'Runs' }).click();
  await page.waitForURL((url) => url.pathname === '/runs');
  await dataRows(page, 'Runs').first().waitFor();
  const [{ collections }] = await cudlyctl(['collections']);
  const rows = await tableRows(page, 'Runs');
  assert.equal(rows.length, collections.length, `rows ${JSON.stringify(rows)}`);
  for (const [i, run] of collections.entries()) {
    assert.match(rows[i], OUTCOME[run.outcome], `row ${i + 1} shows ${run.outcome}: ${rows[i]}`);
    assert.ok(rows[i].includes(Number(run.recommendationCount).toLocaleString('en-US')) || rows[i].includes(run.recommendationCount),
      `row ${i + 1} shows ${run.recommendationCount} recommendations: ${rows[i]}`);
  }
  await checkAccessibility(page, 'runs');
});

test('with authentication off the Accounts page is in the navigation and lists the registry', async () => {
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link', { name: 'Accounts' }).click();
  await page.waitForURL((url) => url.pathname === '/accounts');
  await dataRows(page, 'Accounts').first().waitFor();
  const [{ accounts }] = await cudlyctl(['accounts', 'list']);
  const rows = await tableRows(page, 'Accounts');
  assert.equal(rows.length, accounts.length);
  await checkAccessibility(page, 'accounts');
  assert.deepEqual(page.pageErrors, []);
});

test('an account is disabled and enabled again from its row', async () => {
  const [{ accounts }] = await cudlyctl(['accounts', 'list']);
  const id = accounts.at(-1).externalId;
  const provider = accounts.at(-1).provider.replace('PROVIDER_', '').toLowerCase();
  const enabled = async () => (await cudlyctl(['accounts', 'get', '--provider', provider, '--external-id', id]))[0].enabled;
  assert.equal(await enabled(), true);
  await page.getByRole('button', { name: `Disable ${id}` }).click();
  await page.getByRole('button', { name: `Enable ${id}` }).waitFor();
  assert.equal(await enabled(), false, 'the registry says disabled');
  await page.getByRole('button', { name: `Enable ${id}` }).click();
  await page.getByRole('button', { name: `Disable ${id}` }).waitFor();
  assert.equal(await enabled(), true, 'and enabled again');
  assert.deepEqual(page.pageErrors, []);
});
