import { backoffDelay, DEFAULT_MAX_DELAY_MS, DEFAULT_MIN_DELAY_MS } from './backoff.js';
import { Emitter } from './emitter.js';
import { pollingTransport } from './polling.js';
import { tokenExpiry } from './token.js';
import {
  webSocketTransport,
  type Transport,
  type TransportClose,
  type TransportConnection,
  type WebSocketConstructor,
} from './transport.js';
import type {
  AnswerFrame,
  ChatMessage,
  ClientMessage,
  ErrorFrame,
  HangupFrame,
  IceCandidateFrame,
  OfferFrame,
  OutgoingSignal,
  PeersFrame,
  SignalFrame,
  Notification,
  PrivateMessage,
  RoomJoinedFrame,
  RoomResumedFrame,
  ServerMessage,
  StreamPosition,
  TypingMessage,
  User,
  UserJoinedMessage,
  UserLeftMessage,
  WelcomeFrame,
} from './types.js';

export type ClientState = 'disconnected' | 'connecting' | 'connected';

export interface ClientOptions {
  /** The user sent in `join` (a name, or `{id, name, ...}`); `join` may name another. */
  user?: User;
  /**
   * The transports to try, in order (default: WebSocket, then long polling; long polling only
   * when the runtime has no WebSocket). After `transportAttempts` failed opens of one, the next
   * is tried; once one has opened, the client stays with it.
   */
  transports?: Transport[];
  /** The WebSocket constructor for the default transport (Node 20: the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /**
   * Called before every connection attempt, and again before the token it returned expires
   * (its JWT `exp`, less `tokenRefreshMargin`): the client then reconnects with the new token
   * and resumes its room.
   */
  getToken?: () => string | Promise<string>;
  /** How the token travels: the `bearer.<token>` subprotocol (default) or `?token=`. */
  tokenVia?: 'subprotocol' | 'query';
  /** How long before `exp` to fetch a new token, in ms (default 30 000). */
  tokenRefreshMargin?: number;
  /**
   * `'diff'` asks a server that announces `presence-diff` for `presence_diff` frames (only who
   * joined or left) instead of whole member lists; the subscription keeps `users` up to date
   * either way. Default `'full'` (the core frames).
   */
  presence?: 'full' | 'diff';
  /** The first reconnect delay's ceiling, in ms (default 500). */
  minReconnectDelay?: number;
  /** The largest reconnect delay's ceiling, in ms (default 20 000). */
  maxReconnectDelay?: number;
  /** A source of numbers in [0, 1) for the jitter (default Math.random). */
  random?: () => number;
  /** How many sends are kept while disconnected (default 100); more throw `offline_queue_full`. */
  offlineQueueSize?: number;
  /** An application ping every this many ms while connected (default 20 000; 0 = none). */
  pingInterval?: number;
  /** A connection that answers nothing within this many ms of a ping is dropped (default 10 000). */
  pongTimeout?: number;
  /** Failed opens of one transport before the next one is tried (default 2). */
  transportAttempts?: number;
}

export interface StateChange {
  state: ClientState;
  previous: ClientState;
  /** Why, in words a UI can show (`connect called`, `server closed (1001 ...)`, ...). */
  reason: string;
  /** The close code that caused it, if any. */
  code?: number;
}

export interface ConnectingEvent {
  reason: string;
  code?: number;
  /** 0 for the first retry after a connection was lost. */
  attempt: number;
  /** The delay before the attempt, in ms. */
  delay: number;
  /** The transport the attempt will use. */
  transport: string;
}

export interface ConnectedEvent {
  clientId: string;
  transport: string;
  protocol?: string;
  capabilities: string[];
}

