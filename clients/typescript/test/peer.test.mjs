// The WebRTC peer helper: perfect negotiation (glare, rollback), candidate buffering, the
// end-of-candidates marker and hangup, with a fake RTCPeerConnection whose state machine is
// strict (no implicit rollback: an offer applied in have-local-offer throws, so does a candidate
// without a remote description). Then the same helper over the real server, two clients
// signaling each other through Herald.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';

import { HeraldClient, HeraldError, PeerConnection, PeerManager } from '../dist/index.js';
import { next, startHerald } from './helpers.mjs';

const tick = () => new Promise((resolve) => setImmediate(resolve));

let fakes = 0;

/** Enough of RTCPeerConnection's signaling state machine to check the negotiation logic. */
class FakeRTCPeerConnection {
  constructor(config) {
    this.id = ++fakes;
    this.config = config;
    this.signalingState = 'stable';
    this.connectionState = 'new';
    this.localDescription = null;
    this.remoteDescription = null;
    this.added = []; // candidates given to addIceCandidate (null for the end marker)
    this.log = []; // every description operation, in order
    this.channels = [];
    this.version = 0;
    this.onnegotiationneeded = null;
    this.onicecandidate = null;
    this.ondatachannel = null;
    this.onconnectionstatechange = null;
  }

  createDataChannel(label) {
    const channel = { label };
    this.channels.push(channel);
    setImmediate(() => this.onnegotiationneeded?.());
    return channel;
  }

  async setLocalDescription(description) {
    await tick();
    if (description && description.type === 'rollback') {
      if (this.signalingState !== 'have-local-offer') {
        throw new Error(`InvalidStateError: rollback in ${this.signalingState}`);
      }
      this.signalingState = 'stable';
      this.localDescription = null;
      this.log.push('rollback');
      return;
    }
    if (this.signalingState === 'stable' || this.signalingState === 'have-local-offer') {
      this.localDescription = { type: 'offer', sdp: `offer ${this.id}.${++this.version}` };
      this.signalingState = 'have-local-offer';
    } else if (this.signalingState === 'have-remote-offer') {
      this.localDescription = { type: 'answer', sdp: `answer ${this.id}.${++this.version}` };
      this.signalingState = 'stable';
    } else {
      throw new Error(`InvalidStateError: setLocalDescription in ${this.signalingState}`);
    }
    this.log.push(`local ${this.localDescription.type}`);
  }

  async setRemoteDescription(description) {
    await tick();
    if (description.type === 'offer') {
      if (this.signalingState !== 'stable') {
        throw new Error(`InvalidStateError: remote offer in ${this.signalingState}`);
      }
      this.signalingState = 'have-remote-offer';
    } else if (description.type === 'answer') {
      if (this.signalingState !== 'have-local-offer') {
        throw new Error(`InvalidStateError: remote answer in ${this.signalingState}`);
      }
      this.signalingState = 'stable';
    }
    this.remoteDescription = { ...description };
    this.log.push(`remote ${description.type}`);
  }

  async addIceCandidate(candidate) {
    await tick();
    if (!this.remoteDescription) throw new Error('InvalidStateError: no remote description');
    this.added.push(candidate ?? null);
  }

  close() {
    this.signalingState = 'closed';
  }

  /** Test side: the browser gathered a local candidate (null: gathering complete). */
  gather(candidate) {
    this.onicecandidate?.({ candidate: candidate ? { toJSON: () => ({ ...candidate }) } : null });
  }
}

/**
 * Two PeerConnections wired to each other the way Herald relays signals: `to` becomes `from`,
 * the receiver's `polite` is added, an offer carries the sender's user. With `hold`, frames wait
 * in `a.out`/`b.out` until the test delivers them.
 */
function pair({ hold = false } = {}) {
  // The id that sorts first is polite (Herald's rule): "peer-a" is polite, "peer-b" is not.
  const ends = {
    a: { id: 'peer-a', user: 'alice', polite: true, out: [] },
    b: { id: 'peer-b', user: 'bob', polite: false, out: [] },
  };
  const relay = (from, to, frame) => {
    const { to: _target, ...rest } = frame;
    const relayed = { ...rest, from: from.id, polite: to.polite };
    if (frame.type === 'offer') relayed.user = from.user;
    return relayed;
  };
  for (const [self, other] of [['a', 'b'], ['b', 'a']]) {
    const me = ends[self];
    const them = ends[other];
    me.conn = new PeerConnection(
      (frame) => {
        assert.equal(frame.to, them.id, 'a signal names its target by peer id');
        const relayed = relay(me, them, frame);
        me.out.push(relayed);
        if (!hold) setImmediate(() => them.conn.handle(relayed));
        return 'sent';
      },
      them.id,
      { polite: me.polite, RTCPeerConnection: FakeRTCPeerConnection },
    );
    me.errors = [];
    me.conn.on('error', (e) => me.errors.push(e.message));
  }
  /** Hands everything `from` sent so far to the other side, in order. */
  const deliver = async (from) => {
    const frames = ends[from].out.splice(0);
    const to = ends[from === 'a' ? 'b' : 'a'].conn;
    for (const frame of frames) await to.handle(frame);
  };
  return { ...ends, deliver };
}

