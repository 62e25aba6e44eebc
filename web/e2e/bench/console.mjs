// The console's four figures (issue targets, printed, not asserted): bundle
// size gzipped, first render with data, rendering a page of rows, and the
// requests a console left open makes while idle. Run by scripts/bench-console,
// which starts the services and collects data first.
//
//   node bench/console.mjs --dist DIR [--runs N] [--idle-minutes M]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { launch, newPage } from '../lib/browser.mjs';
import { need } from '../lib/services.mjs';

const { values: opts } = parseArgs({
  options: {
    dist: { type: 'string' },
    runs: { type: 'string', default: '11' },
    'idle-minutes': { type: 'string', default: '10' },
  },
});
const API = need('CUDLY_API_URL');
const runs = Math.max(1, Number(opts.runs));
const idleMinutes = Number(opts['idle-minutes']);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const ms = (x) => `${x.toFixed(1)} ms`;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

function bundle(dir) {
  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      // Precompressed copies and source maps are not what a browser loads.
      else if (!/\.(gz|br|map)$/.test(name)) files.push(path);
    }
  };
  walk(dir);
  const sized = files.map((path) => ({ path: relative(dir, path), gz: gzipSync(readFileSync(path), { level: 9 }).length }));
  const total = sized.reduce((a, f) => a + f.gz, 0);
  return { total, files: sized.sort((a, b) => b.gz - a.gz) };
}

// Marks, in the page, when the Recommendations table first has body rows
// (ms since navigation start) and every later change of its first row.
const TABLE_WATCH = () => {
  window.__rows = { first: null, changes: [] };
  let lastFirst = null;
  const check = () => {
    const table = [...document.querySelectorAll('table')].find((t) => t.caption?.textContent.trim() === 'Recommendations');
    // A data row has a cell per column; the "Loading…" placeholder has one.
    const row = table?.querySelector('tbody tr:has(> :nth-child(2))');
    if (!row) return;
    const text = row.textContent;
    if (window.__rows.first === null) window.__rows.first = performance.now();
    if (text !== lastFirst) {
      lastFirst = text;
      window.__rows.changes.push({ at: performance.now(), rows: table.querySelectorAll('tbody tr:has(> :nth-child(2))').length });
    }
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true });
  // When the browser dispatched the last click: playwright's own checks
  // before it clicks (the element stable over two frames) are not the page's.
  document.addEventListener('click', () => { window.__clickedAt = performance.now(); }, true);
};

async function firstRender(browser) {
  const times = [];
  for (let i = 0; i < runs; i += 1) {
    const page = await newPage(browser);
    await page.addInitScript(TABLE_WATCH);
    await page.goto(`${API}/`);
    await page.waitForFunction(() => window.__rows?.first !== null, null, { timeout: 15_000 });
    times.push(await page.evaluate(() => window.__rows.first));
    await page.context().close();
  }
  return times;
}

async function pageRender(browser) {
  const page = await newPage(browser);
  await page.addInitScript(TABLE_WATCH);
  await page.goto(`${API}/`);
  await page.waitForFunction(() => window.__rows?.first !== null, null, { timeout: 15_000 });
  const clickToRows = [];
  const responseToRows = [];
  let rows = 0;
  for (let i = 0; i < runs; i += 1) {
    const name = i < Math.ceil(runs / 2) ? 'Next page' : 'Previous page';
    const button = page.getByRole('button', { name });
    if (await button.isDisabled()) break;
    const before = await page.evaluate(() => window.__rows.changes.length);
    await button.click();
    await page.waitForFunction((n) => window.__rows.changes.length > n, before, { timeout: 15_000 });
    const clickedAt = await page.evaluate(() => window.__clickedAt);
    // Rows replaced; the response they came from is the last
    // ListRecommendations answer that ended after the click and before them.
    const done = await page.evaluate((since) => {
      const { at: replaced, rows: count } = window.__rows.changes.at(-1);
      const ends = performance.getEntriesByType('resource')
        .filter((e) => e.name.includes('ListRecommendations') && e.startTime >= since && e.responseEnd <= replaced)
        .map((e) => e.responseEnd);
      return { replaced, rows: count, response: ends.length ? Math.max(...ends) : undefined };
    }, clickedAt);
    clickToRows.push(done.replaced - clickedAt);
    if (done.response !== undefined) responseToRows.push(done.replaced - done.response);
    rows = Math.max(rows, done.rows);
  }
  await page.context().close();
  return { clickToRows, responseToRows, rows };
}

