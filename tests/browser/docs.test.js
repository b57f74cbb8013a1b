// The demo's shared document panel in a real browser: two pages (two browser contexts) open the
// same document and type into it at the same time, with emoji, combining marks and CJK; both
// end with the same text, which holds everything either typed, and a third page opening the
// document later gets that text from the server. Headless Chromium from the system through
// playwright-core, against the real server binary.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';

import { startServer } from './server.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT = { timeout: 15_000 };
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('demo shared document', () => {
  let server;
  let browser;
  const pageErrors = [];

  async function openDoc(label, id) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT.timeout);
    page.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(`${label} console: ${msg.text()}`);
    });
    await page.goto(`${server.url}/`);
    await page.locator('#ws-status[data-state="connected"]').waitFor();
    await page.fill('#doc-id', id);
    await page.click('#doc-open');
    await page.locator('#doc-status[data-state="open"]').waitFor();
    return page;
  }

  before(async () => {
    server = await startServer();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
  });

  it('two pages typing at once converge', async () => {
    const id = `browser-${Date.now()}`;
    const alice = await openDoc('alice', id);
    const bob = await openDoc('bob', id);
    await alice.locator('#doc-people', { hasText: '1 other here' }).waitFor();

    const aliceTypes = 'Hello 👍 wörld! ';
    const bobTypes = '漢字 e\u0301 ש 🎉 ';
    await alice.click('#doc-text');
    await bob.click('#doc-text');
    // Both type at once, key by key, each at its own caret.
    await Promise.all([
      alice.keyboard.type(aliceTypes, { delay: 15 }),
      bob.keyboard.type(bobTypes, { delay: 15 }),
    ]);
    // Quiescence, read through the protocol: nothing left in flight on either page (no more
    // operations can be made), then both at the highest version either has seen.
    const synced = () => window.heraldDemo.document.synchronised;
    await Promise.all([alice, bob].map((p) => p.waitForFunction(synced)));
    const versions = await Promise.all([alice, bob].map((p) => p.evaluate(() => window.heraldDemo.document.version)));
    const last = Math.max(...versions);
    const at = (v) => window.heraldDemo.document.synchronised && window.heraldDemo.document.version === v;
    await Promise.all([alice, bob].map((p) => p.waitForFunction(at, last)));
    const read = () => ({ value: document.getElementById('doc-text').value, text: window.heraldDemo.document.text });
    const [state, other] = await Promise.all([alice, bob].map((p) => p.evaluate(read)));
    assert.equal(other.value, state.value, 'both pages show the same text');
    assert.equal(state.value, state.text, 'the textarea shows the document');
    const points = (s) => Array.from(s).sort().join('');
    assert.equal(points(state.value), points(aliceTypes + bobTypes), 'every typed code point is there once');

    // A page opening it afterwards gets the same text from the server.
    const carol = await openDoc('carol', id);
    assert.equal(await carol.inputValue('#doc-text'), state.value);
    assert.deepEqual(pageErrors, []);
  });
});