async function settle(check, what) {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await tick();
  }
  assert.fail(`never happened: ${what}`);
}

describe('PeerConnection (fake RTCPeerConnection)', () => {
  it('offers on negotiationneeded and applies the answer: both sides end stable', async () => {
    const { a, b } = pair();
    a.conn.createDataChannel('chat');
    await settle(() => a.conn.pc.signalingState === 'stable' && a.conn.pc.remoteDescription, 'answer applied');
    assert.deepEqual(a.out.map((f) => f.type), ['offer']);
    assert.deepEqual(b.out.map((f) => f.type), ['answer']);
    assert.equal(a.out[0].sdp, a.conn.pc.localDescription.sdp);
    assert.equal(b.conn.pc.remoteDescription.sdp, a.out[0].sdp);
    assert.equal(a.conn.pc.remoteDescription.sdp, b.out[0].sdp);
    assert.deepEqual(b.conn.pc.log, ['remote offer', 'local answer']);
    assert.deepEqual([a.errors, b.errors], [[], []]);
  });

  it('keeps candidates that arrive before the remote description, then adds them in order', async () => {
    const { a, b, deliver } = pair({ hold: true });
    a.conn.createDataChannel('chat');
    await settle(() => a.out.length === 1, 'the offer');
    a.conn.pc.gather({ candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'uf1' });
    a.conn.pc.gather({ candidate: 'candidate:2 1 udp 2122260222 127.0.0.1 50001 typ host', sdpMid: '0', sdpMLineIndex: null, usernameFragment: null });
    a.conn.pc.gather(null);
    const [offer, ...candidates] = a.out.splice(0);
    assert.equal(offer.type, 'offer');
    // The wire form: RTCIceCandidate.toJSON() without nulls, and `candidate: null` at the end.
    assert.deepEqual(candidates.map((f) => f.candidate), [
      { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'uf1' },
      { candidate: 'candidate:2 1 udp 2122260222 127.0.0.1 50001 typ host', sdpMid: '0' },
      null,
    ]);

    // The candidates overtake the offer (say, a relay that reordered): none is added yet.
    for (const frame of candidates) await b.conn.handle(frame);
    assert.equal(b.conn.pendingCandidates, 3);
    assert.deepEqual(b.conn.pc.added, []);
    assert.deepEqual(b.errors, [], 'no addIceCandidate before the remote description');

    await b.conn.handle(offer);
    assert.equal(b.conn.pendingCandidates, 0);
    assert.deepEqual(b.conn.pc.added, [
      { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'uf1' },
      { candidate: 'candidate:2 1 udp 2122260222 127.0.0.1 50001 typ host', sdpMid: '0' },
      null, // the end marker: addIceCandidate() without a candidate
    ]);
    // After the remote description, a candidate is added at once.
    await deliver('b');
    a.conn.pc.gather({ candidate: 'candidate:3 1 udp 1 127.0.0.1 50002 typ host', sdpMid: '0', sdpMLineIndex: 0 });
    await deliver('a');
    assert.equal(b.conn.pc.added.length, 4);
    assert.deepEqual([a.errors, b.errors], [[], []]);
  });

  it('on glare the impolite side ignores the offer and the polite side rolls back and answers', async () => {
    const { a, b, deliver } = pair({ hold: true });
    // Both start at once: each has sent an offer and sits in have-local-offer.
    a.conn.createDataChannel('from-a');
    b.conn.createDataChannel('from-b');
    await settle(() => a.out.length === 1 && b.out.length === 1, 'two offers');
    assert.equal(a.conn.pc.signalingState, 'have-local-offer');
    assert.equal(b.conn.pc.signalingState, 'have-local-offer');

    await deliver('a'); // a's offer reaches b (impolite): ignored
    await deliver('b'); // b's offer reaches a (polite): rollback, then answer
    assert.equal(b.conn.ignoredOffers, 1);
    assert.equal(a.conn.ignoredOffers, 0);
    assert.deepEqual(b.conn.pc.log, ['local offer']);
    assert.deepEqual(a.conn.pc.log, ['local offer', 'rollback', 'remote offer', 'local answer']);

    await deliver('a'); // a's answer to b's offer
    assert.equal(a.conn.pc.signalingState, 'stable');
    assert.equal(b.conn.pc.signalingState, 'stable');
    assert.equal(b.conn.pc.remoteDescription.type, 'answer');
    assert.equal(a.conn.pc.remoteDescription.sdp, b.conn.pc.localDescription.sdp);
    assert.deepEqual([a.errors, b.errors], [[], []]);
  });

  it('takes its role from each signal the server relays', async () => {
    const { a, b, deliver } = pair({ hold: true });
    // Created with the wrong role, a learns it is impolite from b's offer and ignores it on glare.
    a.conn.polite = false;
    a.conn.createDataChannel('x');
    b.conn.createDataChannel('y');
    await settle(() => a.out.length === 1 && b.out.length === 1, 'two offers');
    await deliver('b');
    assert.equal(a.conn.polite, true, 'the relayed polite flag wins');
    assert.deepEqual(a.conn.pc.log, ['local offer', 'rollback', 'remote offer', 'local answer']);
    assert.deepEqual(a.errors, []);
    void b;
  });

  it('hangup tells the peer and closes both sides', async () => {
    const { a, b } = pair();
    a.conn.createDataChannel('chat');
    await settle(() => a.conn.pc.remoteDescription, 'connected');
    const closed = next(b.conn, 'closed');
    a.conn.hangup();
    assert.equal(a.conn.closed, true);
    assert.equal(a.conn.pc.signalingState, 'closed');
    assert.deepEqual(a.out.at(-1), { type: 'hangup', from: 'peer-a', polite: false });
    assert.deepEqual(await closed, { reason: 'the peer hung up', remote: true });
    assert.equal(b.conn.pc.signalingState, 'closed');
    a.conn.hangup(); // twice is harmless
    assert.equal(a.out.filter((f) => f.type === 'hangup').length, 1);
  });

  it('ignores signals from anyone but its peer', async () => {
    const { b } = pair({ hold: true });
    await b.conn.handle({ type: 'offer', from: 'someone-else', polite: true, user: 'eve', sdp: 'x' });
    await b.conn.handle({ type: 'hangup', from: 'someone-else', polite: true });
    assert.equal(b.conn.closed, false);
    assert.deepEqual(b.conn.pc.log, []);
  });

  it('needs an RTCPeerConnection', () => {
    assert.equal(globalThis.RTCPeerConnection, undefined, 'Node has none');
    assert.throws(
      () => new PeerConnection(() => 'sent', 'p', { polite: true }),
      (err) => err instanceof HeraldError && err.code === 'unsupported',
    );
  });
});

