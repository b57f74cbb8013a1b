// The client over long polling (capability `long-polling`) against the real `herald serve`:
// every feature, the fallback from a blocked WebSocket, and a proxy that loses poll answers.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';

import { HeraldClient, pollingTransport, pollingUrl, webSocketTransport } from '../dist/index.js';
import { next, post, record, startHerald, until } from './helpers.mjs';

/**
 * An HTTP proxy in front of `target` that refuses WebSocket upgrades (as some corporate
 * proxies do) and, when told, swallows poll answers: the server answers, the client never hears
 * it (its connection is reset). Returns { url, dropPolls(n), dropped(), close() }.
 */
async function startPollingProxy(target) {
  let toDrop = 0;
  let dropped = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const upstream = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          const body = [];
          answer.on('data', (c) => body.push(c));
          answer.on('end', () => {
            const isPoll = req.method === 'GET' && /^\/poll\/[^/?]+\?/.test(req.url);
            const frames = isPoll ? JSON.parse(Buffer.concat(body).toString()).frames?.length ?? 0 : 0;
            if (isPoll && frames > 0 && toDrop > 0) {
              // The answer (with frames) is lost on the way back.
              toDrop -= 1;
              dropped += 1;
              res.socket.destroy();
              return;
            }
            res.writeHead(answer.statusCode, answer.headers);
            res.end(Buffer.concat(body));
          });
        },
      );
      upstream.on('error', () => res.socket?.destroy());
      upstream.end(Buffer.concat(chunks));
    });
  });
  // Upgrades are refused outright.
  server.on('upgrade', (_req, socket) => {
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    dropPolls(n) {
      toDrop += n;
    },
    dropped: () => dropped,
    close: () =>
      new Promise((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

describe('client over long polling', () => {
  let server;
  const clients = [];
  const polling = (user, options = {}) => {
    const c = new HeraldClient(server.url, { transports: [pollingTransport()], user, ...options });
    clients.push(c);
    return c;
  };
  const socket = (user, options = {}) => {
    const c = new HeraldClient(server.url, { WebSocket, user, ...options });
    clients.push(c);
    return c;
  };
  const connected = async (c) => {
    const ready = next(c, 'connected');
    c.connect();
    return ready;
  };
  const joined = async (c, room, options) => {
    const sub = c.join(room, options);
    const event = await next(sub, 'joined');
    return { sub, event };
  };

  before(async () => {
    server = await startHerald({ args: ['--poll-hold', '2s'] });
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
  });

  it('derives the endpoint from any base URL', () => {
    assert.equal(pollingUrl('http://h:1'), 'http://h:1/poll');
    assert.equal(pollingUrl('ws://h:1/ws'), 'http://h:1/poll');
    assert.equal(pollingUrl('wss://h/app/'), 'https://h/app/poll');
    assert.throws(() => pollingUrl('ftp://h'));
  });

  it('connects, announces the transport, and chats, types and sees presence with a WebSocket client', async () => {
    const pat = polling({ id: 'pat', name: 'Pat' });
    const wes = socket('wes');
    const event = await connected(pat);
    assert.equal(event.transport, 'polling');
    assert.ok(event.capabilities.includes('long-polling'), `${event.capabilities}`);
    await connected(wes);
    const { sub: wesRoom } = await joined(wes, 'mixed');
    const seen = next(wes, 'user_joined');
    const { sub: patRoom, event: patJoined } = await joined(pat, 'mixed');
    assert.equal(patJoined.recovered, false);
    assert.equal((await seen).user.id, 'pat');
    assert.deepEqual(patRoom.users.map((u) => (typeof u === 'string' ? u : u.id)), ['wes', 'pat']);

    const atWes = next(wesRoom, 'chat', (m) => m.text === 'from polling');
    const atPat = next(patRoom, 'chat', (m) => m.text === 'from polling');
    pat.chat('from polling');
    const [a, b] = await Promise.all([atWes, atPat]);
    assert.equal(a.id, b.id);
    const back = next(patRoom, 'chat', (m) => m.text === 'from websocket');
    wes.chat('from websocket');
    assert.equal((await back).offset, a.offset + 1);

    const typing = next(wes, 'typing');
    pat.typing(true);
    assert.equal((await typing).isTyping, true);

    const left = next(wes, 'user_left');
    pat.leave();
    assert.equal((await left).user.id, 'pat');
  });

  it('sends and receives private messages and notifications', async () => {
    const pia = polling({ id: 'pia', name: 'Pia' });
    const wil = socket({ id: 'wil', name: 'Wil' });
    await connected(pia);
    await connected(wil);
    await joined(pia, 'dm');
    await joined(wil, 'dm');
    const toPia = next(pia, 'private_message');
    wil.privateMessage('pia', 'psst');
    assert.equal((await toPia).text, 'psst');
    const toWil = next(wil, 'private_message');
    pia.privateMessage('wil', 'back');
    assert.equal((await toWil).from.id, 'pia');
    const note = next(pia, 'notification');
    await post(server.url, '/notifications', { userId: 'pia', message: 'for pia', type: 'info' });
    assert.equal((await note).message, 'for pia');
  });

  it('falls back from a blocked WebSocket to polling and stays there', async () => {
    const proxy = await startPollingProxy(new URL(server.url));
    try {
      const c = new HeraldClient(proxy.url, {
        transports: [webSocketTransport({ WebSocket }), pollingTransport()],
        user: 'fallback',
        minReconnectDelay: 10,
        maxReconnectDelay: 50,
        random: () => 0.5,
      });
      clients.push(c);
      const attempts = record(c, 'connecting');
      const event = await connected(c);
      assert.equal(event.transport, 'polling');
      assert.ok(attempts.some((a) => a.transport === 'polling'));
      const { sub } = await joined(c, 'fallback');
      const mine = next(sub, 'chat', (m) => m.text === 'through the proxy');
      c.chat('through the proxy');
      await mine;
      assert.equal(c.transport, 'polling');
      c.close();
    } finally {
      await proxy.close();
    }
  });

  it('loses nothing when poll answers are lost on the way', async () => {
    const proxy = await startPollingProxy(new URL(server.url));
    try {
      const reader = new HeraldClient(proxy.url, {
        transports: [pollingTransport({ retryDelay: 20 })],
        user: 'reader',
      });
      clients.push(reader);
      const writer = socket('writer');
      await connected(reader);
      await connected(writer);
      const { sub } = await joined(reader, 'lossy');
      await joined(writer, 'lossy');
      const got = record(sub, 'chat');
      proxy.dropPolls(3);
      const total = 30;
      for (let i = 0; i < total; i++) writer.chat(`m${i}`);
      await until(sub, 'chat', () => got.length >= total, 20_000);
      assert.equal(proxy.dropped(), 3, 'the proxy dropped three answers');
      assert.deepEqual(
        got.map((m) => m.text),
        Array.from({ length: total }, (_, i) => `m${i}`),
        'every message once, in order',
      );
      // Offsets are consecutive: none missing, none doubled.
      for (let i = 1; i < got.length; i++) assert.equal(got[i].offset, got[i - 1].offset + 1);
      assert.equal(reader.state, 'connected');
    } finally {
      await proxy.close();
    }
  });
});