export interface JoinedEvent {
  room: string;
  users: User[];
  /** The join asked to resume (`since`), as centrifuge-js's `wasRecovering`. */
  wasRecovering: boolean;
  /** Every missed message follows; false after a resume that was impossible (or no resume). */
  recovered: boolean;
  /** The position the client now counts from: the room's epoch and the last offset seen. */
  position: Position;
  /**
   * `true` when the connection stayed open and the server resumed the room itself
   * (`room_resumed`: its node was cut off from the cluster, or the room's stream started over);
   * absent for a join.
   */
  inPlace?: boolean;
}

export interface Position {
  epoch: string | null;
  offset: number;
}

export interface ClientErrorEvent {
  /** A protocol error code (`not_in_room`, `forbidden`, ...) or a client one (`bad_frame`, `token`). */
  code: string;
  message: string;
  /** `server` for error frames, `client` for what the client itself ran into. */
  source: 'server' | 'client';
}

export interface ClientEvents {
  state: StateChange;
  connecting: ConnectingEvent;
  connected: ConnectedEvent;
  disconnected: { reason: string; code?: number };
  joined: JoinedEvent;
  left: { room: string; reason: string };
  chat: ChatMessage;
  typing: TypingMessage;
  user_joined: UserJoinedMessage;
  user_left: UserLeftMessage;
  private_message: PrivateMessage;
  notification: Notification;
  error: ClientErrorEvent;
  /** The answer to `peers()` (capability `signaling`). */
  peers: PeersFrame;
  /** A signal another member of the room sent this connection (capability `signaling`). */
  offer: OfferFrame;
  answer: AnswerFrame;
  ice_candidate: IceCandidateFrame;
  hangup: HangupFrame;
  /** Every relayed signal (`offer`, `answer`, `ice_candidate`, `hangup`), in arrival order. */
  signal: SignalFrame;
  /** Every frame from the server, before the client acts on it. */
  frame: ServerMessage;
}

export type SubscriptionState = 'joining' | 'joined' | 'left';

export interface SubscriptionEvents {
  joined: JoinedEvent;
  left: { room: string; reason: string };
  chat: ChatMessage;
  typing: TypingMessage;
  /** Members changed: `users` is everyone in the room now. */
  presence: { users: User[]; joined?: User; left?: User };
}

export type SendResult = 'sent' | 'queued' | 'dropped';

export class HeraldError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HeraldError';
  }
}

export const userId = (user: User): string => (typeof user === 'string' ? user : user.id);
export const userName = (user: User): string => (typeof user === 'string' ? user : user.name);

/**
 * A room the client is in, or is (re)joining. It remembers the room's position (epoch and
 * offset of the last chat seen), so every reconnect resumes with `since` and either recovers
 * every missed chat (`recovered: true`) or says it could not (`recovered: false`).
 */
export class Subscription extends Emitter<SubscriptionEvents> {
  state: SubscriptionState = 'joining';
  users: User[] = [];
  /** Whether the last join asked to resume. */
  wasRecovering = false;
  /** Whether the last join recovered everything it asked for. */
  recovered = false;
  /** Chats dropped because their offset had already been seen (a replay that overlapped). */
  duplicates = 0;

  /** @internal */
  constructor(
    readonly room: string,
    readonly user: User,
    /** @internal */ public positionOrNull: Position | null,
  ) {
    super();
  }

  /** The epoch and last offset seen, or null before the first `room_joined`. */
  get position(): Position | null {
    return this.positionOrNull ? { ...this.positionOrNull } : null;
  }

  /** @internal */
  fire<K extends keyof SubscriptionEvents>(event: K, payload: SubscriptionEvents[K]): void {
    this.emit(event, payload);
  }
}

const CLOSE_TEXT: Record<number, string> = {
  1000: 'closed',
  1001: 'server going away',
  1006: 'connection lost',
  1007: 'invalid UTF-8',
  1008: 'policy (rate limited or slow consumer)',
  1009: 'frame too big',
  1011: 'server error',
  4000: 'no answer to ping',
  4001: 'token expired',
};

