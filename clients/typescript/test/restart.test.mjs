// The server killed (SIGKILL) and restarted mid-stream. With Redis behind it the room's stream
// survives, and the client must come back with every message, counted by offset, each once.
// In memory it cannot survive, and the client must say so: recovered: false, a new epoch.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { WebSocket } from 'ws';

import { HeraldClient } from '../dist/index.js';
import { next, record, redisUp, startHerald, until } from './helpers.mjs';

const fast = { WebSocket, minReconnectDelay: 100, maxReconnectDelay: 1_000 };

describe('server killed and restarted mid-stream', () => {
  const clients = [];
  const servers = [];
  const client = (user, options = {}) => {
    const real = new HeraldClient(options.url, { ...fast, user, ...options });
    clients.push(real);
    return real;
  };
  after(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.stop().catch(() => {});
  });

  it('in memory: the client reports recovered: false and counts from the new epoch', async () => {
    let server = await startHerald();
    servers.push(server);
    const c = client('solo', { url: server.url });
    c.connect();
    const room = c.join('memory');
    const first = await next(room, 'joined');
    const chats = record(room, 'chat');
    c.chat('before the crash');
    await until(room, 'chat', () => chats.length === 1);
    assert.equal(room.position.offset, 1);

    const rejoined = next(room, 'joined', () => true, 20_000);
    await server.kill();
    server = await startHerald({ listen: server.address });
    servers.push(server);
    const event = await rejoined;
    assert.equal(event.wasRecovering, true);
    assert.equal(event.recovered, false, 'a restarted memory node cannot replay');
    assert.notEqual(event.position.epoch, first.position.epoch, 'a new epoch');
    assert.equal(event.position.offset, 0);
    c.chat('after the crash');
    await until(room, 'chat', () => chats.length === 2);
    assert.deepEqual(chats.map((m) => [m.offset, m.text]), [[1, 'before the crash'], [1, 'after the crash']],
      'offset 1 of the new epoch is not mistaken for a repeat');
  });

  it('with Redis: every message of the stream arrives once, by offset, across a kill -9', async (t) => {
    if (!(await redisUp())) {
      const why = 'Redis is not answering on 127.0.0.1:6379';
      if (process.env.CI) assert.fail(`${why}; CI needs it`);
      console.error(`\n!!! SKIPPED: ${why}; this test did not run\n`);
      t.skip(why);
      return;
    }
    const args = [
      '--broker', 'redis://127.0.0.1:6379',
      '--redis-prefix', `tsclient-restart-${process.pid}-${Date.now()}`,
      // The publisher's offline queue is flushed before the reader may be back: keep it all.
      '--history-size', '2000',
    ];
    // One writer sends 200 chats a second here, over the default per-connection rate (50/s).
    const env = { HERALD_MESSAGE_RATE: '0' };
    let server = await startHerald({ args, env });
    servers.push(server);
    const reader = client('reader', { url: server.url });
    const writer = client('writer', { url: server.url, offlineQueueSize: 5_000 });
    reader.connect();
    writer.connect();
    const readerRoom = reader.join('stream');
    const readerJoins = record(readerRoom, 'joined');
    await next(readerRoom, 'joined');
    const writerRoom = writer.join('stream');
    await next(writerRoom, 'joined');
    const got = record(readerRoom, 'chat');
    const errors = record(writer, 'error');

    const TOTAL = 400;
    const outcome = [];
    let sent = 0;
    const writing = new Promise((done) => {
      const timer = setInterval(() => {
        outcome.push(writer.chat(`m-${sent}`));
        sent += 1;
        if (sent === TOTAL) {
          clearInterval(timer);
          done();
        }
      }, 5);
    });

    await until(readerRoom, 'chat', () => got.length >= 100);
    await server.kill();
    const killedAt = sent;
    server = await startHerald({ listen: server.address, args, env });
    servers.push(server);
    await writing;

    // The writer sees its own chats: its last one's offset is where the stream ends.
    await until(writerRoom, 'chat', () => writerRoom.state === 'joined' && writer.queued === 0, 30_000);
    const end = next(writerRoom, 'chat', (m) => m.text === 'end', 30_000);
    writer.chat('end');
    const last = (await end).offset;
    await until(readerRoom, 'chat', () => (readerRoom.position?.offset ?? 0) >= last, 30_000);

    assert.deepEqual(errors, [], 'the server refused none of the writer\'s chats');
    const offsets = got.map((m) => m.offset);
    assert.deepEqual(offsets, Array.from({ length: last }, (_, i) => i + 1),
      'every offset from 1 to the end, once each, in order');
    const texts = got.map((m) => m.text);
    const queued = outcome.flatMap((o, i) => (o === 'queued' ? [`m-${i}`] : []));
    assert.ok(queued.length > 0, 'some chats were sent while the server was down');
    for (const text of queued) assert.ok(texts.includes(text), `queued ${text} arrived`);
    const order = texts.filter((t) => t.startsWith('m-')).map((t) => Number(t.slice(2)));
    assert.deepEqual(order, [...order].sort((a, b) => a - b), "the writer's chats arrive in its order");
    assert.equal(readerJoins.length, 2);
    assert.equal(readerJoins[1].wasRecovering, true);
    assert.equal(readerJoins[1].recovered, true, 'the stream survived in Redis');
    const lost = TOTAL - order.length;
    console.log(`restart: ${last} offsets received once each; killed after ${killedAt} sends; ` +
      `${queued.length} sends queued while down and all delivered; ${lost} sent into the dying ` +
      `socket and lost (at most once); ${readerRoom.duplicates} replayed repeats dropped`);
  });
});
