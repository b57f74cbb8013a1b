// Every feature of the client over WebSocket, against the real `herald serve` on port 0.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';

import { HeraldClient, HeraldEvents, webSocketTransport } from '../dist/index.js';
import { next, post, record, startHerald, startProxy, until } from './helpers.mjs';

describe('client over WebSocket', () => {
  let server;
  const clients = [];
  const client = (user, options = {}) => {
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
    server = await startHerald();
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
  });

  it('goes disconnected -> connecting -> connected, with reasons, and reports the transport', async () => {
    const c = client('states');
    const states = record(c, 'state');
    assert.equal(c.state, 'disconnected');
    const event = await connected(c);
    assert.deepEqual(states.map((s) => [s.previous, s.state]), [
      ['disconnected', 'connecting'],
      ['connecting', 'connected'],
    ]);
    assert.equal(states[0].reason, 'connect called');
    assert.match(states[1].reason, /websocket/);
    assert.equal(event.transport, 'websocket');
    assert.equal(event.protocol, '1.1');
    assert.ok(event.capabilities.includes('recovery'), `capabilities: ${event.capabilities}`);
    assert.equal(typeof c.clientId, 'string');
    c.close();
    assert.equal(c.state, 'disconnected');
    assert.deepEqual(states.at(-1), { state: 'disconnected', previous: 'connected', reason: 'closed by the client' });
  });

  it('keeps the member list from presence diffs, with the same events as whole lists', async () => {
    const ann = client('ann', { presence: 'diff' });
    const ben = client('ben');
    await connected(ann);
    await connected(ben);
    const { sub: annRoom } = await joined(ann, 'diffs');
    const joinedEvent = next(ann, 'user_joined');
    const presence = next(annRoom, 'presence', (p) => p.joined !== undefined);
    await joined(ben, 'diffs');
    assert.deepEqual((await joinedEvent).users, ['ann', 'ben']);
    assert.deepEqual((await presence).users, ['ann', 'ben']);
    const leftEvent = next(ann, 'user_left');
    ben.leave();
    assert.equal((await leftEvent).user, 'ben');
    assert.deepEqual(annRoom.users, ['ann']);
  });

  it('joins a room, sees presence, chats both ways with offsets, and typing reaches only others', async () => {
    const alice = client('alice');
    const bob = client({ id: 'bob', name: 'Bob', color: 'green' });
    await connected(alice);
    await connected(bob);
    const { sub: aliceRoom, event: aliceJoined } = await joined(alice, 'features');
    assert.equal(aliceJoined.recovered, false);
    assert.equal(aliceJoined.wasRecovering, false);
    assert.deepEqual(aliceJoined.users, ['alice']);
    assert.equal(typeof aliceJoined.position.epoch, 'string');
    assert.equal(aliceJoined.position.offset, 0);

    const presence = next(aliceRoom, 'presence', (p) => p.joined !== undefined);
    const { sub: bobRoom } = await joined(bob, 'features');
    const seen = await presence;
    assert.deepEqual(seen.joined, { id: 'bob', name: 'Bob', color: 'green' }, 'the user object comes back whole');
    assert.equal(seen.users.length, 2);

    const aliceChats = record(aliceRoom, 'chat');
    const bobChats = record(bobRoom, 'chat');
    assert.equal(alice.chat('hello <b>bob</b>'), 'sent');
    // The server orders chats by arrival: bob answers once alice's chat is in the room.
    await until(bobRoom, 'chat', () => bobChats.length === 1);
    assert.equal(bob.chat('hi alice'), 'sent');
    await until(aliceRoom, 'chat', () => aliceChats.length === 2);
    await until(bobRoom, 'chat', () => bobChats.length === 2);
    assert.deepEqual(aliceChats.map((m) => m.offset), [1, 2]);
    assert.deepEqual(bobChats.map((m) => [m.offset, m.text]), aliceChats.map((m) => [m.offset, m.text]));
    assert.equal(aliceChats[0].text, 'hello <b>bob</b>');
    assert.deepEqual(aliceRoom.position, { epoch: aliceJoined.position.epoch, offset: 2 });

    const aliceTyping = record(aliceRoom, 'typing');
    const bobTyping = next(bobRoom, 'typing');
    assert.equal(alice.typing(true), 'sent');
    const typed = await bobTyping;
    assert.equal(typed.user, 'alice');
    assert.equal(typed.isTyping, true);
    await alice.ping(); // anything queued for alice before now has arrived
    assert.deepEqual(aliceTyping, [], 'typing is not echoed to the typist');

    const left = next(aliceRoom, 'presence', (p) => p.left !== undefined);
    const bobLeft = next(bobRoom, 'left');
    bob.leave();
    assert.equal((await bobLeft).reason, 'left');
    assert.equal((await left).left.id, 'bob');
    assert.deepEqual(aliceRoom.users, ['alice']);
  });

  it('moves to another room on join (one room per connection), and never rejoins the old one', async () => {
    const mover = client('room-mover', { minReconnectDelay: 20 });
    await connected(mover);
    const { sub: first } = await joined(mover, 'first-room');
    const firstLeft = next(first, 'left');
    const { sub: second, event } = await joined(mover, 'second-room');
    assert.equal((await firstLeft).reason, 'joined second-room');
    assert.equal(first.state, 'left');
    assert.equal(event.room, 'second-room');
    assert.equal(mover.subscription, second);
    const back = next(second, 'joined');
    mover.reconnect('test');
    assert.equal((await back).room, 'second-room', 'only the current room is rejoined');
    assert.equal(first.state, 'left');
  });

  it('sends private messages and receives notifications on the socket', async () => {
    const carol = client('carol');
    const dave = client('dave');
    await connected(carol);
    await connected(dave);
    await joined(carol, 'pm-a');
    await joined(dave, 'pm-b'); // private messages cross rooms
    const got = next(dave, 'private_message');
    assert.equal(carol.privateMessage('dave', 'just <i>us</i>'), 'sent');
    const pm = await got;
    assert.equal(pm.from, 'carol');
    assert.equal(pm.text, 'just <i>us</i>');

    const note = next(dave, 'notification');
    const { notificationId } = await post(server.url, '/notifications', { userId: 'dave', message: 'shipped', type: 'success' });
    const content = await note;
    assert.equal(content.id, notificationId);
    assert.equal(content.message, 'shipped');
    assert.equal(content.userId, 'dave');
  });

  it('reports server errors as events', async () => {
    const eve = client('eve');
    await connected(eve);
    const error = next(eve, 'error');
    eve.privateMessage('nobody', 'hi'); // private messages need a join first
    assert.deepEqual(await error, { code: 'not_in_room', message: 'Not in a room', source: 'server' });
  });

  it('gives up a join the server refuses (a user object over 1 KiB), and sends are not stuck behind it', async () => {
    const big = client({ id: 'big', name: 'Big', bio: 'x'.repeat(2000) });
    await connected(big);
    const sub = big.join('refused');
    const left = next(sub, 'left');
    const error = next(big, 'error');
    assert.deepEqual(await error, { code: 'invalid_message', message: 'user object over 1024 bytes', source: 'server' });
    assert.match((await left).reason, /user object over 1024 bytes/);
    assert.equal(big.subscription, null);
    assert.equal(big.privateMessage('nobody', 'not queued'), 'sent', 'nothing waits for that room');
  });

  it('resumes from a saved position: everything after it (recovered) or nothing (recovered: false)', async () => {
    const writer = client('writer');
    await connected(writer);
    const { sub } = await joined(writer, 'resume');
    const chats = record(sub, 'chat');
    for (let i = 1; i <= 5; i += 1) writer.chat(`r${i}`);
    await until(sub, 'chat', () => chats.length === 5);
    const { epoch } = sub.position;

    const reader = client('reader');
    await connected(reader);
    const readerRoom = reader.join('resume', { since: { epoch, offset: 2 } });
    const got = record(readerRoom, 'chat');
    const event = await next(readerRoom, 'joined');
    assert.equal(event.wasRecovering, true);
    assert.equal(event.recovered, true);
    await reader.ping();
    assert.deepEqual(got.map((m) => [m.offset, m.text]), [[3, 'r3'], [4, 'r4'], [5, 'r5']]);
    assert.deepEqual(readerRoom.position, { epoch, offset: 5 });

    const stale = client('stale');
    await connected(stale);
    const staleRoom = stale.join('resume', { since: { epoch: 'not-this-epoch', offset: 2 } });
    const staleChats = record(staleRoom, 'chat');
    const staleEvent = await next(staleRoom, 'joined');
    assert.equal(staleEvent.wasRecovering, true);
    assert.equal(staleEvent.recovered, false, 'another epoch cannot be resumed');
    assert.deepEqual(staleEvent.position, { epoch, offset: 5 }, 'counts from the latest message');
    await stale.ping();
    assert.deepEqual(staleChats, [], 'nothing is replayed after recovered: false');
  });

  it('reconnects on a dropped connection and recovers what it missed, once each', async () => {
    const stayer = client('stayer');
    const mover = client('mover', { minReconnectDelay: 50 });
    await connected(stayer);
    await connected(mover);
    const { sub: stayerRoom } = await joined(stayer, 'drop');
    const { sub: moverRoom } = await joined(mover, 'drop');
    stayer.chat('before');
    const moverChats = record(moverRoom, 'chat');
    await until(moverRoom, 'chat', () => moverChats.length === 1);

    // Drop the mover's connection; chats sent meanwhile must come back by resuming.
    const states = record(mover, 'state');
    const rejoined = next(moverRoom, 'joined');
    mover.reconnect('test drop');
    const stayerChats = record(stayerRoom, 'chat');
    for (const text of ['away 1', 'away 2', 'away 3']) stayer.chat(text);
    const event = await rejoined;
    assert.equal(event.wasRecovering, true);
    assert.equal(event.recovered, true);
    await until(moverRoom, 'chat', () => moverChats.length === 4);
    // The stayer's own echo of 'before' may still be on its way: count the three sent now.
    const away = () => stayerChats.filter((m) => m.text.startsWith('away'));
    await until(stayerRoom, 'chat', () => away().length === 3);
    await mover.ping();
    assert.deepEqual(moverChats.map((m) => m.text), ['before', 'away 1', 'away 2', 'away 3']);
    assert.deepEqual(moverChats.map((m) => m.offset), [1, 2, 3, 4]);
    assert.equal(states[0].state, 'connecting');
    assert.equal(states[0].reason, 'test drop');
    assert.equal(states.at(-1).state, 'connected');
  });

  it('queues sends made while disconnected, bounded, and flushes them in order once back in the room', async () => {
    const listener = client('listener');
    await connected(listener);
    const { sub } = await joined(listener, 'queue');
    const heard = record(sub, 'chat');

    const offline = client('offline', { offlineQueueSize: 3 });
    offline.join('queue'); // joined on connect
    assert.equal(offline.chat('q1'), 'queued');
    assert.equal(offline.privateMessage('listener', 'q2'), 'queued');
    assert.equal(offline.chat('q3'), 'queued');
    assert.equal(offline.typing(true), 'dropped', 'typing is volatile');
    assert.throws(() => offline.chat('q4'), (err) => err.code === 'offline_queue_full');
    assert.equal(offline.queued, 3);

    const pm = next(listener, 'private_message');
    await connected(offline);
    await until(sub, 'chat', () => heard.length === 2);
    assert.deepEqual(heard.map((m) => m.text), ['q1', 'q3']);
    assert.equal((await pm).text, 'q2');
    assert.equal(offline.queued, 0);
  });

  it('uses long polling when the runtime has no WebSocket', async () => {
    const had = globalThis.WebSocket;
    delete globalThis.WebSocket;
    try {
      assert.throws(() => webSocketTransport(), /no WebSocket implementation/);
      const c = new HeraldClient(server.url, { user: 'no-socket' });
      clients.push(c);
      assert.equal(c.transport, 'polling');
      assert.equal((await connected(c)).transport, 'polling');
    } finally {
      if (had) globalThis.WebSocket = had;
    }
  });

  it('falls back to the next transport when one cannot open, and stays with it', async () => {
    let tries = 0;
    const blocked = {
      name: 'blocked',
      open(_options, handlers) {
        tries += 1;
        // A transport a proxy refuses: it closes without ever opening.
        setTimeout(() => handlers.onClose({ code: 1006, reason: 'upgrade refused', opened: false }), 0);
        return { send() { throw new Error('never open'); }, close() {} };
      },
    };
    const c = client('fallback', {
      transports: [blocked, webSocketTransport({ WebSocket })],
      minReconnectDelay: 10,
    });
    const attempts = record(c, 'connecting');
    const event = await connected(c);
    assert.equal(event.transport, 'websocket');
    assert.equal(tries, 2, 'two failed opens, then the next transport');
    assert.deepEqual(attempts.map((a) => a.transport), ['blocked', 'websocket']);
    c.reconnect('again');
    assert.equal((await next(c, 'connected')).transport, 'websocket', 'sticks with what works');
    assert.equal(tries, 2);
  });

  it('reads SSE notifications and updates, and resumes with Last-Event-ID', async () => {
    const events = new HeraldEvents(server.url, { userId: 'sse-user' });
    assert.equal(events.reader, 'fetch', 'Node 20 has no EventSource');
    const open = next(events, 'connect');
    events.connect();
    await open;
    assert.equal(events.state, 'connected');
    const note = next(events, 'notification');
    const update = next(events, 'update');
    await post(server.url, '/notifications', { userId: 'sse-user', message: 'n1' });
    await post(server.url, '/updates', { resource: 'order', action: 'created', data: { id: 7 } });
    assert.equal((await note).message, 'n1');
    assert.deepEqual((await update).data, { id: 7 });
    const lastId = events.lastEventId;
    assert.match(lastId, /^\d+$/);
    events.close();

    // Missed while closed: a new stream from the saved id gets both, in order, then live ones.
    await post(server.url, '/notifications', { userId: 'sse-user', message: 'missed 1' });
    await post(server.url, '/notifications', { userId: 'sse-user', message: 'missed 2' });
    const again = new HeraldEvents(server.url, { userId: 'sse-user', lastEventId: lastId });
    const got = record(again, 'notification');
    again.connect();
    await until(again, 'notification', () => got.length === 2);
    assert.deepEqual(got.map((n) => n.message), ['missed 1', 'missed 2']);
    again.close();
  });

  it('reopens a lost SSE stream by itself and gets what it missed (Last-Event-ID)', async () => {
    const proxy = await startProxy(new URL(server.url).host);
    const events = new HeraldEvents(proxy.url, { userId: 'sse-cut', minReconnectDelay: 50, maxReconnectDelay: 200 });
    const got = record(events, 'notification');
    const states = record(events, 'state');
    const open = next(events, 'connect');
    events.connect();
    await open;
    await post(server.url, '/notifications', { userId: 'sse-cut', message: 'before' });
    await until(events, 'notification', () => got.length === 1);

    // The network goes away: the stream is cut and cannot come back until it returns.
    const lost = next(events, 'state', (s) => s.state === 'connecting');
    proxy.block();
    proxy.cut();
    await lost;
    await post(server.url, '/notifications', { userId: 'sse-cut', message: 'missed 1' });
    await post(server.url, '/updates', { resource: 'doc', action: 'saved' });
    await post(server.url, '/notifications', { userId: 'sse-cut', message: 'missed 2' });
    const updates = record(events, 'update');
    proxy.unblock();
    await until(events, 'notification', () => got.length === 3, 15_000);
    assert.deepEqual(got.map((n) => n.message), ['before', 'missed 1', 'missed 2']);
    assert.deepEqual(updates.map((u) => u.resource), ['doc']);
    assert.equal(events.state, 'connected');
    assert.ok(states.some((s) => s.previous === 'connected' && s.state === 'connecting'));
    events.close();
    await proxy.close();
  });

  it('reconnects through a network cut and recovers the room', async () => {
    const proxy = await startProxy(new URL(server.url).host);
    const here = client('here');
    const cutoff = new HeraldClient(proxy.url, { WebSocket, user: 'cutoff', minReconnectDelay: 50, maxReconnectDelay: 200 });
    clients.push(cutoff);
    await connected(here);
    await connected(cutoff);
    const { sub: hereRoom } = await joined(here, 'cut');
    const { sub: room } = await joined(cutoff, 'cut');
    const got = record(room, 'chat');
    const lost = next(cutoff, 'connecting');
    proxy.block();
    proxy.cut();
    const event = await lost;
    assert.equal(event.code, 1006);
    const heard = record(hereRoom, 'chat');
    here.chat('during the cut');
    await until(hereRoom, 'chat', () => heard.length === 1);
    assert.equal(cutoff.chat('written during the cut'), 'queued');
    const back = next(room, 'joined', () => true, 15_000);
    proxy.unblock();
    const rejoined = await back;
    assert.equal(rejoined.recovered, true);
    await until(hereRoom, 'chat', () => heard.length === 2);
    await until(room, 'chat', () => got.length === 2);
    assert.deepEqual(got.map((m) => m.text), ['during the cut', 'written during the cut']);
    await proxy.close();
  });

  it('notices a connection that went silent (no pong) and moves to a new one', async () => {
    const proxy = await startProxy(new URL(server.url).host);
    const c = new HeraldClient(proxy.url, {
      WebSocket, user: 'silent', pingInterval: 250, pongTimeout: 1_500, minReconnectDelay: 50,
    });
    clients.push(c);
    await connected(c);
    const room = c.join('silent');
    await next(room, 'joined');
    const lost = next(c, 'connecting');
    const back = next(room, 'joined', () => true, 15_000);
    proxy.stall(); // nothing flows, nothing closes: only the missing pong tells
    const event = await lost;
    assert.equal(event.code, 4000);
    assert.match(event.reason, /no answer to ping/);
    assert.equal((await back).recovered, true);
    assert.equal(proxy.connections(), 2, 'a second connection replaced the silent one');
    await proxy.close();
  });
});