/** WebSocket when the runtime has one (or one is given), then long polling. */
function defaultTransports(WebSocket: WebSocketConstructor | undefined): Transport[] {
  const transports: Transport[] = [];
  try {
    transports.push(webSocketTransport(WebSocket ? { WebSocket } : {}));
  } catch {
    // No WebSocket here (a page whose WebSocket is blocked, Node 20): polling alone.
  }
  transports.push(pollingTransport());
  return transports;
}

function describeClose(close: TransportClose): string {
  if (!close.opened) return `could not connect${close.reason ? `: ${close.reason}` : ''}`;
  const known = CLOSE_TEXT[close.code] ?? 'closed';
  return `${known} (${close.code}${close.reason && close.reason !== known ? ` ${close.reason}` : ''})`;
}

interface PongWaiter {
  resolve?: () => void;
  reject?: (err: Error) => void;
}

interface PeersWaiter {
  resolve: (frame: PeersFrame) => void;
  reject: (err: Error) => void;
}

/**
 * A Herald client: one connection (one room at a time, as the protocol has it), reconnecting
 * with full-jitter exponential backoff and resuming its room with `since`.
 */
export class HeraldClient extends Emitter<ClientEvents> {
  state: ClientState = 'disconnected';
  clientId: string | null = null;
  capabilities: string[] = [];
  /** The current room, if any (joined, or being joined). */
  subscription: Subscription | null = null;

  private readonly url: string;
  private readonly opts: ClientOptions;
  private readonly transports: Transport[];
  private transportIndex = 0;
  private anyOpened = false;
  private failedOpens = 0;
  private conn: TransportConnection | null = null;
  private generation = 0;
  private attempt = 0;
  private closedByUser = true;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pongTimer: ReturnType<typeof setTimeout> | undefined;
  private pongs: PongWaiter[] = [];
  private peerWaiters: PeersWaiter[] = [];
  private queue: ClientMessage[] = [];
  private token: string | undefined;
  /** Positions of rooms this client has been in, for joining them again later. */
  private positions = new Map<string, Position>();

  constructor(url: string, options: ClientOptions = {}) {
    super();
    this.url = url;
    this.opts = options;
    this.transports = options.transports ?? defaultTransports(options.WebSocket);
    if (this.transports.length === 0) throw new TypeError('transports must not be empty');
    // Fail now on bad delays rather than at the first reconnect.
    backoffDelay(0, this.backoffOptions());
  }

  /** The name of the transport in use (or to be tried next). */
  get transport(): string {
    return this.transports[this.transportIndex]!.name;
  }

  /** Sends waiting for a connection. */
  get queued(): number {
    return this.queue.length;
  }

  connect(): void {
    if (!this.closedByUser) return;
    this.closedByUser = false;
    this.attempt = 0;
    this.open('connect called');
  }

  /** Closes the connection and stops reconnecting; `connect` starts again (and resumes). */
  close(): void {
    if (this.closedByUser) return;
    this.closedByUser = true;
    this.stopTimers();
    clearTimeout(this.retryTimer);
    const conn = this.conn;
    this.conn = null;
    this.generation += 1;
    conn?.close(1000, 'client closed');
    this.lostConnection();
    this.setState('disconnected', 'closed by the client');
    this.emit('disconnected', { reason: 'closed by the client' });
  }

  /**
   * Drops the current connection and connects again at once, resuming the room: what an app
   * does when it knows the network changed.
   */
  reconnect(reason = 'reconnect requested', code = 4000): void {
    if (this.closedByUser) return;
    this.abandon(code, reason);
    this.attempt = 0;
    this.open(reason);
  }

