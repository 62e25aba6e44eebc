// Authentication on: the console signs in through a local OpenID provider
// (authorization code + PKCE, JWT access tokens for the API). A viewer sees
// no accounts page; an admin creates and deletes an account; an expired
// access token leads to a new sign-in and a working page, not a broken one.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { banner, checkAccessibility, dataRows, launch, newPage, screenshotAfterEach, tableRows, waitForBanner } from '../lib/browser.mjs';
import { collected } from '../lib/data.mjs';
import { CLIENT_ID, startProvider } from '../lib/oidc.mjs';
import { signIn } from '../lib/oidc-flow.mjs';
import { apiService, cudlyctl, freePort } from '../lib/services.mjs';

let provider;
let api;
let browser;
let current;

screenshotAfterEach(import.meta.url, () => current);

before(async () => {
  await collected();
  const port = await freePort();
  provider = await startProvider({ consoleOrigin: `http://127.0.0.1:${port}` });
  api = await apiService({
    name: 'api-auth',
    port,
    env: {
      CUDLY_AUTH_DISABLED: undefined,
      CUDLY_JWT_ISSUER: provider.issuer,
      CUDLY_JWT_AUDIENCE: provider.resource,
      // Expiry means expiry here: the test waits out the token's lifetime.
      CUDLY_JWT_LEEWAY: '0s',
      CUDLY_CONSOLE_OIDC_CLIENT_ID: CLIENT_ID,
      CUDLY_CONSOLE_OIDC_RESOURCE: provider.resource,
    },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await api?.stop();
  await provider?.close();
});

/** A token for calls the test makes itself, from the same provider. */
const tokenFor = async (user) => (await signIn({
  issuer: provider.issuer, clientId: CLIENT_ID, redirectUri: `${api.url}/auth/callback`, resource: provider.resource, user,
})).access_token;

/** Opens `path` in a fresh browser context and signs in as `user` on the provider's form. */
async function signedIn(user, path = '/') {
  const page = await newPage(browser);
  current = page;
  page.tokenRequests = 0;
  page.on('request', (req) => { if (req.url().startsWith(`${provider.issuer}/token`)) page.tokenRequests += 1; });
  await page.goto(`${api.url}${path}`);
  await page.waitForURL((url) => url.origin === provider.issuer);
  await loginForm(page, user);
  await page.waitForURL((url) => url.origin === api.url && `${url.pathname}${url.search}` === path);
  await page.getByText(`Signed in as ${user}`).waitFor();
  return page;
}

async function loginForm(page, user) {
  await page.locator('input[name="login"]').fill(user);
  await page.locator('input[name="password"]').fill('any');
  await page.getByRole('button', { name: 'Sign-in' }).click();
}

const nav = (page) => page.getByRole('navigation', { name: 'Main' });

test('/config.json tells the console to sign in with the provider', async () => {
  const res = await fetch(`${api.url}/config.json`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  const config = await res.json();
  assert.equal(config.auth, 'oidc');
  assert.equal(config.oidc.issuer, provider.issuer);
  assert.equal(config.oidc.clientId, CLIENT_ID);
  assert.equal(config.oidc.resource, provider.resource);
});

test('a viewer signs in, sees recommendations but no Accounts link, and /accounts says why', async () => {
  const page = await signedIn('viewer');
  await dataRows(page, 'Recommendations').first().waitFor();
  await waitForBanner(page, 'idle');
  await nav(page).getByRole('link', { name: 'Runs' }).waitFor();
  // The Accounts link depends on ListAccounts, answered by now for the
  // table's calls; give it a moment more before judging its absence.
  await sleep(1000);
  assert.equal(await nav(page).getByRole('link', { name: 'Accounts' }).count(), 0, 'no Accounts link for a viewer');
  assert.ok(await page.getByRole('button', { name: 'Sign out' }).isVisible());
  await checkAccessibility(page, 'signed-in-viewer');

  await page.goto(`${api.url}/accounts`);
  await page.getByText('You need the accounts:admin permission').waitFor();
  assert.equal(await page.getByRole('table', { name: 'Accounts' }).count(), 0);
  await checkAccessibility(page, 'accounts-viewer-denied');
  assert.deepEqual(page.pageErrors, []);
});

test('an admin creates an AWS account and deletes it through the confirmation dialog', async () => {
  const page = await signedIn('admin');
  await nav(page).getByRole('link', { name: 'Accounts' }).click();
  await page.waitForURL((url) => url.pathname === '/accounts');
  await dataRows(page, 'Accounts').first().waitFor();
  const adminToken = await tokenFor('admin');

  // Cancel on a seeded account: the dialog counts its recommendations, and
  // nothing is deleted.
  const seeded = '100000000001';
  const [{ recommendations: seededRecs, summary }] = await cudlyctl(['list', '--account', seeded, '--limit', '1'], { api: api.url, token: adminToken });
  assert.ok(seededRecs.length > 0);
  await page.getByRole('button', { name: `Delete ${seeded}` }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText(`Deleting ${seeded} removes ${summary.count} recommendations`).waitFor();
  await checkAccessibility(page, 'accounts-delete-dialog');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.ok((await tableRows(page, 'Accounts')).some((r) => r.includes(seeded)), 'cancel keeps the account');

  const id = String(randomInt(200_000_000_000, 999_999_999_999));
  const add = page.getByRole('form', { name: 'Add account' });
  await add.getByLabel('Provider').selectOption({ label: 'AWS' });
  await add.getByLabel('Account id').fill(id);
  await add.getByLabel('Name').fill('Browser test account');
  await add.getByRole('button', { name: 'Add account' }).click();
  await page.getByRole('button', { name: `Delete ${id}` }).waitFor();
  const [created] = await cudlyctl(['accounts', 'get', '--provider', 'aws', '--external-id', id], { api: api.url, token: adminToken });
  assert.equal(created.displayName ?? created.account?.displayName, 'Browser test account');
  await checkAccessibility(page, 'accounts-admin');

  await page.getByRole('button', { name: `Delete ${id}` }).click();
  await dialog.getByText(`Deleting ${id} removes 0 recommendations`).waitFor();
  await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
  await page.getByRole('button', { name: `Delete ${id}` }).waitFor({ state: 'detached' });
  await assert.rejects(
    cudlyctl(['accounts', 'get', '--provider', 'aws', '--external-id', id], { api: api.url, token: adminToken }),
    /NOT_FOUND/,
  );
  assert.deepEqual(page.pageErrors, []);
});

test('an expired access token leads to a new sign-in and the page works again', async () => {
  const ttl = 8;
  provider.setAccessTokenTTL(ttl);
  const path = '/?provider=gcp';
  const page = await signedIn('viewer', path);
  // Tokens issued from now on live long again: one expiry is what is tested.
  provider.setAccessTokenTTL(300);
  await dataRows(page, 'Recommendations').first().waitFor();
  const signedInAt = Date.now();
  const tokensBefore = page.tokenRequests;
  await sleep(ttl * 1000 + 1500);

  // An action after expiry: the console signs in again (the provider's
  // session may still be alive, then no form shows) and comes back here.
  // (If the console already went to sign in on its own, there is nothing to click.)
  if (page.url().startsWith(api.url)) {
    await page.getByRole('button', { name: 'Refresh' }).click({ timeout: 3000 }).catch(() => {});
  }
  const until = Date.now() + 30_000;
  while (Date.now() < until && page.tokenRequests === tokensBefore) {
    if (page.url().startsWith(provider.issuer) && await page.locator('input[name="login"]').count()) await loginForm(page, 'viewer');
    await sleep(200);
  }
  assert.ok(page.tokenRequests > tokensBefore, 'a new token was fetched after the old one expired');
  await page.waitForURL((url) => url.origin === api.url && `${url.pathname}${url.search}` === path, { timeout: 20_000 });
  await page.getByText('Signed in as viewer').waitFor();
  await dataRows(page, 'Recommendations').first().waitFor();
  await waitForBanner(page, ['idle', 'collecting']);
  // Working again: Refresh answers instead of failing.
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.getByTestId('refresh-result').getByText(/Started a new collection|Joined the collection already running/).waitFor();
  assert.ok(Date.now() - signedInAt > ttl * 1000);
  assert.notEqual(await banner(page).getAttribute('data-state'), 'signing-in');
  assert.deepEqual(page.pageErrors, []);
});
