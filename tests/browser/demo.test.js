// The demo page in a real browser: two people in two browser contexts join a room, chat, see
// each other typing, exchange a private message, and receive notifications and updates that a
// backend POSTs over HTTP. Runs headless Chromium from the system (/usr/bin/chromium by default)
// through playwright-core, against the real server binary.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

import { startServer } from './server.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOTS = process.env.HERALD_SCREENSHOTS; // a folder, to keep screenshots of the pages
const WAIT = { timeout: 10_000 };

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('demo page', () => {
  let server;
  let browser;
  let alice;
  let bob;
  const pageErrors = [];

  async function openPage(label) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT.timeout);
    page.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(`${label} console: ${msg.text()}`);
    });
    await page.goto(`${server.url}/`);
    const clientLoaded = await page.evaluate(() => typeof window.Herald === 'object');
    assert.ok(clientLoaded,
      `${label}: the page did not get herald-client.js (the client bundle) from GET /herald-client.js`);
    await page.locator('#ws-status[data-state="connected"]').waitFor();
    return page;
  }

  async function join(page, name, room) {
    await page.fill('#name', name);
    if (room !== undefined) await page.fill('#room', room);
    await page.click('#join');
    await page.locator(`#members li[data-user-id="${name}"]`).waitFor();
  }

  const message = (page, text) => page.locator('#messages .msg', { hasText: text });
  const toast = (page, text) => page.locator('#toasts .toast', { hasText: text });

  async function post(path, body) {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = await response.json();
    assert.equal(response.status, 200, `POST ${path}: ${JSON.stringify(json)}`);
    assert.equal(json.success, true, `POST ${path}: ${JSON.stringify(json)}`);
    return json;
  }

  async function screenshot(page, name) {
    if (SCREENSHOTS) await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
  }

  before(async () => {
    server = await startServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    alice = await openPage('alice');
    bob = await openPage('bob');
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (server) await server.stop();
  });

  it('serves the page with its assets', async () => {
    assert.equal(await alice.title(), 'Herald demo');
    const styled = await alice.evaluate(
      () => getComputedStyle(document.querySelector('.topbar')).display,
    );
    assert.equal(styled, 'flex', 'style.css is applied');
    assert.equal(await alice.inputValue('#room'), 'general', 'the room defaults to general');
    // The page is built on the bundled TypeScript client (herald-client.js), not its own sockets.
    assert.equal(
      await alice.evaluate(() => window.heraldDemo.client instanceof window.Herald.HeraldClient),
      true,
    );
    assert.equal(await alice.evaluate(() => window.heraldDemo.client.transport), 'websocket');
  });

  it('shows both members to both users after they join', async () => {
    await join(alice, 'alice');
    await join(bob, 'bob');
    await alice.locator('#members li[data-user-id="bob"]').waitFor();
    for (const page of [alice, bob]) {
      const ids = await page.locator('#members li').evaluateAll((items) =>
        items.map((li) => li.dataset.userId).sort());
      assert.deepEqual(ids, ['alice', 'bob']);
    }
    assert.match(await alice.textContent('#current-room'), /general/);
  });

  it('shows who is typing, and stops after about two seconds idle', async () => {
    await alice.locator('#message').pressSequentially('hel', { delay: 30 });
    await bob.locator('#typing', { hasText: 'alice is typing' }).waitFor();
    assert.equal(await alice.textContent('#typing'), '', 'no echo to the typist');
    const started = Date.now();
    await bob.waitForFunction(() => document.querySelector('#typing').textContent === '');
    const idle = Date.now() - started;
    assert.ok(idle >= 1000, `typing stopped after ${idle} ms, expected ~2 s of idle`);
    await alice.fill('#message', '');
  });

  it('delivers chat both ways, sender included, with names and times', async () => {
    await alice.locator('#message').pressSequentially('hello bob', { delay: 10 });
    await bob.locator('#typing', { hasText: 'alice is typing' }).waitFor();
    await alice.click('#send');
    for (const page of [alice, bob]) {
      const msg = message(page, 'hello bob');
      await msg.waitFor();
      assert.equal(await msg.locator('.who').textContent(), 'alice');
      assert.notEqual((await msg.locator('.when').textContent()).trim(), '');
    }
    await bob.waitForFunction(() => document.querySelector('#typing').textContent === '');
    assert.equal(await alice.inputValue('#message'), '', 'the composer is cleared');

    await bob.fill('#message', 'hi alice');
    await bob.press('#message', 'Enter');
    await message(alice, 'hi alice').waitFor();
    await message(bob, 'hi alice').waitFor();
    await screenshot(alice, 'chat-alice');
  });

  it('renders only b/i/em/strong from chat text and runs no injected script', async () => {
    const nasty = 'a <b>bold</b> <i>move</i> <img src=x onerror="window.__xss=1">' +
      '<script>window.__xss=2</script><a href="javascript:window.__xss=3">link</a> end';
    await bob.fill('#message', nasty);
    await bob.click('#send');
    const msg = message(alice, 'bold');
    await msg.waitFor();
    assert.equal(await msg.locator('.text b').textContent(), 'bold');
    assert.equal(await msg.locator('.text i').textContent(), 'move');
    assert.equal(await msg.locator('.text img, .text script, .text a, .text [onerror]').count(), 0);
    await sleep(200);
    for (const page of [alice, bob]) {
      assert.equal(await page.evaluate(() => window.__xss), undefined, 'no injected script ran');
    }
  });

  it('sends a private message to a member picked from the list', async () => {
    await alice.click('#members li[data-user-id="bob"]');
    assert.equal(await alice.inputValue('#pm-target'), 'bob');
    await alice.fill('#pm-text', 'just between us');
    await alice.click('#pm-send');
    const received = bob.locator('#messages .msg.private', { hasText: 'just between us' });
    await received.waitFor();
    assert.match(await received.locator('.who').textContent(), /alice/);
    await alice.locator('#messages .msg.private', { hasText: 'just between us' }).waitFor();
    await screenshot(bob, 'private-bob');

    // Bob answers by picking alice from the drop-down instead.
    await bob.selectOption('#pm-target', 'alice');
    await bob.fill('#pm-text', 'got it');
    await bob.press('#pm-text', 'Enter');
    await alice.locator('#messages .msg.private', { hasText: 'got it' }).waitFor();
  });

  it('shows a targeted notification only to its user, once, and an untargeted one to all',
    async () => {
      for (const [page, name] of [[alice, 'alice'], [bob, 'bob']]) {
        await page.locator('#sse-status[data-state="connected"]', { hasText: name }).waitFor();
      }
      const targeted = await post('/notifications',
        { userId: 'bob', message: 'Your order shipped', type: 'success' });
      assert.equal(typeof targeted.notificationId, 'string');
      await toast(bob, 'Your order shipped').waitFor();

      await post('/notifications', { message: 'Maintenance at noon', type: 'warning' });
      await toast(alice, 'Maintenance at noon').waitFor();
      await toast(bob, 'Maintenance at noon').waitFor();
      await screenshot(bob, 'notifications-bob');

      // Bob's notification came over SSE and over the WebSocket; give the later copy a moment.
      await sleep(500);
      assert.equal(await toast(bob, 'Your order shipped').count(), 1, 'shown once');
      assert.equal(await toast(alice, 'Your order shipped').count(), 0, 'not shown to alice');
      assert.equal(
        await bob.locator(`#notifications li[data-id="${targeted.notificationId}"]`).count(), 1);
    });

  it('lists updates posted to /updates', async () => {
    await post('/updates', { resource: 'order', action: 'created', data: { id: 42 } });
    for (const page of [alice, bob]) {
      const item = page.locator('#updates li[data-resource="order"][data-action="created"]');
      await item.waitFor();
      assert.match(await item.textContent(), /"id":42/);
    }
    await screenshot(alice, 'dashboard-alice');
  });

  it('removes a member who leaves', async () => {
    await bob.click('#leave');
    await alice.locator('#members li[data-user-id="bob"]').waitFor({ state: 'detached' });
    await alice.locator('#messages .notice', { hasText: 'bob left' }).waitFor();
    await bob.waitForFunction(() => document.querySelectorAll('#members li').length === 0);
    assert.equal(await bob.isDisabled('#send'), true, 'no chatting outside a room');
  });

  it('raised no errors in the pages', () => {
    assert.deepEqual(pageErrors, []);
  });

  it('reconnects with backoff and rejoins its room after the server restarts', async () => {
    await join(bob, 'bob');
    await alice.locator('#members li[data-user-id="bob"]').waitFor();
    const address = new URL(server.url).host;
    await server.stop();
    for (const page of [alice, bob]) {
      await page.locator('#ws-status[data-state="reconnecting"]').waitFor();
    }
    server = await startServer({ listen: address });
    for (const page of [alice, bob]) {
      await page.locator('#ws-status[data-state="connected"]').waitFor({ timeout: 20_000 });
    }
    // Both pages join again on their own, so each sees the other again.
    await alice.locator('#members li[data-user-id="bob"]').waitFor();
    await bob.locator('#members li[data-user-id="alice"]').waitFor();
    await alice.fill('#message', 'back again');
    await alice.click('#send');
    await message(bob, 'back again').waitFor();
    await bob.locator('#sse-status[data-state="connected"]').waitFor({ timeout: 20_000 });
    await post('/notifications', { userId: 'bob', message: 'after restart', type: 'info' });
    await toast(bob, 'after restart').waitFor();
  });

  it('catches up on what it missed while its connection was down', async () => {
    const missed = bob.locator('#messages .notice', { hasText: 'may have been missed' });
    const missedBefore = await missed.count(); // the restart above lost the history, rightly
    // Take bob's connection away while alice writes, then give it back: the client resumes the
    // room from the last offset it saw.
    await bob.evaluate(() => window.heraldDemo.client.close());
    await bob.locator('#ws-status[data-state="disconnected"]').waitFor();
    await alice.fill('#message', 'sent while bob was away');
    await alice.click('#send');
    await message(alice, 'sent while bob was away').waitFor();
    await bob.evaluate(() => window.heraldDemo.client.connect());
    await bob.locator('#ws-status[data-state="connected"]').waitFor({ timeout: 20_000 });
    await message(bob, 'sent while bob was away').waitFor();
    await sleep(300);
    assert.equal(await message(bob, 'sent while bob was away').count(), 1, 'shown once');
    assert.equal(await missed.count(), missedBefore, 'the server could replay everything');
  });

  it('queues a message written while disconnected and sends it once back in the room', async () => {
    await bob.evaluate(() => window.heraldDemo.client.close());
    await bob.locator('#ws-status[data-state="disconnected"]').waitFor();
    await bob.fill('#message', 'written offline');
    await bob.click('#send');
    await bob.locator('#messages .notice', { hasText: 'Queued' }).waitFor();
    assert.equal(await bob.evaluate(() => window.heraldDemo.client.queued), 1);
    await bob.evaluate(() => window.heraldDemo.client.connect());
    await message(alice, 'written offline').waitFor();
    await message(bob, 'written offline').waitFor();
    assert.equal(await bob.evaluate(() => window.heraldDemo.client.queued), 0);
  });
});