  /**
   * Joins `room` (leaving the current room, since a connection is in one room at a time).
   * `since` resumes from a position saved earlier (e.g. in storage); without it the client
   * resumes from what it saw itself in this room, if anything.
   */
  join(room: string, options: { since?: StreamPosition; user?: User } = {}): Subscription {
    const user = options.user ?? this.opts.user;
    if (user === undefined) throw new TypeError('join needs a user: pass options.user or ClientOptions.user');
    const current = this.subscription;
    if (
      current &&
      current.room === room &&
      current.state !== 'left' &&
      options.since === undefined &&
      JSON.stringify(current.user) === JSON.stringify(user)
    ) {
      return current; // already there (or on the way) as this user
    }
    if (current && current.state !== 'left') this.endSubscription(current, `joined ${room}`);
    const saved = this.positions.get(room);
    const since = options.since
      ? { epoch: options.since.epoch, offset: options.since.offset }
      : saved
        ? { ...saved }
        : null;
    const sub = new Subscription(room, user, since);
    this.subscription = sub;
    if (this.state === 'connected') this.sendJoin(sub);
    return sub;
  }

  /** Leaves the current room. */
  leave(): void {
    const sub = this.subscription;
    if (!sub) return;
    this.subscription = null;
    if (this.state === 'connected' && this.conn) this.sendNow({ type: 'leave' });
    this.endSubscription(sub, 'left');
  }

  /** Says something in the current room (queued while disconnected or rejoining). */
  chat(text: string): SendResult {
    return this.send({ type: 'chat', text });
  }

  /** Typing is volatile: dropped, not queued, while disconnected. */
  typing(isTyping: boolean): SendResult {
    if (!this.ready()) return 'dropped';
    return this.send({ type: 'typing', isTyping });
  }

  /** A private message to every connection of user `target` (queued while disconnected). */
  privateMessage(target: string, text: string): SendResult {
    return this.send({ type: 'private_message', target, text });
  }

  /**
   * Resolves when the server answers a ping, which it does after everything it had queued for
   * this connection: a barrier for "everything sent before now has arrived".
   */
  ping(): Promise<void> {
    if (this.state !== 'connected' || !this.conn) {
      return Promise.reject(new HeraldError('not_connected', 'ping needs a connection'));
    }
    return new Promise((resolve, reject) => {
      this.pongs.push({ resolve, reject });
      this.sendNow({ type: 'ping' });
    });
  }

  /**
   * Asks the server for the room's other members as WebRTC peers (capability `signaling`):
   * their peer ids, this connection's `polite` role toward each, and the ICE servers to use.
   * Rejects with `HeraldError` `not_connected`, `unsupported` (the server did not announce
   * `signaling`), `not_in_room` (the server's answer outside a room) or `disconnected`.
   */
  peers(): Promise<PeersFrame> {
    if (this.state !== 'connected' || !this.conn) {
      return Promise.reject(new HeraldError('not_connected', 'peers needs a connection'));
    }
    if (!this.capabilities.includes('signaling')) {
      return Promise.reject(new HeraldError('unsupported', 'the server did not announce signaling'));
    }
    return new Promise((resolve, reject) => {
      this.peerWaiters.push({ resolve, reject });
      this.sendNow({ type: 'peers' });
    });
  }

  /**
   * Sends a WebRTC signal to one member of the room, by peer id. Signals are never queued: a
   * peer id is only good for one connection, so while disconnected or (re)joining the signal is
   * `'dropped'`. Throws `HeraldError` `unsupported` when the server did not announce `signaling`.
   */
  signal(frame: OutgoingSignal): SendResult {
    if (!this.ready()) return 'dropped';
    if (!this.capabilities.includes('signaling')) {
      throw new HeraldError('unsupported', 'the server did not announce signaling');
    }
    this.sendNow(frame);
    return 'sent';
  }

  /**
   * Sends one frame now, when connected, whatever the room's state (for modules over this
   * connection, such as `documents.ts` and `streams.ts`, that reopen and send again themselves
   * on `connected`); `'dropped'` otherwise.
   */
  sendFrame(frame: ClientMessage): SendResult {
    if (this.state !== 'connected' || !this.conn) return 'dropped';
    this.sendNow(frame);
    return 'sent';
  }

