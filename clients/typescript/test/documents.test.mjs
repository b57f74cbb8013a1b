// Shared documents (capability `documents`): the OT functions on code points, then
// SharedDocument against the real `herald serve`: two clients typing at once converge, what is
// typed while an operation is in flight is composed and sent after its ack, a reconnect catches
// up and resends without applying anything twice, and cursors arrive in local coordinates.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';

import {
  HeraldClient,
  SharedDocument,
  applyOp,
  codePoints,
  composeOps,
  diffOp,
  transformOps,
} from '../dist/index.js';
import { next, startHerald, until } from './helpers.mjs';

/** A small seeded generator (mulberry32), so a failure replays. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['a', 'b', ' ', '👍', '🎉', 'e\u0301', '漢', '字', 'ש'];

function randomEdit(doc, random) {
  const n = codePoints(doc.text);
  const at = Math.floor(random() * (n + 1));
  if (n > 0 && random() < 0.35) {
    const count = 1 + Math.floor(random() * Math.min(3, n - at || 1));
    if (at + count <= n) return doc.delete(at, count);
  }
  doc.insert(at, PIECES[Math.floor(random() * PIECES.length)]);
}

describe('OT on code points', () => {
  it('counts emoji, combining marks and CJK as code points', () => {
    const text = 'a👍e\u0301漢字';
    assert.equal(codePoints(text), 6);
    assert.equal(applyOp(text, [{ retain: 1 }, { delete: 1 }, { insert: '🎉' }, { retain: 4 }]), 'a🎉e\u0301漢字');
    assert.throws(() => applyOp(text, [{ retain: 7 }]));
  });

  it('transform converges and compose equals applying in turn (seeded random cases)', () => {
    const random = rng(18);
    const randomOp = (text) => {
      const chars = Array.from(text);
      const op = [];
      let left = chars.length;
      while (left > 0 || random() < 0.3) {
        const roll = random();
        const k = 1 + Math.floor(random() * 3);
        if (roll < 0.3) op.push({ insert: PIECES[Math.floor(random() * PIECES.length)] });
        else if (left === 0) break;
        else if (roll < 0.6) {
          const n = Math.min(k, left);
          op.push({ delete: n });
          left -= n;
        } else {
          const n = Math.min(k, left);
          op.push({ retain: n });
          left -= n;
        }
      }
      return op;
    };
    for (let i = 0; i < 2000; i++) {
      const s = Array.from({ length: Math.floor(random() * 8) }, () => PIECES[Math.floor(random() * PIECES.length)]).join('');
      const a = randomOp(s);
      const b = randomOp(s);
      const [a2, b2] = transformOps(a, b);
      assert.equal(applyOp(applyOp(s, a), b2), applyOp(applyOp(s, b), a2), JSON.stringify({ s, a, b }));
      const mid = applyOp(s, a);
      const c = randomOp(mid);
      assert.equal(applyOp(s, composeOps(a, c)), applyOp(mid, c));
      const target = applyOp(s, b);
      assert.equal(applyOp(s, diffOp(s, target)), target);
    }
  });
});

describe('SharedDocument against the real server', () => {
  let server;
  const clients = [];
  before(async () => {
    server = await startHerald({ env: { HERALD_MESSAGE_RATE: '0' } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
  });

  async function connected() {
    const c = new HeraldClient(server.url, { WebSocket, minReconnectDelay: 20, maxReconnectDelay: 100 });
    clients.push(c);
    const up = next(c, 'connected');
    c.connect();
    await up;
    return c;
  }

  async function opened(client, id) {
    const doc = new SharedDocument(client, id);
    await next(doc, 'open');
    return doc;
  }

  /** Waits until every document is synchronised at the same version, then checks the texts. */
  async function converged(docs) {
    const same = () =>
      docs.every((d) => d.synchronised && d.version === docs[0].version && d.text === docs[0].text);
    const deadline = Date.now() + 10_000;
    while (!same()) {
      assert.ok(Date.now() < deadline, `no convergence: ${docs.map((d) => JSON.stringify([d.version, d.text])).join(' vs ')}`);
      await Promise.race(docs.map((d) => next(d, 'change', () => true, 500).catch(() => undefined)).concat(docs.map((d) => next(d, 'ack', () => true, 500).catch(() => undefined))));
    }
  }

  it('two clients typing at once converge, in code points', async () => {
    const [c1, c2] = [await connected(), await connected()];
    const d1 = await opened(c1, 'ts-typing');
    const d2 = await opened(c2, 'ts-typing');
    const random = rng(7);
    for (let i = 0; i < 200; i++) {
      randomEdit(random() < 0.5 ? d1 : d2, random);
      if (random() < 0.2) await new Promise((r) => setImmediate(r));
    }
    await converged([d1, d2]);
    // A third reader sees the server's text: the same.
    const c3 = await connected();
    const d3 = await opened(c3, 'ts-typing');
    assert.equal(d3.text, d1.text);
    assert.equal(d3.version, d1.version);
  });

  it('composes what is typed while an operation is in flight', async () => {
    const c1 = await connected();
    const d1 = await opened(c1, 'ts-buffer');
    const sent = [];
    c1.on('frame', () => {});
    const orig = c1.sendFrame.bind(c1);
    c1.sendFrame = (frame) => {
      if (frame.type === 'doc_op') sent.push(frame);
      return orig(frame);
    };
    d1.insert(0, 'h');
    d1.insert(1, 'é');
    d1.insert(2, '👍');
    assert.equal(d1.text, 'hé👍');
    assert.equal(sent.length, 1, 'one operation in flight; the rest buffered');
    await until(d1, 'ack', () => d1.synchronised);
    assert.equal(sent.length, 2, 'the buffer went as one composed operation');
    assert.deepEqual(sent[1].op, [{ retain: 1 }, { insert: 'é👍' }]);
    assert.equal(d1.version, 2);
  });

  it('catches up after a reconnect and never applies an operation twice', async () => {
    const [c1, c2] = [await connected(), await connected()];
    const d1 = await opened(c1, 'ts-reconnect');
    const d2 = await opened(c2, 'ts-reconnect');
    d1.insert(0, 'abc');
    await until(d1, 'ack', () => d1.synchronised);
    // Edit, and drop the connection before the ack can arrive; the other side keeps typing.
    d1.insert(3, '漢');
    c1.reconnect('test');
    d2.insert(0, '👍');
    d2.insert(0, 'x');
    const reopened = next(d1, 'open');
    await reopened;
    await converged([d1, d2]);
    assert.equal(d1.text, d2.text);
    assert.equal(Array.from(d1.text).filter((c) => c === '漢').length, 1, d1.text);
    assert.equal(d1.version, 4, 'abc, 漢, 👍, x: four operations');
  });

  it('shows other participants cursors in local coordinates', async () => {
    const [c1, c2] = [await connected(), await connected()];
    const d1 = await opened(c1, 'ts-cursor');
    const d2 = await opened(c2, 'ts-cursor');
    d1.insert(0, '漢字👍');
    await until(d2, 'change', () => d2.text === '漢字👍');
    d2.setCursor({ anchor: 2, head: 3 });
    await until(d1, 'cursors', () => d1.cursors.get(c2.clientId)?.cursor?.anchor === 2);
    d1.insert(0, 'é');
    assert.deepEqual(d1.cursors.get(c2.clientId).cursor, { anchor: 3, head: 4 });
    d2.close();
    await until(d1, 'cursors', () => !d1.cursors.has(c2.clientId));
  });
});
