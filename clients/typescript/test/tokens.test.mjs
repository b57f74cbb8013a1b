// Tokens: getToken on every connect, a new token fetched before the old one expires, and a
// 4001 "token expired" close answered by reconnecting at once with a fresh token.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';

import { HeraldClient, HeraldEvents, tokenExpiry } from '../dist/index.js';
import { next, post, record, startHerald, until } from './helpers.mjs';

const SECRET = 'tsclient-test-secret-not-for-deployment-0123456789';
const b64url = (data) => Buffer.from(data).toString('base64url');

function sign(claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const mac = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${mac}`;
}

/** A getToken that mints tokens valid for `seconds` and counts its calls. */
function minter(sub, seconds) {
  const calls = [];
  const getToken = async () => {
    const exp = Math.floor(Date.now() / 1000) + seconds;
    calls.push(exp);
    return sign({ sub, name: sub, exp });
  };
  return { getToken, calls };
}

describe('tokens', () => {
  let server;
  const clients = [];

  before(async () => {
    server = await startHerald({ env: { HERALD_JWT_SECRET: SECRET, HERALD_JWT_LEEWAY: '0s' } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
  });

  it('reads a JWT expiry', () => {
    assert.equal(tokenExpiry(sign({ sub: 'x', exp: 1234 })), 1234);
    assert.equal(tokenExpiry('not a jwt'), undefined);
  });

  it('is refused without a token, and connects with one from getToken (subprotocol)', async () => {
    const bare = new HeraldClient(server.url, { WebSocket, user: 'nobody', minReconnectDelay: 5_000 });
    clients.push(bare);
    const refused = next(bare, 'connecting', (e) => e.attempt === 0);
    bare.connect();
    assert.match((await refused).reason, /could not connect/);
    bare.close();

    const { getToken, calls } = minter('tok-alice', 3600);
    const c = new HeraldClient(server.url, { WebSocket, user: 'ignored-with-tokens', getToken });
    clients.push(c);
    const connected = next(c, 'connected');
    c.connect();
    assert.ok((await connected).capabilities.includes('auth'));
    assert.equal(calls.length, 1);
    const joined = await next(c.join('tokens'), 'joined');
    assert.deepEqual(joined.users.map((u) => (typeof u === 'string' ? u : u.id)), ['tok-alice'], 'identity comes from the token');
  });

  it('gives up a room outside the token grant instead of waiting to rejoin it', async () => {
    const getToken = async () => sign({ sub: 'tok-limited', rooms: ['team-*'], exp: Math.floor(Date.now() / 1000) + 3600 });
    const c = new HeraldClient(server.url, { WebSocket, user: 'u', getToken });
    clients.push(c);
    c.connect();
    const refused = c.join('secret');
    const left = next(refused, 'left');
    const error = next(c, 'error');
    assert.equal((await error).code, 'forbidden');
    assert.match((await left).reason, /^forbidden/);
    assert.equal(refused.state, 'left');
    assert.equal(c.subscription, null);
    const allowed = await next(c.join('team-a'), 'joined');
    assert.equal(allowed.room, 'team-a');
  });

  it('fetches a new token before the old one expires, reconnects and resumes the room', async () => {
    const { getToken, calls } = minter('tok-refresh', 4);
    const c = new HeraldClient(server.url, {
      WebSocket,
      user: 'u',
      getToken,
      tokenRefreshMargin: 2_000,
      minReconnectDelay: 50,
    });
    clients.push(c);
    const other = new HeraldClient(server.url, { WebSocket, user: 'u', getToken: minter('tok-other', 3600).getToken });
    clients.push(other);
    const states = record(c, 'state');
    c.connect();
    other.connect();
    const room = c.join('refresh');
    await next(room, 'joined');
    const otherRoom = other.join('refresh');
    await next(otherRoom, 'joined');
    const chats = record(room, 'chat');

    const refreshed = next(room, 'joined', () => true, 15_000);
    other.chat('around the refresh');
    const event = await refreshed;
    assert.equal(event.wasRecovering, true);
    assert.equal(event.recovered, true);
    assert.ok(calls.length >= 2, 'getToken was called again');
    assert.ok(states.some((s) => s.reason === 'token refresh'), JSON.stringify(states));
    assert.ok(!states.some((s) => s.code === 4001), 'the server never had to close for expiry');
    await until(room, 'chat', () => chats.length >= 1);
    assert.equal(chats[0].text, 'around the refresh');
    c.close();
  });

  it('answers a 4001 close by reconnecting at once with a fresh token (query parameter)', async () => {
    const { getToken, calls } = minter('tok-expiring', 2);
    const c = new HeraldClient(server.url, {
      WebSocket,
      user: 'u',
      getToken,
      tokenVia: 'query',
      tokenRefreshMargin: -60_000, // never refresh early: let the server close the connection
    });
    clients.push(c);
    // Someone who stays keeps the room (and its stream) alive across the expiry.
    const other = new HeraldClient(server.url, { WebSocket, user: 'u', getToken: minter('tok-stays', 3600).getToken });
    clients.push(other);
    other.connect();
    await next(other.join('expiry'), 'joined');
    const states = record(c, 'state');
    c.connect();
    const room = c.join('expiry');
    await next(room, 'joined');
    const chats = record(room, 'chat');
    const expired = next(c, 'connecting', (e) => e.code === 4001, 15_000);
    const rejoined = next(room, 'joined', () => true, 15_000);
    const event = await expired;
    assert.equal(event.delay, 0, 'no backoff after an expired token');
    assert.match(event.reason, /token expired/);
    other.chat('while the token was replaced');
    const again = await rejoined;
    assert.equal(again.wasRecovering, true);
    assert.equal(again.recovered, true);
    await until(room, 'chat', () => chats.length === 1);
    assert.equal(chats[0].text, 'while the token was replaced');
    assert.ok(calls.length >= 2);
    assert.ok(states.some((s) => s.code === 4001));
    c.close();
  });

  it('opens an SSE stream with a token, as the token\'s user', async () => {
    const refused = new HeraldEvents(server.url, { userId: 'tok-sse', minReconnectDelay: 5_000 });
    const error = next(refused, 'error');
    refused.connect();
    assert.deepEqual(await error, { code: 'http_401', message: 'stream refused (HTTP 401)' });
    const { getToken, calls } = minter('tok-sse', 3600);
    const events = new HeraldEvents(server.url, { getToken });
    const got = record(events, 'notification');
    const open = next(events, 'connect');
    events.connect();
    await open;
    assert.equal(calls.length, 1);
    await post(server.url, '/notifications', { userId: 'tok-sse', message: 'for the token user' });
    await until(events, 'notification', () => got.length === 1);
    assert.equal(got[0].userId, 'tok-sse');
    assert.notEqual(refused.state, 'connected', 'no stream without a token');
    refused.close();
    events.close();
  });
});