  // ------------------------------------------------------------------ sending

  private ready(): boolean {
    if (this.state !== 'connected' || !this.conn) return false;
    const sub = this.subscription;
    return !sub || sub.state !== 'joining';
  }

  private send(frame: ClientMessage): SendResult {
    if (this.ready() && this.queue.length === 0) {
      this.sendNow(frame);
      return 'sent';
    }
    const max = this.opts.offlineQueueSize ?? 100;
    if (this.queue.length >= max) {
      throw new HeraldError(
        'offline_queue_full',
        `${this.queue.length} sends are already waiting for a connection`,
      );
    }
    this.queue.push(frame);
    return 'queued';
  }

  private sendNow(frame: ClientMessage): void {
    this.conn?.send(JSON.stringify(frame));
  }

  private flush(): void {
    while (this.queue.length > 0 && this.ready()) {
      const frame = this.queue[0]!;
      try {
        this.sendNow(frame);
      } catch {
        return; // the connection is going; the frame stays first in line
      }
      this.queue.shift();
    }
  }

  private sendJoin(sub: Subscription): void {
    const frame: ClientMessage = { type: 'join', room: sub.room, user: sub.user };
    const position = sub.positionOrNull;
    sub.wasRecovering = false;
    if (this.capabilities.includes('recovery') && position && typeof position.epoch === 'string') {
      frame.since = { epoch: position.epoch, offset: position.offset };
      sub.wasRecovering = true;
    }
    if (this.opts.presence === 'diff' && this.capabilities.includes('presence-diff')) {
      frame.presence = 'diff';
    }
    sub.state = 'joining';
    this.sendNow(frame);
  }

  // ------------------------------------------------------------------ connecting

  private backoffOptions() {
    return {
      minDelay: this.opts.minReconnectDelay ?? DEFAULT_MIN_DELAY_MS,
      maxDelay: this.opts.maxReconnectDelay ?? DEFAULT_MAX_DELAY_MS,
      ...(this.opts.random ? { random: this.opts.random } : {}),
    };
  }

  private setState(state: ClientState, reason: string, code?: number): void {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit('state', code === undefined ? { state, previous, reason } : { state, previous, reason, code });
  }

  private open(reason: string): void {
    clearTimeout(this.retryTimer);
    this.setState('connecting', reason);
    const generation = ++this.generation;
    const transport = this.transports[this.transportIndex]!;
    const start = (token: string | undefined) => {
      if (generation !== this.generation) return;
      this.token = token;
      this.conn = transport.open(
        {
          url: this.url,
          tokenVia: this.opts.tokenVia ?? 'subprotocol',
          ...(token !== undefined ? { token } : {}),
        },
        {
          onOpen: () => {
            if (generation !== this.generation) return;
            this.anyOpened = true;
            this.failedOpens = 0;
          },
          onMessage: (text) => {
            if (generation === this.generation) this.onText(text);
          },
          onClose: (close) => {
            if (generation !== this.generation) return;
            this.conn = null;
            this.generation += 1;
            this.onClosed(close);
          },
        },
      );
    };
    if (!this.opts.getToken) {
      start(undefined);
      return;
    }
    Promise.resolve()
      .then(() => this.opts.getToken!())
      .then((token) => {
        if (typeof token !== 'string' || token === '') {
          throw new Error('getToken returned no token');
        }
        start(token);
      })
      .catch((err: unknown) => {
        if (generation !== this.generation) return;
        this.generation += 1;
        this.emit('error', { code: 'token', message: `getToken failed: ${String(err)}`, source: 'client' });
        if (this.closedByUser) return;
        this.retry({ code: 1006, reason: 'no token', opened: false });
      });
  }