async function idle(browser) {
  const page = await newPage(browser);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const streams = new Map();
  let streamChunks = 0;
  cdp.on('Network.requestWillBeSent', (e) => { if (e.request.url.includes('WatchFreshness')) streams.set(e.requestId, e.request.url); });
  cdp.on('Network.dataReceived', (e) => { if (streams.has(e.requestId)) streamChunks += 1; });
  const atLoad = [];
  const during = [];
  let counting = false;
  page.on('request', (req) => (counting ? during : atLoad).push(`${req.method()} ${new URL(req.url()).pathname}`));
  const finished = [];
  page.on('requestfinished', (req) => { if (counting) finished.push(new URL(req.url()).pathname); });
  page.on('requestfailed', (req) => { if (counting) finished.push(`${new URL(req.url()).pathname} (failed)`); });

  await page.goto(`${API}/`);
  await page.getByRole('table', { name: 'Recommendations' }).locator('tbody tr').first().waitFor();
  await page.waitForTimeout(2000);
  counting = true;
  const chunksBefore = streamChunks;
  await page.waitForTimeout(idleMinutes * 60_000);
  counting = false;
  const streamOpen = !finished.some((p) => p.includes('WatchFreshness'));
  await page.context().close();
  return { atLoad, during, streamOpen, heartbeats: streamChunks - chunksBefore, streams: streams.size };
}

const out = [];
const say = (line) => { out.push(line); console.log(line); };

if (opts.dist) {
  const b = bundle(opts.dist);
  say(`bundle: ${kb(b.total)} gzipped in all (target ≤ 300 KB); largest: ${b.files.slice(0, 3).map((f) => `${f.path} ${kb(f.gz)}`).join(', ')}`);
}
const browser = await launch();
try {
  const first = await firstRender(browser);
  say(`first render with data: median ${ms(median(first))} from navigation start to table rows (target ≤ 1 s; ${first.length} fresh page loads, min ${ms(Math.min(...first))}, max ${ms(Math.max(...first))})`);
  const paging = await pageRender(browser);
  if (paging.clickToRows.length) {
    say(`page of ${paging.rows} rows: median ${ms(median(paging.clickToRows))} from the click event to rows replaced, fetch included (target ≤ 50 ms for 100 rows; ${paging.clickToRows.length} page turns)`
      + (paging.responseToRows.length ? `; ${ms(median(paging.responseToRows))} of it after the response arrived` : ''));
  } else {
    say('page render: no second page to turn to');
  }
  if (idleMinutes > 0) {
    const r = await idle(browser);
    const total = r.during.length + (r.streamOpen ? 1 : 0);
    say(`idle ${idleMinutes} min: ${total} request(s): ${r.streamOpen ? 'the WatchFreshness stream opened at load, still open' : 'the stream did not stay open'}, `
      + `${r.heartbeats} chunks (heartbeats) received inside it; ${r.during.length} other request(s)${r.during.length ? `: ${[...new Set(r.during)].join(', ')}` : ''}`
      + ` — CUDly's frontend polled ${Math.round(idleMinutes * 12)} times in that time (every 5 s)`);
    const counts = new Map();
    for (const req of r.atLoad) counts.set(req, (counts.get(req) ?? 0) + 1);
    say(`  (at load: ${r.atLoad.length} requests: ${[...counts].map(([req, n]) => (n > 1 ? `${req} ×${n}` : req)).join(', ')})`);
  }
} finally {
  await browser.close();
}
