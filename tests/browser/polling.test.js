// Issue 17's "done when": a page that cannot open a WebSocket (its `WebSocket` is deleted before
// any script runs) chats, gets presence, private messages and notifications through Herald's
// long polling, exactly like a normal page it talks to. Headless Chromium from the system,
// through playwright-core, against the real server binary.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';

import { startServer } from './server.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT = { timeout: 10_000 };
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'];

describe('a page without WebSocket, through long polling', () => {
  let server;
  let browser;
  let walt; // a normal page
  let polly; // a page whose WebSocket is gone
  const pageErrors = [];

  async function openPage(label, { noWebSocket = false } = {}) {
    const context = await browser.newContext();
    if (noWebSocket) {
      // As a proxy that blocks upgrades (or an old embedded browser) leaves it: no WebSocket.
      await context.addInitScript(() => {
        delete window.WebSocket;
      });
    }
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT.timeout);
    page.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
    await page.goto(`${server.url}/`);
    await page.locator('#ws-status[data-state="connected"]').waitFor();
    // Record what the client itself receives, to tell polled frames from the SSE stream's.
    await page.evaluate(() => {
      window.__got = { notification: [], private: [] };
      const client = window.heraldDemo.client;
      client.on('notification', (n) => window.__got.notification.push(n.message));
      client.on('private_message', (m) => window.__got.private.push(m.text));
    });
    return page;
  }

  async function join(page, name) {
    await page.fill('#name', name);
    await page.click('#join');
    await page.locator(`#members li[data-user-id="${name}"]`).waitFor();
  }

  const message = (page, text) => page.locator('#messages .msg', { hasText: text });

  async function post(path, body) {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200, `POST ${path}: ${await response.text()}`);
  }

  before(async () => {
    server = await startServer();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    walt = await openPage('walt');
    polly = await openPage('polly', { noWebSocket: true });
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
  });

  it('connects over polling where WebSocket is missing, and over WebSocket elsewhere', async () => {
    assert.equal(await polly.evaluate(() => typeof window.WebSocket), 'undefined');
    assert.equal(await polly.evaluate(() => window.heraldDemo.client.transport), 'polling');
    assert.equal(await walt.evaluate(() => window.heraldDemo.client.transport), 'websocket');
  });

  it('sees presence both ways', async () => {
    await join(walt, 'walt');
    await join(polly, 'polly');
    await walt.locator('#members li[data-user-id="polly"]').waitFor();
    await polly.locator('#members li[data-user-id="walt"]').waitFor();
  });

  it('chats both ways', async () => {
    await polly.fill('#message', 'hello from polling');
    await polly.click('#send');
    await message(walt, 'hello from polling').waitFor();
    await message(polly, 'hello from polling').waitFor();
    await walt.fill('#message', 'hello from a socket');
    await walt.click('#send');
    await message(polly, 'hello from a socket').waitFor();
  });

  it('exchanges private messages', async () => {
    await walt.click('#members li[data-user-id="polly"]');
    await walt.fill('#pm-text', 'psst polly');
    await walt.click('#pm-send');
    await polly.waitForFunction(() => window.__got.private.includes('psst polly'));
    await polly.locator('#messages .msg.private', { hasText: 'psst polly' }).waitFor();
    await polly.click('#members li[data-user-id="walt"]');
    await polly.fill('#pm-text', 'psst walt');
    await polly.click('#pm-send');
    await walt.locator('#messages .msg.private', { hasText: 'psst walt' }).waitFor();
  });

  it('gets notifications through the polling client', async () => {
    await post('/notifications', { userId: 'polly', message: 'for polly', type: 'info' });
    await polly.waitForFunction(() => window.__got.notification.includes('for polly'));
    await polly.locator('#toasts .toast', { hasText: 'for polly' }).waitFor();
  });

  it('sees the polling page leave', async () => {
    await polly.click('#leave');
    await walt.locator('#members li[data-user-id="polly"]').waitFor({ state: 'detached' });
  });

  it('raised no errors in the pages', () => {
    assert.deepEqual(pageErrors, []);
  });
});