  /** Drops the current connection without waiting for its close handshake. */
  private abandon(code: number, reason: string): void {
    const conn = this.conn;
    this.conn = null;
    this.generation += 1;
    this.stopTimers();
    if (conn) {
      conn.close(code, reason);
      this.lostConnection();
    }
  }

  private onClosed(close: TransportClose): void {
    this.stopTimers();
    this.lostConnection();
    if (this.closedByUser) return;
    if (!close.opened) {
      this.failedOpens += 1;
      const limit = this.opts.transportAttempts ?? 2;
      if (!this.anyOpened && this.failedOpens >= limit && this.transportIndex < this.transports.length - 1) {
        this.transportIndex += 1;
        this.failedOpens = 0;
        this.attempt = 0;
      }
    }
    this.retry(close);
  }

  /** What a lost connection means for the rooms, pings and state. */
  private lostConnection(): void {
    const waiters = this.pongs;
    this.pongs = [];
    for (const w of waiters) w.reject?.(new HeraldError('disconnected', 'the connection closed before the pong'));
    const peerWaiters = this.peerWaiters;
    this.peerWaiters = [];
    for (const w of peerWaiters) w.reject(new HeraldError('disconnected', 'the connection closed before the peers answer'));
    const sub = this.subscription;
    if (sub && sub.state === 'joined') sub.state = 'joining'; // rejoined (and resumed) on reconnect
    this.clientId = null;
  }

