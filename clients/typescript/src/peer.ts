// WebRTC over Herald's signaling (capability `signaling`, PROTOCOL.md section 3.8).
//
// `PeerConnection` wraps one RTCPeerConnection with one other member of the room and follows the
// perfect-negotiation pattern: both sides may start negotiating whenever they like; on glare
// (both sent an offer) the impolite peer ignores the other's offer and the polite one rolls its
// own back and answers. Herald decides who is polite (the peer whose id sorts first) and says so
// on every relayed signal. Remote ICE candidates that arrive before the remote description are
// kept and added once it is set; the end of local candidates is sent as `candidate: null`.
//
// `PeerManager` routes a client's incoming signals to its PeerConnections by sender, creates one
// when another member calls, and lists the room's peers.
//
// Only the RTCPeerConnection is browser-specific, and it is injectable (`RTCPeerConnection`
// option), so the signaling logic runs under Node with a fake.
import { HeraldError, type HeraldClient, type SendResult } from './client.js';
import { Emitter } from './emitter.js';
import type {
  IceCandidate,
  IceServer,
  OutgoingSignal,
  Peer,
  PeersFrame,
  SignalFrame,
  User,
} from './types.js';

/** What `new RTCPeerConnection(config)` is in a browser. */
export type RTCPeerConnectionConstructor = new (config?: RTCConfiguration) => RTCPeerConnection;

export interface PeerConnectionOptions {
  /** This side's role toward the peer, as the server said it (`peers` or a relayed signal). */
  polite: boolean;
  /** The ICE servers (default none: host candidates only). */
  iceServers?: RTCIceServer[];
  /** Other RTCPeerConnection settings (bundlePolicy, iceTransportPolicy, ...). */
  rtcConfig?: Omit<RTCConfiguration, 'iceServers'>;
  /** The constructor to use (default the global `RTCPeerConnection`). */
  RTCPeerConnection?: RTCPeerConnectionConstructor;
  /** The user the peer joined as, when known. */
  user?: User;
}

export interface PeerConnectionEvents {
  /** The peer opened a DataChannel. */
  datachannel: RTCDataChannel;
  /** `connectionState` changed. */
  state: RTCPeerConnectionState;
  /** The connection ended: `hangup()` here (`remote: false`) or a `hangup` from the peer. */
  closed: { reason: string; remote: boolean };
  /** A signal could not be applied or sent. */
  error: { message: string; cause?: unknown };
  /** A signal this side sent (or tried to: `result` says whether it went out). */
  sent: { frame: OutgoingSignal; result: SendResult };
}

/** The server's ICE servers, as RTCPeerConnection takes them (no null fields). */
export function rtcIceServers(servers: IceServer[]): RTCIceServer[] {
  return servers.map((server) => {
    const out: RTCIceServer = { urls: [...server.urls] };
    if (typeof server.username === 'string') out.username = server.username;
    if (typeof server.credential === 'string') out.credential = server.credential;
    return out;
  });
}

/** A candidate as the server relays it, as addIceCandidate takes it (no null fields). */
function candidateInit(candidate: IceCandidate): RTCIceCandidateInit {
  const init: RTCIceCandidateInit = { candidate: candidate.candidate };
  if (typeof candidate.sdpMid === 'string') init.sdpMid = candidate.sdpMid;
  if (typeof candidate.sdpMLineIndex === 'number') init.sdpMLineIndex = candidate.sdpMLineIndex;
  if (typeof candidate.usernameFragment === 'string') init.usernameFragment = candidate.usernameFragment;
  return init;
}

