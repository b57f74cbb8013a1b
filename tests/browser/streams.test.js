// The demo page's analytics panel in a real browser: with `--demo`, the chapter's three data
// streams reach the page over its own connection and uPlot draws them; the charts' data moves
// (more points, a later last timestamp) as the server feeds the streams, and the page requested
// nothing from outside the server. Headless Chromium via playwright-core, the real binary.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';

import { startServer } from './server.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOTS = process.env.HERALD_SCREENSHOTS;
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('demo analytics (data streams)', () => {
  let server;
  let browser;
  let page;
  const errors = [];
  const foreign = [];

  before(async () => {
    server = await startServer({ extraArgs: ['--demo'] });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    page.on('request', (request) => {
      if (!request.url().startsWith(server.url) && !request.url().startsWith('ws://127.0.0.1')
          && !request.url().startsWith('data:')) foreign.push(request.url());
    });
    await page.goto(`${server.url}/`);
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
  });

  const chart = (id) => page.evaluate((id) => window.heraldDashboard.data(id), id);

  it('draws the three streams with uPlot, and their data moves', async () => {
    await page.locator('[data-testid="analytics-status"][data-state="live"]').waitFor();
    assert.equal(await page.evaluate(() => typeof window.uPlot), 'function', 'uPlot is bundled');
    // uPlot drew a canvas for each stream.
    for (const id of ['visitors', 'sales', 'performance']) {
      await page.locator(`[data-testid="chart-${id}"] canvas`).waitFor();
    }
    // Performance gets a point every second: wait for two, then for the data to move on.
    await page.waitForFunction(() => window.heraldDashboard.data('performance').xs.length >= 2);
    const before = await chart('performance');
    await page.waitForFunction(
      (last) => {
        const { xs } = window.heraldDashboard.data('performance');
        return xs[xs.length - 1] > last;
      },
      before.xs[before.xs.length - 1],
    );
    const later = await chart('performance');
    assert.ok(later.xs.length > before.xs.length, `${before.xs.length} -> ${later.xs.length} points`);
    assert.ok(later.ys.every((y) => typeof y === 'number' && y >= 50 && y <= 250), 'response times as generated');
    // The metrics follow the latest point.
    assert.match(await page.locator('[data-testid="response-time"]').innerText(), /^\d+ms$/);
    await page.waitForFunction(() => window.heraldDashboard.data('visitors').xs.length >= 1);
    assert.match(await page.locator('[data-testid="current-visitors"]').innerText(), /^\d+$/);
    if (SCREENSHOTS) await page.screenshot({ path: `${SCREENSHOTS}/analytics.png`, fullPage: true });
  });

  it('loaded nothing from outside the server and raised no errors', () => {
    assert.deepEqual(foreign, []);
    assert.deepEqual(errors, []);
  });
});