  private retry(close: TransportClose): void {
    const reason = describeClose(close);
    // A token that expired mid-connection is replaced at once; everything else backs off.
    const immediate = close.opened && close.code === 4001 && this.opts.getToken !== undefined;
    const delay = immediate ? 0 : backoffDelay(this.attempt, this.backoffOptions());
    const attempt = this.attempt;
    this.attempt += 1;
    this.setState('connecting', reason, close.code);
    this.emit('connecting', { reason, code: close.code, attempt, delay, transport: this.transport });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.closedByUser) this.open(reason);
    }, delay);
  }

  private stopTimers(): void {
    clearTimeout(this.refreshTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.refreshTimer = undefined;
    this.pingTimer = undefined;
    this.pongTimer = undefined;
  }

  private startTimers(): void {
    const every = this.opts.pingInterval ?? 20_000;
    if (every > 0 && this.capabilities.includes('app-ping')) {
      this.pingTimer = setInterval(() => {
        if (!this.conn) return;
        this.pongs.push({});
        this.sendNow({ type: 'ping' });
        if (this.pongTimer === undefined) {
          this.pongTimer = setTimeout(() => {
            this.pongTimer = undefined;
            if (this.closedByUser) return;
            this.abandon(4000, 'no answer to ping');
            this.retry({ code: 4000, reason: 'no answer to ping', opened: true });
          }, this.opts.pongTimeout ?? 10_000);
        }
      }, every);
    }
    const exp = this.token !== undefined ? tokenExpiry(this.token) : undefined;
    if (exp !== undefined && this.opts.getToken) {
      const left = exp * 1000 - Date.now();
      const margin = this.opts.tokenRefreshMargin ?? 30_000;
      // Refresh `margin` before expiry, but never sooner than halfway through what is left.
      const delay = Math.max(left - margin, left / 2, 0);
      this.refreshTimer = setTimeout(() => this.reconnect('token refresh', 1000), delay);
    }
  }

  // ------------------------------------------------------------------ receiving

  private onText(text: string): void {
    let frame: ServerMessage;
    try {
      const parsed: unknown = JSON.parse(text);
      if (!parsed || typeof parsed !== 'object' || typeof (parsed as { type?: unknown }).type !== 'string') {
        throw new Error('not an object with a string type');
      }
      frame = parsed as ServerMessage;
    } catch (err) {
      this.emit('error', { code: 'bad_frame', message: `unreadable frame: ${String(err)}`, source: 'client' });
      return;
    }
    // Any frame proves the connection alive.
    clearTimeout(this.pongTimer);
    this.pongTimer = undefined;
    this.emit('frame', frame);
    switch (frame.type) {
      case 'welcome':
        return this.onWelcome(frame);
      case 'room_joined':
        return this.onRoomJoined(frame);
      case 'room_resumed':
        return this.onRoomResumed(frame);
      case 'room_left': {
        const sub = this.subscription;
        if (sub && sub.room === frame.room && sub.state !== 'joining') {
          this.subscription = null;
          this.endSubscription(sub, 'left');
        }
        return;
      }
      case 'chat':
        return this.onChat(frame);
      case 'typing': {
        const sub = this.current(frame.room);
        if (!sub) return;
        sub.fire('typing', frame);
        this.emit('typing', frame);
        return;
      }
      case 'user_joined': {
        const sub = this.current(frame.room);
        if (!sub) return;
        sub.users = frame.users;
        sub.fire('presence', { users: frame.users, joined: frame.user });
        this.emit('user_joined', frame);
        return;
      }
      case 'user_left': {
        const sub = this.current(frame.room);
        if (!sub) return;
        const gone = userId(frame.user);
        sub.users = sub.users.filter((u) => userId(u) !== gone);
        sub.fire('presence', { users: sub.users, left: frame.user });
        this.emit('user_left', frame);
        return;
      }
      case 'presence_diff': {
        const sub = this.current(frame.room);
        if (!sub) return;
        // The same events as with whole lists: an app need not know which mode it is in.
        for (const joined of frame.joins) {
          sub.users = [...sub.users, joined];
          sub.fire('presence', { users: sub.users, joined });
          this.emit('user_joined', { type: 'user_joined', user: joined, users: sub.users, room: frame.room });
        }
        for (const left of frame.leaves) {
          const gone = userId(left);
          sub.users = sub.users.filter((u) => userId(u) !== gone);
          sub.fire('presence', { users: sub.users, left });
          this.emit('user_left', { type: 'user_left', user: left, room: frame.room });
        }
        return;
      }
      case 'presence_state': {
        const sub = this.current(frame.room);
        if (!sub) return;
        sub.users = frame.users;
        sub.fire('presence', { users: sub.users });
        return;
      }
      case 'private_message':
        this.emit('private_message', frame);
        return;
      case 'notification':
        this.emit('notification', frame.content);
        return;
      case 'pong': {
        const waiter = this.pongs.shift();
        waiter?.resolve?.();
        return;
      }
      case 'peers': {
        this.peerWaiters.shift()?.resolve(frame);
        this.emit('peers', frame);
        return;
      }
      case 'offer':
        this.emit('offer', frame);
        this.emit('signal', frame);
        return;
      case 'answer':
        this.emit('answer', frame);
        this.emit('signal', frame);
        return;
      case 'ice_candidate':
        this.emit('ice_candidate', frame);
        this.emit('signal', frame);
        return;
      case 'hangup':
        this.emit('hangup', frame);
        this.emit('signal', frame);
        return;
      case 'error':
        return this.onError(frame);
      default:
        return; // a frame type newer than this client
    }
  }

  /** The current subscription if `room` (absent on core-only servers) is about it. */
  private current(room: string | null | undefined): Subscription | null {
    const sub = this.subscription;
    if (!sub || sub.state === 'left') return null;
    if (room !== undefined && room !== null && room !== sub.room) return null;
    return sub;
  }

  private onWelcome(frame: WelcomeFrame): void {
    this.clientId = frame.clientId;
    this.capabilities = frame.capabilities ?? [];
    this.attempt = 0;
    this.setState('connected', `connected over ${this.transport}`);
    const event: ConnectedEvent = {
      clientId: frame.clientId,
      transport: this.transport,
      capabilities: this.capabilities,
    };
    if (frame.protocol !== undefined) event.protocol = frame.protocol;
    this.emit('connected', event);
    this.startTimers();
    const sub = this.subscription;
    if (sub && sub.state !== 'left') this.sendJoin(sub);
    else this.flush();
  }

  private onRoomJoined(frame: RoomJoinedFrame): void {
    const sub = this.subscription;
    if (!sub || sub.room !== frame.room || sub.state === 'left') return;
    sub.recovered = frame.recovered === true;
    const epoch = frame.epoch ?? null;
    if (sub.recovered && sub.positionOrNull) {
      sub.positionOrNull.epoch = epoch; // the replay that follows advances the offset
    } else {
      sub.positionOrNull = { epoch, offset: frame.offset ?? 0 };
    }
    this.positions.set(sub.room, sub.positionOrNull!); // shared: chats advance both
    sub.state = 'joined';
    sub.users = frame.users;
    const event: JoinedEvent = {
      room: sub.room,
      users: frame.users,
      wasRecovering: sub.wasRecovering,
      recovered: sub.recovered,
      position: { ...sub.positionOrNull! },
    };
    sub.fire('joined', event);
    this.emit('joined', event);
    this.flush();
  }

  /**
   * Capability `recovery`: the server resumed the room on a connection that stayed open. With
   * `recovered: true` the missed chats follow (they advance the position as any chat does);
   * with `false` some were lost, and the position is the server's. Emitted as a resume's
   * `joined` (`wasRecovering: true`), so a UI can say that messages may be missing.
   */
  private onRoomResumed(frame: RoomResumedFrame): void {
    const sub = this.current(frame.room);
    if (!sub || sub.state !== 'joined') return;
    sub.wasRecovering = true;
    sub.recovered = frame.recovered;
    const position = sub.positionOrNull;
    if (frame.recovered && position) {
      position.epoch = frame.epoch; // the replay that follows advances the offset
    } else {
      sub.positionOrNull = { epoch: frame.epoch, offset: frame.offset };
      this.positions.set(sub.room, sub.positionOrNull); // shared: chats advance both
    }
    const event: JoinedEvent = {
      room: sub.room,
      users: sub.users,
      wasRecovering: true,
      recovered: frame.recovered,
      position: { ...sub.positionOrNull! },
      inPlace: true,
    };
    sub.fire('joined', event);
    this.emit('joined', event);
  }

  private onChat(frame: ChatMessage): void {
    const sub = this.current(frame.room);
    if (!sub) return;
    const position = sub.positionOrNull;
    if (typeof frame.offset === 'number' && position) {
      if (frame.offset <= position.offset) {
        sub.duplicates += 1;
        return;
      }
      position.offset = frame.offset;
    }
    sub.fire('chat', frame);
    this.emit('chat', frame);
  }

  private onError(frame: ErrorFrame): void {
    // `peers` outside a room is answered with not_in_room (answers come in order, so it is the
    // oldest question's answer, unless a chat was also sent outside a room meanwhile).
    if (frame.code === 'not_in_room') {
      this.peerWaiters.shift()?.reject(new HeraldError(frame.code, frame.message));
    }
    this.emit('error', { code: frame.code, message: frame.message, source: 'server' });
    // A join refused for good (a room outside the token's grant, a user the server will not
    // take) must not leave the client waiting to rejoin with its sends queued forever. These
    // errors can only answer a join.
    const sub = this.subscription;
    const refusesJoin =
      frame.code === 'forbidden' ||
      (frame.code === 'invalid_message' &&
        (frame.message.startsWith('Invalid join message') || frame.message.includes('user object')));
    if (refusesJoin && sub && sub.state === 'joining') {
      this.subscription = null;
      this.endSubscription(sub, `forbidden: ${frame.message}`);
      this.flush();
    }
  }

  private endSubscription(sub: Subscription, reason: string): void {
    if (sub.state === 'left') return;
    sub.state = 'left';
    sub.fire('left', { room: sub.room, reason });
    this.emit('left', { room: sub.room, reason });
  }
}