/** A local candidate as the protocol carries it (`RTCIceCandidate.toJSON()`, nulls dropped). */
function candidateWire(candidate: RTCIceCandidate): IceCandidate {
  const json = candidate.toJSON();
  const out: IceCandidate = { candidate: json.candidate ?? '' };
  if (typeof json.sdpMid === 'string') out.sdpMid = json.sdpMid;
  if (typeof json.sdpMLineIndex === 'number') out.sdpMLineIndex = json.sdpMLineIndex;
  if (typeof json.usernameFragment === 'string') out.usernameFragment = json.usernameFragment;
  return out;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One WebRTC connection with one peer, negotiated through Herald. Create it on both sides
 * (`PeerManager` does that for incoming calls), feed it the peer's signals with `handle`, and
 * add channels or tracks to `pc`: negotiation starts by itself.
 */
export class PeerConnection extends Emitter<PeerConnectionEvents> {
  readonly pc: RTCPeerConnection;
  /** This side's role toward the peer; updated from every signal the peer sends. */
  polite: boolean;
  user: User | undefined;
  closed = false;
  /** Offers ignored on glare (impolite side only). */
  ignoredOffers = 0;

  private makingOffer = false;
  private ignoreOffer = false;
  /** Remote candidates (null = end of candidates) waiting for a remote description. */
  private pending: (IceCandidate | null)[] = [];
  /** Incoming signals are applied one after the other, in the order they arrived. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly send: (frame: OutgoingSignal) => SendResult,
    readonly peerId: string,
    options: PeerConnectionOptions,
  ) {
    super();
    this.polite = options.polite;
    this.user = options.user;
    const Ctor =
      options.RTCPeerConnection ??
      (globalThis as { RTCPeerConnection?: RTCPeerConnectionConstructor }).RTCPeerConnection;
    if (!Ctor) {
      throw new HeraldError('unsupported', 'no RTCPeerConnection here: pass options.RTCPeerConnection');
    }
    this.pc = new Ctor({ ...(options.rtcConfig ?? {}), iceServers: options.iceServers ?? [] });
    this.pc.onnegotiationneeded = () => void this.negotiate();
    this.pc.onicecandidate = (event) => {
      // A null candidate: gathering is complete, so the peer can stop waiting for more.
      this.signal({
        type: 'ice_candidate',
        to: this.peerId,
        candidate: event.candidate ? candidateWire(event.candidate) : null,
      });
    };
    this.pc.ondatachannel = (event) => this.emit('datachannel', event.channel);
    this.pc.onconnectionstatechange = () => this.emit('state', this.pc.connectionState);
  }

  /** Opens a DataChannel to the peer (which starts negotiation if needed). */
  createDataChannel(label: string, init?: RTCDataChannelInit): RTCDataChannel {
    return this.pc.createDataChannel(label, init);
  }

  /** Candidates from the peer not yet added because there was no remote description. */
  get pendingCandidates(): number {
    return this.pending.length;
  }

  /** Applies a signal from the peer (others are ignored). Signals are applied in order. */
  handle(frame: SignalFrame): Promise<void> {
    if (frame.from !== this.peerId) return this.chain;
    this.polite = frame.polite;
    this.chain = this.chain
      .then(() => this.apply(frame))
      .catch((err: unknown) =>
        this.emit('error', { message: `${frame.type} from ${this.peerId}: ${describe(err)}`, cause: err }),
      );
    return this.chain;
  }

  /** Ends the connection and tells the peer. */
  hangup(reason = 'hung up'): void {
    if (this.closed) return;
    this.signal({ type: 'hangup', to: this.peerId });
    this.shutdown(reason, false);
  }

  /** Ends the connection here without telling the peer (say, because it left the room). */
  close(reason = 'closed'): void {
    this.shutdown(reason, false);
  }

  private signal(frame: OutgoingSignal): void {
    if (this.closed) return;
    let result: SendResult;
    try {
      result = this.send(frame);
    } catch (err) {
      this.emit('error', { message: `could not send ${frame.type}: ${describe(err)}`, cause: err });
      return;
    }
    this.emit('sent', { frame, result });
    if (result === 'dropped') {
      this.emit('error', { message: `${frame.type} to ${this.peerId} dropped: not connected or not in the room` });
    }
  }

  private async negotiate(): Promise<void> {
    if (this.closed) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      const local = this.pc.localDescription;
      // A remote offer may have been applied meanwhile (glare on the polite side): no offer then.
      if (local && local.type === 'offer') this.signal({ type: 'offer', to: this.peerId, sdp: local.sdp });
    } catch (err) {
      this.emit('error', { message: `negotiation: ${describe(err)}`, cause: err });
    } finally {
      this.makingOffer = false;
    }
  }

  private async apply(frame: SignalFrame): Promise<void> {
    if (this.closed) return;
    switch (frame.type) {
      case 'offer':
      case 'answer': {
        const collision =
          frame.type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
        this.ignoreOffer = !this.polite && collision;
        if (this.ignoreOffer) {
          this.ignoredOffers += 1; // our own offer wins; the peer rolls back and answers it
          return;
        }
        const remote = { type: frame.type, sdp: frame.sdp } as const;
        if (collision && this.pc.signalingState === 'have-local-offer') {
          // Polite: give way. Both operations are queued at once, so that no negotiation of our
          // own (negotiationneeded fires again once stable) slips in between them.
          await Promise.all([
            this.pc.setLocalDescription({ type: 'rollback' }),
            this.pc.setRemoteDescription(remote),
          ]);
        } else {
          await this.pc.setRemoteDescription(remote);
        }
        await this.addPending();
        if (frame.type === 'offer') {
          await this.pc.setLocalDescription();
          const local = this.pc.localDescription;
          if (local) this.signal({ type: 'answer', to: this.peerId, sdp: local.sdp });
        }
        return;
      }
      case 'ice_candidate':
        if (!this.pc.remoteDescription) {
          this.pending.push(frame.candidate);
          return;
        }
        await this.addCandidate(frame.candidate);
        return;
      case 'hangup':
        this.shutdown('the peer hung up', true);
        return;
    }
  }

  private async addPending(): Promise<void> {
    const waiting = this.pending;
    this.pending = [];
    for (const candidate of waiting) await this.addCandidate(candidate);
  }

  private async addCandidate(candidate: IceCandidate | null): Promise<void> {
    try {
      if (candidate === null) await this.pc.addIceCandidate();
      else await this.pc.addIceCandidate(candidateInit(candidate));
    } catch (err) {
      // Candidates of an offer we ignored on glare are expected to fail.
      if (!this.ignoreOffer) throw err;
    }
  }

  private shutdown(reason: string, remote: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.pc.close();
    this.emit('closed', { reason, remote });
  }
}

