// Debian's Chromium driven by playwright-core (no browser download), axe-core
// injected into pages, screenshots kept as artifacts, and a recorder of the
// freshness banner's states as the page sees them.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { afterEach } from 'node:test';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export const CHROMIUM = process.env.CUDLY_E2E_CHROMIUM || '/usr/bin/chromium';
// playwright-core gives every launch a fresh temporary --user-data-dir of its own.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 });
}

/** A fresh context (own cookies and storage) and page with short default timeouts. */
export async function newPage(browser, { viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.pageErrors = errors;
  return page;
}

const artifactsDir = () => {
  const dir = process.env.CUDLY_E2E_ARTIFACTS || join(process.cwd(), 'artifacts');
  mkdirSync(dir, { recursive: true });
  return dir;
};

export async function screenshot(page, name, { fullPage = true } = {}) {
  const path = join(artifactsDir(), `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}

/**
 * After each test of the calling file, a screenshot of the page it ended on
 * (`end-<file>-<test>.png`): on a failure, what the browser showed.
 */
export function screenshotAfterEach(file, currentPage) {
  const stem = basename(file).replace(/\.test\.mjs$/, '');
  afterEach(async (t) => {
    const page = currentPage();
    if (!page || page.isClosed()) return;
    const slug = t.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
    await screenshot(page, `end-${stem}-${slug}`, { fullPage: false }).catch(() => {});
  });
}

/**
 * Runs axe-core on the page and fails on serious or critical violations,
 * naming each rule and the elements it found. Saves a screenshot under
 * `name` first, so every page checked is also kept as an artifact.
 */
export async function checkAccessibility(page, name) {
  await screenshot(page, name);
  // Evaluated through the DevTools protocol, which the console's
  // Content-Security-Policy (no inline scripts) does not block; the page's
  // own policy stays on, so the tests see what a browser enforces.
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
  });
  assert.deepEqual(violations, [], `axe on ${name}: ${violations.map((v) => `${v.impact} ${v.id} (${v.help}) at ${v.targets.join(', ')}`).join('; ')}`);
}

/**
 * Records every distinct state of the freshness banner from the document's
 * start, with the time it showed (epoch ms): data-state, data-version, text
 * and each progress bar's value. Read it back with `bannerStates(page)`.
 */
export async function recordBanner(page) {
  await page.addInitScript(() => {
    window.__banner = [];
    let last = '';
    const snap = () => {
      const el = document.querySelector('[data-testid="freshness"]');
      if (!el) return;
      const bars = [...el.querySelectorAll('[role="progressbar"]')].map((b) => ({
        label: b.getAttribute('aria-label'),
        now: Number(b.getAttribute('aria-valuenow')),
        max: Number(b.getAttribute('aria-valuemax')),
      }));
      const state = { state: el.dataset.state, version: el.dataset.version, bars, text: el.textContent.trim().replace(/\s+/g, ' ') };
      const key = JSON.stringify([state.state, state.version, bars]);
      if (key === last) return;
      last = key;
      window.__banner.push({ at: performance.timeOrigin + performance.now(), ...state });
    };
    new MutationObserver(snap).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  });
}

export const bannerStates = (page) => page.evaluate(() => window.__banner ?? []);

export const banner = (page) => page.getByTestId('freshness');

/** Waits until the banner's data-state is one of `states`. */
export async function waitForBanner(page, states, timeout = 30_000) {
  const wanted = [].concat(states);
  await page.waitForFunction(
    (w) => w.includes(document.querySelector('[data-testid="freshness"]')?.dataset.state),
    wanted, { timeout, polling: 50 },
  );
}

// Body rows with data: at least two cells (a "Loading…" or "nothing here"
// placeholder row spans the table in one cell).
const DATA_ROW = 'tbody tr:has(> :nth-child(2))';

/** The data rows of the table captioned `caption`. */
export const dataRows = (page, caption) => page.getByRole('table', { name: caption }).locator(DATA_ROW);

/** The texts of the data rows of the table captioned `caption`. */
export async function tableRows(page, caption) {
  return dataRows(page, caption).allInnerTexts();
}