describe('PeerManager over the real server', () => {
  let server;
  const clients = [];

  before(async () => {
    server = await startHerald();
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
  });

  async function member(user, room) {
    const client = new HeraldClient(server.url, { WebSocket, user });
    clients.push(client);
    const joined = next(client, 'joined');
    client.connect();
    client.join(room);
    await joined;
    return client;
  }

  it('peers() outside a room is refused with not_in_room', async () => {
    const client = new HeraldClient(server.url, { WebSocket, user: 'loner' });
    clients.push(client);
    const ready = next(client, 'connected');
    client.connect();
    await ready;
    await assert.rejects(client.peers(), (err) => err instanceof HeraldError && err.code === 'not_in_room');
  });

  it('lists peers with opposite roles, and a call negotiates through Herald', async () => {
    const alice = await member('alice', 'rtc-call');
    const bob = await member('bob', 'rtc-call');
    const aliceCalls = new PeerManager(alice, { RTCPeerConnection: FakeRTCPeerConnection });
    const bobCalls = new PeerManager(bob, { RTCPeerConnection: FakeRTCPeerConnection });
    const [toBob] = await aliceCalls.refresh();
    const [toAlice] = await bobCalls.refresh();
    assert.equal(toBob.peerId, bob.clientId);
    assert.equal(toAlice.peerId, alice.clientId);
    assert.equal(toBob.user, 'bob');
    assert.equal(toBob.polite, alice.clientId < bob.clientId, 'the id that sorts first is polite');
    assert.equal(toAlice.polite, !toBob.polite, 'opposite roles');
    assert.deepEqual(aliceCalls.iceServers, [], 'a server without --ice-servers lists none');

    const incoming = next(bobCalls, 'incoming');
    const call = aliceCalls.call(bob.clientId);
    call.createDataChannel('chat');
    const answered = await incoming;
    assert.equal(answered.peerId, alice.clientId, 'the server stamped the sender');
    assert.equal(answered.user, 'alice', 'an offer carries the sender\'s user');
    assert.equal(answered.polite, toAlice.polite);
    await next(alice, 'answer');
    await settle(() => call.pc.signalingState === 'stable' && call.pc.remoteDescription, 'answer applied');
    assert.equal(call.pc.remoteDescription.sdp, answered.pc.localDescription.sdp);

    // Candidates and the end marker cross in order and are added on the other side.
    call.pc.gather({ candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'abcd' });
    call.pc.gather(null);
    await next(bob, 'ice_candidate', (f) => f.candidate === null);
    await settle(() => answered.pc.added.length === 2, 'two candidates added');
    assert.deepEqual(answered.pc.added, [
      { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'abcd' },
      null,
    ]);

    const ended = next(bobCalls, 'ended');
    call.hangup();
    assert.deepEqual(
      await ended.then(({ peer, reason, remote }) => [peer, reason, remote]),
      [answered, 'the peer hung up', true],
    );
    assert.equal(bobCalls.get(alice.clientId), undefined, 'the call is gone');
    assert.equal(aliceCalls.get(bob.clientId), undefined);
    assert.throws(() => aliceCalls.call('nobody'), (err) => err.code === 'peer_not_found');
  });
});
