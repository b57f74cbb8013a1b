// 500 clients lose the server at the same moment (a restart) and come back spread out by the
// full-jitter backoff, every one of them back in its room. The spread is measured and printed;
// the only assertion on it is that the clients did not all come back in one burst.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { WebSocket } from 'ws';

import { HeraldClient } from '../dist/index.js';
import { next, startHerald } from './helpers.mjs';

const CLIENTS = 500;
const ROOMS = 50;

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

describe('reconnect storm', () => {
  const clients = [];
  let server;
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
  });

  it(`spreads ${CLIENTS} reconnects after a restart with jitter, and every client rejoins`, async () => {
    server = await startHerald();
    // Defaults for the backoff (500 ms -> 20 s): this is what users get.
    const joinedOnce = [];
    for (let i = 0; i < CLIENTS; i += 1) {
      const c = new HeraldClient(server.url, { WebSocket, user: `storm-${i}`, pingInterval: 0 });
      clients.push(c);
      c.connect();
      const sub = c.join(`storm-${i % ROOMS}`);
      joinedOnce.push(next(sub, 'joined', () => true, 60_000));
    }
    await Promise.all(joinedOnce);

    const lostAt = new Array(CLIENTS).fill(0);
    const backAt = new Array(CLIENTS).fill(0);
    const rejoined = clients.map((c, i) => {
      c.on('connecting', (e) => {
        if (!lostAt[i]) lostAt[i] = performance.now();
        void e;
      });
      return next(c.subscription, 'joined', () => true, 120_000).then((event) => {
        backAt[i] = performance.now();
        return event;
      });
    });
    const address = server.address;
    await server.stop(); // SIGTERM: every socket gets 1001 at once
    server = await startHerald({ listen: address });
    const upAt = performance.now();
    const events = await Promise.all(rejoined);

    assert.ok(events.every((e) => e.wasRecovering), 'every client resumed with since');
    const sorted = [...backAt].sort((a, b) => a - b);
    const first = sorted[0];
    const rel = sorted.map((t) => t - first);
    const spread = rel.at(-1);
    // The most clients back within any 100 ms window.
    let busiest = 0;
    for (let lo = 0, hi = 0; hi < rel.length; hi += 1) {
      while (rel[hi] - rel[lo] > 100) lo += 1;
      busiest = Math.max(busiest, hi - lo + 1);
    }
    const lossSpread = Math.max(...lostAt) - Math.min(...lostAt);
    const buckets = new Map();
    for (const t of rel) {
      const b = Math.floor(t / 250) * 250;
      buckets.set(b, (buckets.get(b) ?? 0) + 1);
    }
    console.log(`storm: ${CLIENTS} clients lost the server within ${lossSpread.toFixed(0)} ms of each other; ` +
      `back in their rooms over ${spread.toFixed(0)} ms (first ${(first - upAt).toFixed(0)} ms after the ` +
      `new server was listening; p10 ${quantile(rel, 0.1).toFixed(0)}, p50 ${quantile(rel, 0.5).toFixed(0)}, ` +
      `p90 ${quantile(rel, 0.9).toFixed(0)} ms after the first); at most ${busiest} in any 100 ms`);
    console.log(`storm: rejoins per 250 ms: ${[...buckets].map(([b, n]) => `${b}:${n}`).join(' ')}`);
    assert.ok(busiest < CLIENTS / 2,
      `${busiest} of ${CLIENTS} clients came back within one 100 ms window: no jitter?`);
  });
});
