// Capability `streams` through the client's streams module, against the real `herald serve`:
// a snapshot, live points and window results, a network cut recovered without a gap, a resume
// that cannot be honoured (a fresh snapshot), conflation, and refusals.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';

import { HeraldClient, subscribeStream } from '../dist/index.js';
import { next, post, record, startHerald, startProxy, until } from './helpers.mjs';

describe('data streams', () => {
  let server;
  const clients = [];
  const connect = async (url = server.url) => {
    const c = new HeraldClient(url, { WebSocket, user: 'charts', minReconnectDelay: 50, maxReconnectDelay: 200 });
    clients.push(c);
    const ready = next(c, 'connected');
    c.connect();
    await ready;
    return c;
  };
  const points = (stream, body) => post(server.url, `/streams/${stream}/points`, body);
  const create = async (spec) => {
    const response = await fetch(new URL('/streams', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(spec),
    });
    assert.ok(response.status === 201 || response.status === 200, `POST /streams: ${response.status}`);
  };

  before(async () => {
    server = await startHerald();
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
  });

  it('gets a downsampled snapshot, then live points and window results with offsets', async () => {
    await create({ id: 'ts-live', maxDataPoints: 100, windowMs: 100 });
    await points('ts-live', { points: Array.from({ length: 50 }, (_, i) => ({ timestamp: i * 10, value: i })) });
    const c = await connect();
    const stream = subscribeStream(c, 'ts-live', { maxPoints: 10 });
    const snap = await next(stream, 'snapshot');
    assert.equal(snap.points.length, 10);
    assert.equal(snap.points[0].timestamp, 0);
    assert.equal(snap.points.at(-1).timestamp, 490);
    assert.equal(snap.windows.length, 4);
    assert.equal(stream.position.offset, 54);
    const windows = record(stream, 'window');
    const live = next(stream, 'point');
    await points('ts-live', { timestamp: 500, value: 7 });
    const point = await live;
    assert.deepEqual([point.offset, point.value], [55, 7]);
    await until(stream, 'window', () => windows.length === 1);
    assert.equal(windows[0].window.start, 400);
    assert.equal(windows[0].window.count, 10);
    assert.equal(stream.position.offset, 56);
  });

  it('recovers what it missed during a network cut, without a gap', async () => {
    await create({ id: 'ts-cut', maxDataPoints: 100 });
    const proxy = await startProxy(new URL(server.url).host);
    const c = await connect(proxy.url);
    const stream = subscribeStream(c, 'ts-cut');
    await next(stream, 'snapshot');
    const got = record(stream, 'point');
    await points('ts-cut', { value: 1 });
    await until(stream, 'point', () => got.length === 1);
    const lost = next(c, 'connecting');
    proxy.block();
    proxy.cut();
    await lost;
    await points('ts-cut', { points: [{ value: 2 }, { value: 3 }] });
    const back = next(stream, 'snapshot', () => true, 15_000);
    proxy.unblock();
    const resumed = await back;
    assert.equal(resumed.recovered, true);
    await until(stream, 'point', () => got.length === 3);
    assert.deepEqual(got.map((p) => [p.offset, p.value]), [[1, 1], [2, 2], [3, 3]]);
    assert.deepEqual(stream.points.map((p) => p.value), [1, 2, 3]);
    await proxy.close();
  });

  it('takes a fresh snapshot when a resume cannot be honoured (all or nothing)', async () => {
    await create({ id: 'ts-trim', maxDataPoints: 2 });
    const proxy = await startProxy(new URL(server.url).host);
    const c = await connect(proxy.url);
    const stream = subscribeStream(c, 'ts-trim');
    await next(stream, 'snapshot');
    const lost = next(c, 'connecting');
    proxy.block();
    proxy.cut();
    await lost;
    // The log keeps maxDataPoints plus 100: 150 points push the position out of it.
    await points('ts-trim', { points: Array.from({ length: 150 }, (_, i) => ({ value: i })) });
    const back = next(stream, 'snapshot', () => true, 15_000);
    proxy.unblock();
    const fresh = await back;
    assert.equal(fresh.recovered, false);
    assert.deepEqual(stream.points.map((p) => p.value), [148, 149]);
    assert.equal(stream.position.offset, 150);
    await proxy.close();
  });

  it('conflates for a subscriber with a maximum rate, every point accounted for', async () => {
    await create({ id: 'ts-fast', maxDataPoints: 1000 });
    const c = await connect();
    const stream = subscribeStream(c, 'ts-fast', { maxRate: 2 });
    await next(stream, 'snapshot');
    const got = record(stream, 'point');
    await points('ts-fast', { points: Array.from({ length: 500 }, (_, i) => ({ value: i })) });
    await until(stream, 'point', () => got.at(-1)?.offset === 500, 10_000);
    assert.ok(got.length <= 3, `${got.length} frames at 2/s`);
    assert.equal(got.reduce((n, p) => n + (p.conflated ?? 1), 0), 500);
    assert.equal(got.at(-1).value, 499);
  });

  it('reports a refused subscription and unsubscribes', async () => {
    const c = await connect();
    const missing = subscribeStream(c, 'ts-none');
    const error = await next(missing, 'error');
    assert.equal(error.code, 'stream_not_found');
    await create({ id: 'ts-off', maxDataPoints: 10 });
    const stream = subscribeStream(c, 'ts-off');
    await next(stream, 'snapshot');
    const gone = next(c, 'frame', (f) => f.type === 'stream_unsubscribed');
    stream.unsubscribe();
    await gone;
  });
});
