// Filters and paging live in the URL: a filtered view paged forward and back
// shows the server's rows, and reloading its URL shows the same rows with the
// same filters in the form, Previous page included.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkAccessibility, dataRows, launch, newPage, screenshotAfterEach, tableRows } from '../lib/browser.mjs';
import { cudlyctl, need } from '../lib/services.mjs';
import { collected, rowShows } from '../lib/data.mjs';

const API = need('CUDLY_API_URL');
let browser;
let page;
let minSavings;
let expected;

screenshotAfterEach(import.meta.url, () => page);

before(async () => {
  await collected();
  // A threshold that leaves most of AWS's rows: several pages of them.
  const [{ recommendations: aws }] = await cudlyctl(['list', '--provider', 'aws', '--all']);
  const pivot = aws[Math.floor(aws.length * 0.8)].estimatedMonthlySavings;
  minSavings = String(Number(pivot.units));
  [expected] = await cudlyctl(['list', '--provider', 'aws', '--min-savings', minSavings, '--all']);
  browser = await launch();
  page = await newPage(browser);
});

after(async () => {
  await browser?.close();
});

const form = () => page.getByRole('form', { name: 'Filters' });
const firstLast = async () => {
  const rows = await tableRows(page, 'Recommendations');
  return { count: rows.length, first: rows[0], last: rows.at(-1) };
};
/** Clicks a paging button and waits for the rows to be replaced. */
async function turn(name) {
  const before = await firstLast();
  await page.getByRole('button', { name }).click();
  await page.waitForFunction(
    ({ first }) => {
      const row = [...document.querySelectorAll('table')].find((t) => t.caption?.textContent.trim() === 'Recommendations')?.querySelector('tbody tr:has(> :nth-child(2))');
      return row && row.innerText !== first;
    },
    before,
  );
  return firstLast();
}

let pages;

test('filtering by provider and minimum savings shows the server count and puts the filters in the URL', async () => {
  await page.goto(`${API}/`);
  await dataRows(page, 'Recommendations').first().waitFor();
  await form().getByLabel('Provider').selectOption({ label: 'AWS' });
  await form().getByLabel('Minimum savings per month').fill(minSavings);
  await form().getByRole('button', { name: 'Apply' }).click();
  await page.waitForURL((url) => url.searchParams.get('provider') === 'aws' && url.searchParams.get('min_savings') === minSavings);
  await page.waitForFunction((n) => document.querySelector('[data-testid="summary"]')?.getAttribute('data-count') === n, expected.summary.count);
  await page.getByRole('button', { name: 'Previous page' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Previous page' }).isDisabled(), true, 'no previous page on the first page');
  const first = await firstLast();
  assert.ok(Number(expected.summary.count) > first.count * 2, `at least three pages: ${expected.summary.count} rows, ${first.count} a page`);
  assert.ok(rowShows(first.first, expected.recommendations[0]), `first row ${first.first} is the server's first`);
  await checkAccessibility(page, 'recommendations-filtered');
  pages = [first];
});

test('paging forward and back shows the server pages in order', async () => {
  pages.push(await turn('Next page'));
  assert.match(page.url(), /[?&]page=/, 'the page token is in the URL');
  pages.push(await turn('Next page'));
  const size = pages[0].count;
  for (const [i, p] of pages.entries()) {
    assert.equal(p.count, Math.min(size, expected.recommendations.length - i * size), `page ${i + 1} size`);
    assert.ok(rowShows(p.first, expected.recommendations[i * size]), `page ${i + 1} starts where the server's does`);
  }
  const back = await turn('Previous page');
  assert.deepEqual(back, pages[1], 'back to the second page');
});

test('reloading the URL shows the same rows and filters, and Previous page still works', async () => {
  const url = page.url();
  await page.reload();
  await dataRows(page, 'Recommendations').first().waitFor();
  assert.equal(page.url(), url);
  assert.deepEqual(await firstLast(), pages[1], 'same rows after the reload');
  assert.equal(await form().getByLabel('Provider').inputValue(), 'aws');
  assert.equal(Number(await form().getByLabel('Minimum savings per month').inputValue()), Number(minSavings));
  assert.deepEqual(await turn('Previous page'), pages[0], 'previous page after the reload is the first');
  assert.equal(await page.getByRole('button', { name: 'Previous page' }).isDisabled(), true);

  // The same URL in a new browser context (a shared link) shows the same view.
  const other = await newPage(browser);
  await other.goto(url);
  await dataRows(other, 'Recommendations').first().waitFor();
  const rows = await tableRows(other, 'Recommendations');
  assert.deepEqual({ count: rows.length, first: rows[0], last: rows.at(-1) }, pages[1]);
  assert.deepEqual(page.pageErrors, []);
});