export interface PeerManagerOptions {
  /** ICE servers to use instead of the server's `iceServers`. */
  iceServers?: RTCIceServer[];
  /** Other RTCPeerConnection settings. */
  rtcConfig?: Omit<RTCConfiguration, 'iceServers'>;
  /** The constructor to use (default the global `RTCPeerConnection`). */
  RTCPeerConnection?: RTCPeerConnectionConstructor;
}

export interface PeerManagerEvents {
  /** The room's peers, after `refresh()`. */
  peers: Peer[];
  /** Another member called: a PeerConnection was made for its offer. */
  incoming: PeerConnection;
  /** A call ended (either side hung up). */
  ended: { peer: PeerConnection; reason: string; remote: boolean };
}

/**
 * The WebRTC calls of one Herald client. `refresh()` lists the room's peers (and learns the
 * ICE servers), `call(peerId)` starts a call, an offer from a member without a call creates one
 * (`incoming`), and every signal goes to the call with its sender.
 */
export class PeerManager extends Emitter<PeerManagerEvents> {
  /** The other members, as of the last `refresh()`. */
  peers: Peer[] = [];
  /** The ICE servers, from the options or the last `peers` answer (none before it). */
  iceServers: RTCIceServer[] | null;

  private readonly calls = new Map<string, PeerConnection>();
  private readonly offSignal: () => void;

  constructor(
    readonly client: HeraldClient,
    private readonly options: PeerManagerOptions = {},
  ) {
    super();
    this.iceServers = options.iceServers ?? null;
    this.offSignal = client.on('signal', (frame) => this.onSignal(frame));
  }

  /** Asks the server for the room's peers (`client.peers()`), and keeps the answer. */
  async refresh(): Promise<Peer[]> {
    const frame: PeersFrame = await this.client.peers();
    this.peers = frame.peers;
    if (!this.options.iceServers) this.iceServers = rtcIceServers(frame.iceServers);
    this.emit('peers', frame.peers);
    return frame.peers;
  }

  /** The call with `peerId`, if there is one. */
  get(peerId: string): PeerConnection | undefined {
    return this.calls.get(peerId);
  }

  /** Every call in progress. */
  get active(): PeerConnection[] {
    return [...this.calls.values()];
  }

  /**
   * Starts (or returns) the call with `peerId`, a peer of the last `refresh()`. Add a channel or
   * track to it to start negotiating.
   */
  call(peerId: string): PeerConnection {
    const existing = this.calls.get(peerId);
    if (existing) return existing;
    const peer = this.peers.find((p) => p.peerId === peerId);
    if (!peer) {
      throw new HeraldError('peer_not_found', `${peerId} is not among the room's peers (refresh() first)`);
    }
    return this.create(peerId, peer.polite, peer.user);
  }

  /** Hangs up every call and stops listening to the client. */
  close(): void {
    for (const call of [...this.calls.values()]) call.hangup('closed');
    this.offSignal();
  }

  private create(peerId: string, polite: boolean, user: User | undefined): PeerConnection {
    const options: PeerConnectionOptions = { polite, iceServers: this.iceServers ?? [] };
    if (user !== undefined) options.user = user;
    if (this.options.rtcConfig) options.rtcConfig = this.options.rtcConfig;
    if (this.options.RTCPeerConnection) options.RTCPeerConnection = this.options.RTCPeerConnection;
    const call = new PeerConnection((frame) => this.client.signal(frame), peerId, options);
    this.calls.set(peerId, call);
    call.on('closed', ({ reason, remote }) => {
      if (this.calls.get(peerId) === call) this.calls.delete(peerId);
      this.emit('ended', { peer: call, reason, remote });
    });
    return call;
  }

  private onSignal(frame: SignalFrame): void {
    let call = this.calls.get(frame.from);
    if (!call) {
      // Only an offer starts a call; anything else is about a call that is over.
      if (frame.type !== 'offer') return;
      call = this.create(frame.from, frame.polite, frame.user);
      this.emit('incoming', call);
    }
    void call.handle(frame);
  }
}
