// The Herald TypeScript client (clients/typescript), bundled by its scripts/bundle.mjs (`npm run build`); do not edit.
"use strict";
var Herald = (() => {
  var __defProp = Object.defineProperty;
  var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
  var __getOwnPropNames = Object.getOwnPropertyNames;
  var __hasOwnProp = Object.prototype.hasOwnProperty;
  var __export = (target, all) => {
    for (var name in all)
      __defProp(target, name, { get: all[name], enumerable: true });
  };
  var __copyProps = (to, from, except, desc) => {
    if (from && typeof from === "object" || typeof from === "function") {
      for (let key of __getOwnPropNames(from))
        if (!__hasOwnProp.call(to, key) && key !== except)
          __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
    }
    return to;
  };
  var __toCommonJS = (mod) => __copyProps(__defProp({}, "__esModule", { value: true }), mod);

  // src/index.ts
  var index_exports = {};
  __export(index_exports, {
    HeraldClient: () => HeraldClient,
    HeraldError: () => HeraldError,
    HeraldEvents: () => HeraldEvents,
    HeraldStream: () => HeraldStream,
    PeerConnection: () => PeerConnection,
    PeerManager: () => PeerManager,
    SharedDocument: () => SharedDocument,
    Subscription: () => Subscription,
    applyOp: () => apply,
    backoffDelay: () => backoffDelay,
    codePoints: () => codePoints,
    composeOps: () => compose,
    diffOp: () => diff,
    pollingTransport: () => pollingTransport,
    pollingUrl: () => pollingUrl,
    rtcIceServers: () => rtcIceServers,
    subscribeStream: () => subscribeStream,
    tokenExpiry: () => tokenExpiry,
    transformOps: () => transform,
    transformPosition: () => transformPosition,
    userId: () => userId,
    userName: () => userName,
    webSocketTransport: () => webSocketTransport,
    webSocketUrl: () => webSocketUrl
  });

  // src/backoff.ts
  var DEFAULT_MIN_DELAY_MS = 500;
  var DEFAULT_MAX_DELAY_MS = 2e4;
  function backoffDelay(attempt, options = {}) {
    const min = options.minDelay ?? DEFAULT_MIN_DELAY_MS;
    const max = options.maxDelay ?? DEFAULT_MAX_DELAY_MS;
    if (!(min > 0) || !(max >= min)) {
      throw new RangeError(`backoff needs 0 < minDelay <= maxDelay (got ${min}, ${max})`);
    }
    const ceiling = Math.min(max, min * 2 ** Math.min(Math.max(attempt, 0), 30));
    const random = options.random ?? Math.random;
    return Math.floor(random() * ceiling);
  }

  // src/emitter.ts
  var Emitter = class {
    constructor() {
      this.handlers = /* @__PURE__ */ new Map();
    }
    on(event, handler) {
      let set = this.handlers.get(event);
      if (!set) {
        set = /* @__PURE__ */ new Set();
        this.handlers.set(event, set);
      }
      set.add(handler);
      return () => this.off(event, handler);
    }
    off(event, handler) {
      this.handlers.get(event)?.delete(handler);
    }
    emit(event, payload) {
      const set = this.handlers.get(event);
      if (!set) return;
      for (const handler of [...set]) {
        try {
          handler(payload);
        } catch (err) {
          setTimeout(() => {
            throw err;
          }, 0);
        }
      }
    }
  };

  // src/polling.ts
  function pollingUrl(base) {
    const url = new URL(base);
    if (url.protocol === "ws:") url.protocol = "http:";
    else if (url.protocol === "wss:") url.protocol = "https:";
    else if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`a Herald URL must be http(s):// or ws(s)://, got ${base}`);
    }
    let path = url.pathname.replace(/\/+$/, "");
    if (path.endsWith("/ws")) path = path.slice(0, -3);
    url.pathname = `${path}/poll`;
    url.search = "";
    url.hash = "";
    return url.toString();
  }
  var MAX_FRAMES_PER_SEND = 100;
  var Failed = class extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  };
  async function errorOf(response) {
    let code;
    let message = `HTTP ${response.status}`;
    try {
      const body = await response.json();
      code = body.error.code;
      message = `${message} ${code}: ${body.error.message}`;
    } catch {
    }
    return new Failed(message, response.status, code);
  }
  function pollingTransport(options = {}) {
    const doFetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (!doFetch) throw new Error("no fetch implementation: pass one as `fetch`");
    const margin = options.pollMargin ?? 1e4;
    const firstDelay = options.retryDelay ?? 250;
    return {
      name: "polling",
      open({ url, token }, handlers) {
        let endpoint;
        try {
          endpoint = pollingUrl(url);
        } catch (err) {
          queueMicrotask(() => handlers.onClose({ code: 1006, reason: String(err), opened: false }));
          return { send() {
          }, close() {
          } };
        }
        const headers = {};
        if (token !== void 0) headers["authorization"] = `Bearer ${token}`;
        let opened = false;
        let done = false;
        let session = "";
        let cursor = 0;
        let holdMs = 25e3;
        let idleMs = 6e4;
        let seq = 0;
        let outgoing = [];
        let sending = false;
        const aborts = /* @__PURE__ */ new Set();
        const finish = (code, reason) => {
          if (done) return;
          done = true;
          for (const a of aborts) a.abort();
          aborts.clear();
          handlers.onClose({ code, reason, opened });
        };
        const request = async (target, init, timeout) => {
          const abort = new AbortController();
          aborts.add(abort);
          const timer = setTimeout(() => abort.abort(), timeout);
          try {
            return await doFetch(target, { ...init, signal: abort.signal, cache: "no-store" });
          } finally {
            clearTimeout(timer);
            aborts.delete(abort);
          }
        };
        const deliver = (frames) => {
          for (const frame of frames) {
            if (done) return;
            handlers.onMessage(JSON.stringify(frame));
          }
        };
        const persist = async (attempt) => {
          let delay = firstDelay;
          const giveUp = Date.now() + idleMs;
          for (; ; ) {
            if (done) return void 0;
            try {
              return await attempt();
            } catch (err) {
              if (done) return void 0;
              const failed = err instanceof Failed ? err : void 0;
              if (failed && failed.status === 404) {
                finish(1006, "the polling session expired");
                return void 0;
              }
              const retryable = !failed || failed.status === 409 || failed.status >= 500;
              if (!retryable || Date.now() > giveUp) {
                finish(1006, failed ? failed.message : `polling failed: ${String(err)}`);
                return void 0;
              }
            }
            await new Promise((r) => setTimeout(r, delay));
            delay = Math.min(delay * 2, 4e3);
          }
        };
        const pollLoop = async () => {
          while (!done) {
            const answer = await persist(async () => {
              const response = await request(
                `${endpoint}/${session}?ack=${cursor}`,
                { method: "GET", headers },
                holdMs + margin
              );
              if (!response.ok) throw await errorOf(response);
              return await response.json();
            });
            if (!answer || done) return;
            cursor = answer.cursor;
            deliver(answer.frames);
            if (answer.closed) {
              finish(answer.closed.code, answer.closed.reason);
              return;
            }
          }
        };
        const flush = async () => {
          if (sending || done || outgoing.length === 0) return;
          sending = true;
          try {
            while (!done && outgoing.length > 0) {
              const batch = outgoing.slice(0, MAX_FRAMES_PER_SEND);
              seq += 1;
              const body = JSON.stringify({ seq, frames: batch.map((text) => JSON.parse(text)) });
              const sent = await persist(async () => {
                const response = await request(
                  `${endpoint}/${session}`,
                  { method: "POST", headers: { ...headers, "content-type": "application/json" }, body },
                  3e4
                );
                if (!response.ok) throw await errorOf(response);
                return await response.json();
              });
              if (!sent) return;
              outgoing = outgoing.slice(batch.length);
            }
          } finally {
            sending = false;
          }
        };
        void (async () => {
          let opening;
          try {
            const response = await request(endpoint, { method: "POST", headers }, 3e4);
            if (!response.ok) {
              const failed = await errorOf(response);
              finish(failed.status === 401 ? 4001 : 1006, failed.message);
              return;
            }
            opening = await response.json();
          } catch (err) {
            finish(1006, `polling failed to open: ${String(err)}`);
            return;
          }
          if (done) {
            void doFetch(`${endpoint}/${opening.session}`, { method: "DELETE", headers }).catch(() => {
            });
            return;
          }
          session = opening.session;
          cursor = opening.cursor;
          holdMs = opening.holdMs;
          idleMs = opening.idleMs;
          opened = true;
          handlers.onOpen();
          deliver(opening.frames);
          void flush();
          void pollLoop();
        })();
        return {
          send(text) {
            if (done) throw new Error("the polling session is closed");
            outgoing.push(text);
            if (opened) void flush();
          },
          close(code = 1e3, reason = "") {
            if (done) return;
            if (session) {
              void doFetch(`${endpoint}/${session}`, { method: "DELETE", headers, keepalive: true }).catch(
                () => {
                }
              );
            }
            finish(code, reason);
          }
        };
      }
    };
  }

  // src/token.ts
  function tokenExpiry(token) {
    const parts = token.split(".");
    if (parts.length !== 3 || !parts[1]) return void 0;
    try {
      const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
      const padded = b64 + "=".repeat((4 - b64.length % 4) % 4);
      const claims = JSON.parse(atob(padded));
      if (claims && typeof claims === "object" && "exp" in claims) {
        const exp = claims.exp;
        if (typeof exp === "number" && Number.isFinite(exp)) return exp;
      }
    } catch {
    }
    return void 0;
  }

  // src/transport.ts
  function webSocketUrl(base, token) {
    const url = new URL(base);
    if (url.protocol === "http:") url.protocol = "ws:";
    else if (url.protocol === "https:") url.protocol = "wss:";
    else if (url.protocol !== "ws:" && url.protocol !== "wss:") {
      throw new TypeError(`a Herald URL must be http(s):// or ws(s)://, got ${base}`);
    }
    if (url.pathname === "" || url.pathname === "/") url.pathname = "/ws";
    if (token !== void 0) url.searchParams.set("token", token);
    return url.toString();
  }
  var OPEN = 1;
  function webSocketTransport(options = {}) {
    const Ctor = options.WebSocket ?? globalThis.WebSocket;
    if (!Ctor) {
      throw new Error(
        "no WebSocket implementation: this runtime has no global WebSocket, so pass one (in Node 20: the `ws` package, as `{ WebSocket }`)"
      );
    }
    return {
      name: "websocket",
      open({ url, token, tokenVia }, handlers) {
        const viaQuery = token !== void 0 && tokenVia === "query";
        const endpoint = webSocketUrl(url, viaQuery ? token : void 0);
        const protocols = token !== void 0 && tokenVia === "subprotocol" ? ["herald", `bearer.${token}`] : void 0;
        let opened = false;
        let done = false;
        const finish = (code, reason) => {
          if (done) return;
          done = true;
          handlers.onClose({ code, reason, opened });
        };
        let ws;
        try {
          ws = protocols ? new Ctor(endpoint, protocols) : new Ctor(endpoint);
        } catch (err) {
          queueMicrotask(() => finish(1006, String(err)));
          return { send() {
          }, close() {
          } };
        }
        ws.onopen = () => {
          opened = true;
          handlers.onOpen();
        };
        ws.onmessage = (event) => {
          if (typeof event.data === "string") handlers.onMessage(event.data);
        };
        ws.onclose = (event) => finish(event.code || 1006, event.reason || "");
        ws.onerror = () => {
        };
        return {
          send(text) {
            if (ws.readyState === OPEN) ws.send(text);
            else throw new Error("the WebSocket is not open");
          },
          close(code = 1e3, reason = "") {
            try {
              ws.close(code, reason);
            } catch {
              ws.close();
            }
          }
        };
      }
    };
  }

  // src/client.ts
  var HeraldError = class extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
      this.name = "HeraldError";
    }
  };
  var userId = (user) => typeof user === "string" ? user : user.id;
  var userName = (user) => typeof user === "string" ? user : user.name;
  var Subscription = class extends Emitter {
    /** @internal */
    constructor(room, user, positionOrNull) {
      super();
      this.room = room;
      this.user = user;
      this.positionOrNull = positionOrNull;
      this.state = "joining";
      this.users = [];
      /** Whether the last join asked to resume. */
      this.wasRecovering = false;
      /** Whether the last join recovered everything it asked for. */
      this.recovered = false;
      /** Chats dropped because their offset had already been seen (a replay that overlapped). */
      this.duplicates = 0;
    }
    /** The epoch and last offset seen, or null before the first `room_joined`. */
    get position() {
      return this.positionOrNull ? { ...this.positionOrNull } : null;
    }
    /** @internal */
    fire(event, payload) {
      this.emit(event, payload);
    }
  };
  var CLOSE_TEXT = {
    1e3: "closed",
    1001: "server going away",
    1006: "connection lost",
    1007: "invalid UTF-8",
    1008: "policy (rate limited or slow consumer)",
    1009: "frame too big",
    1011: "server error",
    4e3: "no answer to ping",
    4001: "token expired"
  };
  function defaultTransports(WebSocket) {
    const transports = [];
    try {
      transports.push(webSocketTransport(WebSocket ? { WebSocket } : {}));
    } catch {
    }
    transports.push(pollingTransport());
    return transports;
  }
  function describeClose(close) {
    if (!close.opened) return `could not connect${close.reason ? `: ${close.reason}` : ""}`;
    const known = CLOSE_TEXT[close.code] ?? "closed";
    return `${known} (${close.code}${close.reason && close.reason !== known ? ` ${close.reason}` : ""})`;
  }
  var HeraldClient = class extends Emitter {
    constructor(url, options = {}) {
      super();
      this.state = "disconnected";
      this.clientId = null;
      this.capabilities = [];
      /** The current room, if any (joined, or being joined). */
      this.subscription = null;
      this.transportIndex = 0;
      this.anyOpened = false;
      this.failedOpens = 0;
      this.conn = null;
      this.generation = 0;
      this.attempt = 0;
      this.closedByUser = true;
      this.pongs = [];
      this.peerWaiters = [];
      this.queue = [];
      /** Positions of rooms this client has been in, for joining them again later. */
      this.positions = /* @__PURE__ */ new Map();
      this.url = url;
      this.opts = options;
      this.transports = options.transports ?? defaultTransports(options.WebSocket);
      if (this.transports.length === 0) throw new TypeError("transports must not be empty");
      backoffDelay(0, this.backoffOptions());
    }
    /** The name of the transport in use (or to be tried next). */
    get transport() {
      return this.transports[this.transportIndex].name;
    }
    /** Sends waiting for a connection. */
    get queued() {
      return this.queue.length;
    }
    connect() {
      if (!this.closedByUser) return;
      this.closedByUser = false;
      this.attempt = 0;
      this.open("connect called");
    }
    /** Closes the connection and stops reconnecting; `connect` starts again (and resumes). */
    close() {
      if (this.closedByUser) return;
      this.closedByUser = true;
      this.stopTimers();
      clearTimeout(this.retryTimer);
      const conn = this.conn;
      this.conn = null;
      this.generation += 1;
      conn?.close(1e3, "client closed");
      this.lostConnection();
      this.setState("disconnected", "closed by the client");
      this.emit("disconnected", { reason: "closed by the client" });
    }
    /**
     * Drops the current connection and connects again at once, resuming the room: what an app
     * does when it knows the network changed.
     */
    reconnect(reason = "reconnect requested", code = 4e3) {
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
    join(room, options = {}) {
      const user = options.user ?? this.opts.user;
      if (user === void 0) throw new TypeError("join needs a user: pass options.user or ClientOptions.user");
      const current = this.subscription;
      if (current && current.room === room && current.state !== "left" && options.since === void 0 && JSON.stringify(current.user) === JSON.stringify(user)) {
        return current;
      }
      if (current && current.state !== "left") this.endSubscription(current, `joined ${room}`);
      const saved = this.positions.get(room);
      const since = options.since ? { epoch: options.since.epoch, offset: options.since.offset } : saved ? { ...saved } : null;
      const sub = new Subscription(room, user, since);
      this.subscription = sub;
      if (this.state === "connected") this.sendJoin(sub);
      return sub;
    }
    /** Leaves the current room. */
    leave() {
      const sub = this.subscription;
      if (!sub) return;
      this.subscription = null;
      if (this.state === "connected" && this.conn) this.sendNow({ type: "leave" });
      this.endSubscription(sub, "left");
    }
    /** Says something in the current room (queued while disconnected or rejoining). */
    chat(text) {
      return this.send({ type: "chat", text });
    }
    /** Typing is volatile: dropped, not queued, while disconnected. */
    typing(isTyping) {
      if (!this.ready()) return "dropped";
      return this.send({ type: "typing", isTyping });
    }
    /** A private message to every connection of user `target` (queued while disconnected). */
    privateMessage(target, text) {
      return this.send({ type: "private_message", target, text });
    }
    /**
     * Resolves when the server answers a ping, which it does after everything it had queued for
     * this connection: a barrier for "everything sent before now has arrived".
     */
    ping() {
      if (this.state !== "connected" || !this.conn) {
        return Promise.reject(new HeraldError("not_connected", "ping needs a connection"));
      }
      return new Promise((resolve, reject) => {
        this.pongs.push({ resolve, reject });
        this.sendNow({ type: "ping" });
      });
    }
    /**
     * Asks the server for the room's other members as WebRTC peers (capability `signaling`):
     * their peer ids, this connection's `polite` role toward each, and the ICE servers to use.
     * Rejects with `HeraldError` `not_connected`, `unsupported` (the server did not announce
     * `signaling`), `not_in_room` (the server's answer outside a room) or `disconnected`.
     */
    peers() {
      if (this.state !== "connected" || !this.conn) {
        return Promise.reject(new HeraldError("not_connected", "peers needs a connection"));
      }
      if (!this.capabilities.includes("signaling")) {
        return Promise.reject(new HeraldError("unsupported", "the server did not announce signaling"));
      }
      return new Promise((resolve, reject) => {
        this.peerWaiters.push({ resolve, reject });
        this.sendNow({ type: "peers" });
      });
    }
    /**
     * Sends a WebRTC signal to one member of the room, by peer id. Signals are never queued: a
     * peer id is only good for one connection, so while disconnected or (re)joining the signal is
     * `'dropped'`. Throws `HeraldError` `unsupported` when the server did not announce `signaling`.
     */
    signal(frame) {
      if (!this.ready()) return "dropped";
      if (!this.capabilities.includes("signaling")) {
        throw new HeraldError("unsupported", "the server did not announce signaling");
      }
      this.sendNow(frame);
      return "sent";
    }
    /**
     * Sends one frame now, when connected, whatever the room's state (for modules over this
     * connection, such as `documents.ts` and `streams.ts`, that reopen and send again themselves
     * on `connected`); `'dropped'` otherwise.
     */
    sendFrame(frame) {
      if (this.state !== "connected" || !this.conn) return "dropped";
      this.sendNow(frame);
      return "sent";
    }
    // ------------------------------------------------------------------ sending
    ready() {
      if (this.state !== "connected" || !this.conn) return false;
      const sub = this.subscription;
      return !sub || sub.state !== "joining";
    }
    send(frame) {
      if (this.ready() && this.queue.length === 0) {
        this.sendNow(frame);
        return "sent";
      }
      const max = this.opts.offlineQueueSize ?? 100;
      if (this.queue.length >= max) {
        throw new HeraldError(
          "offline_queue_full",
          `${this.queue.length} sends are already waiting for a connection`
        );
      }
      this.queue.push(frame);
      return "queued";
    }
    sendNow(frame) {
      this.conn?.send(JSON.stringify(frame));
    }
    flush() {
      while (this.queue.length > 0 && this.ready()) {
        const frame = this.queue[0];
        try {
          this.sendNow(frame);
        } catch {
          return;
        }
        this.queue.shift();
      }
    }
    sendJoin(sub) {
      const frame = { type: "join", room: sub.room, user: sub.user };
      const position = sub.positionOrNull;
      sub.wasRecovering = false;
      if (this.capabilities.includes("recovery") && position && typeof position.epoch === "string") {
        frame.since = { epoch: position.epoch, offset: position.offset };
        sub.wasRecovering = true;
      }
      if (this.opts.presence === "diff" && this.capabilities.includes("presence-diff")) {
        frame.presence = "diff";
      }
      sub.state = "joining";
      this.sendNow(frame);
    }
    // ------------------------------------------------------------------ connecting
    backoffOptions() {
      return {
        minDelay: this.opts.minReconnectDelay ?? DEFAULT_MIN_DELAY_MS,
        maxDelay: this.opts.maxReconnectDelay ?? DEFAULT_MAX_DELAY_MS,
        ...this.opts.random ? { random: this.opts.random } : {}
      };
    }
    setState(state, reason, code) {
      if (state === this.state) return;
      const previous = this.state;
      this.state = state;
      this.emit("state", code === void 0 ? { state, previous, reason } : { state, previous, reason, code });
    }
    open(reason) {
      clearTimeout(this.retryTimer);
      this.setState("connecting", reason);
      const generation = ++this.generation;
      const transport = this.transports[this.transportIndex];
      const start = (token) => {
        if (generation !== this.generation) return;
        this.token = token;
        this.conn = transport.open(
          {
            url: this.url,
            tokenVia: this.opts.tokenVia ?? "subprotocol",
            ...token !== void 0 ? { token } : {}
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
            }
          }
        );
      };
      if (!this.opts.getToken) {
        start(void 0);
        return;
      }
      Promise.resolve().then(() => this.opts.getToken()).then((token) => {
        if (typeof token !== "string" || token === "") {
          throw new Error("getToken returned no token");
        }
        start(token);
      }).catch((err) => {
        if (generation !== this.generation) return;
        this.generation += 1;
        this.emit("error", { code: "token", message: `getToken failed: ${String(err)}`, source: "client" });
        if (this.closedByUser) return;
        this.retry({ code: 1006, reason: "no token", opened: false });
      });
    }
    /** Drops the current connection without waiting for its close handshake. */
    abandon(code, reason) {
      const conn = this.conn;
      this.conn = null;
      this.generation += 1;
      this.stopTimers();
      if (conn) {
        conn.close(code, reason);
        this.lostConnection();
      }
    }
    onClosed(close) {
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
    lostConnection() {
      const waiters = this.pongs;
      this.pongs = [];
      for (const w of waiters) w.reject?.(new HeraldError("disconnected", "the connection closed before the pong"));
      const peerWaiters = this.peerWaiters;
      this.peerWaiters = [];
      for (const w of peerWaiters) w.reject(new HeraldError("disconnected", "the connection closed before the peers answer"));
      const sub = this.subscription;
      if (sub && sub.state === "joined") sub.state = "joining";
      this.clientId = null;
    }
    retry(close) {
      const reason = describeClose(close);
      const immediate = close.opened && close.code === 4001 && this.opts.getToken !== void 0;
      const delay = immediate ? 0 : backoffDelay(this.attempt, this.backoffOptions());
      const attempt = this.attempt;
      this.attempt += 1;
      this.setState("connecting", reason, close.code);
      this.emit("connecting", { reason, code: close.code, attempt, delay, transport: this.transport });
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        if (!this.closedByUser) this.open(reason);
      }, delay);
    }
    stopTimers() {
      clearTimeout(this.refreshTimer);
      clearInterval(this.pingTimer);
      clearTimeout(this.pongTimer);
      this.refreshTimer = void 0;
      this.pingTimer = void 0;
      this.pongTimer = void 0;
    }
    startTimers() {
      const every = this.opts.pingInterval ?? 2e4;
      if (every > 0 && this.capabilities.includes("app-ping")) {
        this.pingTimer = setInterval(() => {
          if (!this.conn) return;
          this.pongs.push({});
          this.sendNow({ type: "ping" });
          if (this.pongTimer === void 0) {
            this.pongTimer = setTimeout(() => {
              this.pongTimer = void 0;
              if (this.closedByUser) return;
              this.abandon(4e3, "no answer to ping");
              this.retry({ code: 4e3, reason: "no answer to ping", opened: true });
            }, this.opts.pongTimeout ?? 1e4);
          }
        }, every);
      }
      const exp = this.token !== void 0 ? tokenExpiry(this.token) : void 0;
      if (exp !== void 0 && this.opts.getToken) {
        const left = exp * 1e3 - Date.now();
        const margin = this.opts.tokenRefreshMargin ?? 3e4;
        const delay = Math.max(left - margin, left / 2, 0);
        this.refreshTimer = setTimeout(() => this.reconnect("token refresh", 1e3), delay);
      }
    }
    // ------------------------------------------------------------------ receiving
    onText(text) {
      let frame;
      try {
        const parsed = JSON.parse(text);
        if (!parsed || typeof parsed !== "object" || typeof parsed.type !== "string") {
          throw new Error("not an object with a string type");
        }
        frame = parsed;
      } catch (err) {
        this.emit("error", { code: "bad_frame", message: `unreadable frame: ${String(err)}`, source: "client" });
        return;
      }
      clearTimeout(this.pongTimer);
      this.pongTimer = void 0;
      this.emit("frame", frame);
      switch (frame.type) {
        case "welcome":
          return this.onWelcome(frame);
        case "room_joined":
          return this.onRoomJoined(frame);
        case "room_resumed":
          return this.onRoomResumed(frame);
        case "room_left": {
          const sub = this.subscription;
          if (sub && sub.room === frame.room && sub.state !== "joining") {
            this.subscription = null;
            this.endSubscription(sub, "left");
          }
          return;
        }
        case "chat":
          return this.onChat(frame);
        case "typing": {
          const sub = this.current(frame.room);
          if (!sub) return;
          sub.fire("typing", frame);
          this.emit("typing", frame);
          return;
        }
        case "user_joined": {
          const sub = this.current(frame.room);
          if (!sub) return;
          sub.users = frame.users;
          sub.fire("presence", { users: frame.users, joined: frame.user });
          this.emit("user_joined", frame);
          return;
        }
        case "user_left": {
          const sub = this.current(frame.room);
          if (!sub) return;
          const gone = userId(frame.user);
          sub.users = sub.users.filter((u) => userId(u) !== gone);
          sub.fire("presence", { users: sub.users, left: frame.user });
          this.emit("user_left", frame);
          return;
        }
        case "presence_diff": {
          const sub = this.current(frame.room);
          if (!sub) return;
          for (const joined of frame.joins) {
            sub.users = [...sub.users, joined];
            sub.fire("presence", { users: sub.users, joined });
            this.emit("user_joined", { type: "user_joined", user: joined, users: sub.users, room: frame.room });
          }
          for (const left of frame.leaves) {
            const gone = userId(left);
            sub.users = sub.users.filter((u) => userId(u) !== gone);
            sub.fire("presence", { users: sub.users, left });
            this.emit("user_left", { type: "user_left", user: left, room: frame.room });
          }
          return;
        }
        case "presence_state": {
          const sub = this.current(frame.room);
          if (!sub) return;
          sub.users = frame.users;
          sub.fire("presence", { users: sub.users });
          return;
        }
        case "private_message":
          this.emit("private_message", frame);
          return;
        case "notification":
          this.emit("notification", frame.content);
          return;
        case "pong": {
          const waiter = this.pongs.shift();
          waiter?.resolve?.();
          return;
        }
        case "peers": {
          this.peerWaiters.shift()?.resolve(frame);
          this.emit("peers", frame);
          return;
        }
        case "offer":
          this.emit("offer", frame);
          this.emit("signal", frame);
          return;
        case "answer":
          this.emit("answer", frame);
          this.emit("signal", frame);
          return;
        case "ice_candidate":
          this.emit("ice_candidate", frame);
          this.emit("signal", frame);
          return;
        case "hangup":
          this.emit("hangup", frame);
          this.emit("signal", frame);
          return;
        case "error":
          return this.onError(frame);
        default:
          return;
      }
    }
    /** The current subscription if `room` (absent on core-only servers) is about it. */
    current(room) {
      const sub = this.subscription;
      if (!sub || sub.state === "left") return null;
      if (room !== void 0 && room !== null && room !== sub.room) return null;
      return sub;
    }
    onWelcome(frame) {
      this.clientId = frame.clientId;
      this.capabilities = frame.capabilities ?? [];
      this.attempt = 0;
      this.setState("connected", `connected over ${this.transport}`);
      const event = {
        clientId: frame.clientId,
        transport: this.transport,
        capabilities: this.capabilities
      };
      if (frame.protocol !== void 0) event.protocol = frame.protocol;
      this.emit("connected", event);
      this.startTimers();
      const sub = this.subscription;
      if (sub && sub.state !== "left") this.sendJoin(sub);
      else this.flush();
    }
    onRoomJoined(frame) {
      const sub = this.subscription;
      if (!sub || sub.room !== frame.room || sub.state === "left") return;
      sub.recovered = frame.recovered === true;
      const epoch = frame.epoch ?? null;
      if (sub.recovered && sub.positionOrNull) {
        sub.positionOrNull.epoch = epoch;
      } else {
        sub.positionOrNull = { epoch, offset: frame.offset ?? 0 };
      }
      this.positions.set(sub.room, sub.positionOrNull);
      sub.state = "joined";
      sub.users = frame.users;
      const event = {
        room: sub.room,
        users: frame.users,
        wasRecovering: sub.wasRecovering,
        recovered: sub.recovered,
        position: { ...sub.positionOrNull }
      };
      sub.fire("joined", event);
      this.emit("joined", event);
      this.flush();
    }
    /**
     * Capability `recovery`: the server resumed the room on a connection that stayed open. With
     * `recovered: true` the missed chats follow (they advance the position as any chat does);
     * with `false` some were lost, and the position is the server's. Emitted as a resume's
     * `joined` (`wasRecovering: true`), so a UI can say that messages may be missing.
     */
    onRoomResumed(frame) {
      const sub = this.current(frame.room);
      if (!sub || sub.state !== "joined") return;
      sub.wasRecovering = true;
      sub.recovered = frame.recovered;
      const position = sub.positionOrNull;
      if (frame.recovered && position) {
        position.epoch = frame.epoch;
      } else {
        sub.positionOrNull = { epoch: frame.epoch, offset: frame.offset };
        this.positions.set(sub.room, sub.positionOrNull);
      }
      const event = {
        room: sub.room,
        users: sub.users,
        wasRecovering: true,
        recovered: frame.recovered,
        position: { ...sub.positionOrNull },
        inPlace: true
      };
      sub.fire("joined", event);
      this.emit("joined", event);
    }
    onChat(frame) {
      const sub = this.current(frame.room);
      if (!sub) return;
      const position = sub.positionOrNull;
      if (typeof frame.offset === "number" && position) {
        if (frame.offset <= position.offset) {
          sub.duplicates += 1;
          return;
        }
        position.offset = frame.offset;
      }
      sub.fire("chat", frame);
      this.emit("chat", frame);
    }
    onError(frame) {
      if (frame.code === "not_in_room") {
        this.peerWaiters.shift()?.reject(new HeraldError(frame.code, frame.message));
      }
      this.emit("error", { code: frame.code, message: frame.message, source: "server" });
      const sub = this.subscription;
      const refusesJoin = frame.code === "forbidden" || frame.code === "invalid_message" && (frame.message.startsWith("Invalid join message") || frame.message.includes("user object"));
      if (refusesJoin && sub && sub.state === "joining") {
        this.subscription = null;
        this.endSubscription(sub, `forbidden: ${frame.message}`);
        this.flush();
      }
    }
    endSubscription(sub, reason) {
      if (sub.state === "left") return;
      sub.state = "left";
      sub.fire("left", { room: sub.room, reason });
      this.emit("left", { room: sub.room, reason });
    }
  };

  // src/events.ts
  var KINDS = ["connect", "notification", "update", "stock_update", "news"];
  var CLOSED = 2;
  var HeraldEvents = class extends Emitter {
    constructor(url, options = {}) {
      super();
      this.state = "disconnected";
      this.attempt = 0;
      this.stopped = true;
      this.generation = 0;
      this.source = null;
      this.abort = null;
      this.base = url;
      this.opts = options;
      this.lastEventId = options.lastEventId;
      const globals = globalThis;
      this.EventSourceCtor = options.EventSource === null ? void 0 : options.EventSource ?? globals.EventSource;
      this.fetchImpl = options.fetch ?? globals.fetch?.bind(globalThis);
      if (!this.EventSourceCtor && !this.fetchImpl) {
        throw new Error("no EventSource and no fetch in this runtime: pass options.fetch");
      }
    }
    /** Which reader is used: `eventsource` or `fetch`. */
    get reader() {
      return this.EventSourceCtor ? "eventsource" : "fetch";
    }
    connect() {
      if (!this.stopped) return this;
      this.stopped = false;
      this.attempt = 0;
      void this.open("connect called");
      return this;
    }
    close() {
      if (this.stopped) return;
      this.stopped = true;
      this.generation += 1;
      clearTimeout(this.timer);
      this.source?.close();
      this.source = null;
      this.abort?.abort();
      this.abort = null;
      this.setState("disconnected", "closed by the client");
    }
    setState(state, reason) {
      if (state === this.state) return;
      const previous = this.state;
      this.state = state;
      this.emit("state", { state, previous, reason });
    }
    url(token, withLastId) {
      const url = new URL("/events", this.base.replace(/^ws/, "http"));
      if (this.opts.userId !== void 0) url.searchParams.set("userId", this.opts.userId);
      if (token !== void 0) url.searchParams.set("token", token);
      if (withLastId && this.lastEventId !== void 0) url.searchParams.set("lastEventId", this.lastEventId);
      return url.toString();
    }
    deliver(kind, data, id) {
      if (!KINDS.includes(kind)) return;
      let payload;
      try {
        payload = JSON.parse(data);
      } catch {
        this.emit("error", { code: "bad_event", message: `unreadable ${kind} event` });
        return;
      }
      if (id) this.lastEventId = id;
      if (kind === "connect") {
        this.attempt = 0;
        this.setState("connected", "stream open");
      }
      this.emit(kind, payload);
    }
    retry(reason) {
      if (this.stopped) return;
      this.generation += 1;
      const delay = backoffDelay(this.attempt, {
        minDelay: this.opts.minReconnectDelay ?? DEFAULT_MIN_DELAY_MS,
        maxDelay: this.opts.maxReconnectDelay ?? DEFAULT_MAX_DELAY_MS,
        ...this.opts.random ? { random: this.opts.random } : {}
      });
      this.attempt += 1;
      this.setState("connecting", reason);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.open(reason), delay);
    }
    async open(reason) {
      this.setState("connecting", reason);
      const generation = ++this.generation;
      let token;
      if (this.opts.getToken) {
        try {
          token = await this.opts.getToken();
        } catch (err) {
          if (generation !== this.generation) return;
          this.emit("error", { code: "token", message: `getToken failed: ${String(err)}` });
          this.retry("no token");
          return;
        }
        if (generation !== this.generation) return;
      }
      if (this.EventSourceCtor) this.openEventSource(generation, token);
      else await this.readWithFetch(generation, token);
    }
    openEventSource(generation, token) {
      const source = new this.EventSourceCtor(this.url(token, true));
      this.source = source;
      for (const kind of KINDS) {
        source.addEventListener(kind, (event) => {
          if (generation === this.generation) this.deliver(kind, event.data, event.lastEventId);
        });
      }
      source.onerror = () => {
        if (generation !== this.generation) return;
        if (source.readyState === CLOSED) {
          this.source = null;
          this.retry("stream refused");
        } else {
          this.setState("connecting", "stream lost, the browser is reconnecting");
        }
      };
    }
    async readWithFetch(generation, token) {
      const abort = new AbortController();
      this.abort = abort;
      const headers = { accept: "text/event-stream" };
      if (token !== void 0) headers.authorization = `Bearer ${token}`;
      if (this.lastEventId !== void 0) headers["last-event-id"] = this.lastEventId;
      let reason = "stream ended";
      try {
        const response = await this.fetchImpl(this.url(void 0, false), {
          headers,
          signal: abort.signal,
          cache: "no-store"
        });
        if (!response.ok || !response.body) {
          reason = `stream refused (HTTP ${response.status})`;
          if (generation === this.generation) this.emit("error", { code: `http_${response.status}`, message: reason });
          await response.body?.cancel().catch(() => {
          });
        } else {
          await this.parse(response.body, generation);
        }
      } catch (err) {
        reason = `stream lost (${String(err)})`;
      }
      if (generation === this.generation) this.retry(reason);
    }
    /** Reads `text/event-stream` blocks: `event:`, `data:`, `id:` lines up to a blank line. */
    async parse(body, generation) {
      const reader = body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let kind = "";
      let data = [];
      let id;
      for (; ; ) {
        const { done, value } = await reader.read();
        if (done || generation !== this.generation) {
          await reader.cancel().catch(() => {
          });
          return;
        }
        buffer += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          let line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (line === "") {
            if (data.length > 0) this.deliver(kind || "message", data.join("\n"), id);
            kind = "";
            data = [];
            id = void 0;
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value2 = colon < 0 ? "" : line.slice(colon + 1);
          if (value2.startsWith(" ")) value2 = value2.slice(1);
          if (field === "event") kind = value2;
          else if (field === "data") data.push(value2);
          else if (field === "id" && !value2.includes("\0")) id = value2;
        }
      }
    }
  };

  // src/peer.ts
  function rtcIceServers(servers) {
    return servers.map((server) => {
      const out = { urls: [...server.urls] };
      if (typeof server.username === "string") out.username = server.username;
      if (typeof server.credential === "string") out.credential = server.credential;
      return out;
    });
  }
  function candidateInit(candidate) {
    const init = { candidate: candidate.candidate };
    if (typeof candidate.sdpMid === "string") init.sdpMid = candidate.sdpMid;
    if (typeof candidate.sdpMLineIndex === "number") init.sdpMLineIndex = candidate.sdpMLineIndex;
    if (typeof candidate.usernameFragment === "string") init.usernameFragment = candidate.usernameFragment;
    return init;
  }
  function candidateWire(candidate) {
    const json = candidate.toJSON();
    const out = { candidate: json.candidate ?? "" };
    if (typeof json.sdpMid === "string") out.sdpMid = json.sdpMid;
    if (typeof json.sdpMLineIndex === "number") out.sdpMLineIndex = json.sdpMLineIndex;
    if (typeof json.usernameFragment === "string") out.usernameFragment = json.usernameFragment;
    return out;
  }
  function describe(err) {
    return err instanceof Error ? err.message : String(err);
  }
  var PeerConnection = class extends Emitter {
    constructor(send, peerId, options) {
      super();
      this.send = send;
      this.peerId = peerId;
      this.closed = false;
      /** Offers ignored on glare (impolite side only). */
      this.ignoredOffers = 0;
      this.makingOffer = false;
      this.ignoreOffer = false;
      /** Remote candidates (null = end of candidates) waiting for a remote description. */
      this.pending = [];
      /** Incoming signals are applied one after the other, in the order they arrived. */
      this.chain = Promise.resolve();
      this.polite = options.polite;
      this.user = options.user;
      const Ctor = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
      if (!Ctor) {
        throw new HeraldError("unsupported", "no RTCPeerConnection here: pass options.RTCPeerConnection");
      }
      this.pc = new Ctor({ ...options.rtcConfig ?? {}, iceServers: options.iceServers ?? [] });
      this.pc.onnegotiationneeded = () => void this.negotiate();
      this.pc.onicecandidate = (event) => {
        this.signal({
          type: "ice_candidate",
          to: this.peerId,
          candidate: event.candidate ? candidateWire(event.candidate) : null
        });
      };
      this.pc.ondatachannel = (event) => this.emit("datachannel", event.channel);
      this.pc.onconnectionstatechange = () => this.emit("state", this.pc.connectionState);
    }
    /** Opens a DataChannel to the peer (which starts negotiation if needed). */
    createDataChannel(label, init) {
      return this.pc.createDataChannel(label, init);
    }
    /** Candidates from the peer not yet added because there was no remote description. */
    get pendingCandidates() {
      return this.pending.length;
    }
    /** Applies a signal from the peer (others are ignored). Signals are applied in order. */
    handle(frame) {
      if (frame.from !== this.peerId) return this.chain;
      this.polite = frame.polite;
      this.chain = this.chain.then(() => this.apply(frame)).catch(
        (err) => this.emit("error", { message: `${frame.type} from ${this.peerId}: ${describe(err)}`, cause: err })
      );
      return this.chain;
    }
    /** Ends the connection and tells the peer. */
    hangup(reason = "hung up") {
      if (this.closed) return;
      this.signal({ type: "hangup", to: this.peerId });
      this.shutdown(reason, false);
    }
    /** Ends the connection here without telling the peer (say, because it left the room). */
    close(reason = "closed") {
      this.shutdown(reason, false);
    }
    signal(frame) {
      if (this.closed) return;
      let result;
      try {
        result = this.send(frame);
      } catch (err) {
        this.emit("error", { message: `could not send ${frame.type}: ${describe(err)}`, cause: err });
        return;
      }
      this.emit("sent", { frame, result });
      if (result === "dropped") {
        this.emit("error", { message: `${frame.type} to ${this.peerId} dropped: not connected or not in the room` });
      }
    }
    async negotiate() {
      if (this.closed) return;
      try {
        this.makingOffer = true;
        await this.pc.setLocalDescription();
        const local = this.pc.localDescription;
        if (local && local.type === "offer") this.signal({ type: "offer", to: this.peerId, sdp: local.sdp });
      } catch (err) {
        this.emit("error", { message: `negotiation: ${describe(err)}`, cause: err });
      } finally {
        this.makingOffer = false;
      }
    }
    async apply(frame) {
      if (this.closed) return;
      switch (frame.type) {
        case "offer":
        case "answer": {
          const collision = frame.type === "offer" && (this.makingOffer || this.pc.signalingState !== "stable");
          this.ignoreOffer = !this.polite && collision;
          if (this.ignoreOffer) {
            this.ignoredOffers += 1;
            return;
          }
          const remote = { type: frame.type, sdp: frame.sdp };
          if (collision && this.pc.signalingState === "have-local-offer") {
            await Promise.all([
              this.pc.setLocalDescription({ type: "rollback" }),
              this.pc.setRemoteDescription(remote)
            ]);
          } else {
            await this.pc.setRemoteDescription(remote);
          }
          await this.addPending();
          if (frame.type === "offer") {
            await this.pc.setLocalDescription();
            const local = this.pc.localDescription;
            if (local) this.signal({ type: "answer", to: this.peerId, sdp: local.sdp });
          }
          return;
        }
        case "ice_candidate":
          if (!this.pc.remoteDescription) {
            this.pending.push(frame.candidate);
            return;
          }
          await this.addCandidate(frame.candidate);
          return;
        case "hangup":
          this.shutdown("the peer hung up", true);
          return;
      }
    }
    async addPending() {
      const waiting = this.pending;
      this.pending = [];
      for (const candidate of waiting) await this.addCandidate(candidate);
    }
    async addCandidate(candidate) {
      try {
        if (candidate === null) await this.pc.addIceCandidate();
        else await this.pc.addIceCandidate(candidateInit(candidate));
      } catch (err) {
        if (!this.ignoreOffer) throw err;
      }
    }
    shutdown(reason, remote) {
      if (this.closed) return;
      this.closed = true;
      this.pending = [];
      this.pc.close();
      this.emit("closed", { reason, remote });
    }
  };
  var PeerManager = class extends Emitter {
    constructor(client, options = {}) {
      super();
      this.client = client;
      this.options = options;
      /** The other members, as of the last `refresh()`. */
      this.peers = [];
      this.calls = /* @__PURE__ */ new Map();
      this.iceServers = options.iceServers ?? null;
      this.offSignal = client.on("signal", (frame) => this.onSignal(frame));
    }
    /** Asks the server for the room's peers (`client.peers()`), and keeps the answer. */
    async refresh() {
      const frame = await this.client.peers();
      this.peers = frame.peers;
      if (!this.options.iceServers) this.iceServers = rtcIceServers(frame.iceServers);
      this.emit("peers", frame.peers);
      return frame.peers;
    }
    /** The call with `peerId`, if there is one. */
    get(peerId) {
      return this.calls.get(peerId);
    }
    /** Every call in progress. */
    get active() {
      return [...this.calls.values()];
    }
    /**
     * Starts (or returns) the call with `peerId`, a peer of the last `refresh()`. Add a channel or
     * track to it to start negotiating.
     */
    call(peerId) {
      const existing = this.calls.get(peerId);
      if (existing) return existing;
      const peer = this.peers.find((p) => p.peerId === peerId);
      if (!peer) {
        throw new HeraldError("peer_not_found", `${peerId} is not among the room's peers (refresh() first)`);
      }
      return this.create(peerId, peer.polite, peer.user);
    }
    /** Hangs up every call and stops listening to the client. */
    close() {
      for (const call of [...this.calls.values()]) call.hangup("closed");
      this.offSignal();
    }
    create(peerId, polite, user) {
      const options = { polite, iceServers: this.iceServers ?? [] };
      if (user !== void 0) options.user = user;
      if (this.options.rtcConfig) options.rtcConfig = this.options.rtcConfig;
      if (this.options.RTCPeerConnection) options.RTCPeerConnection = this.options.RTCPeerConnection;
      const call = new PeerConnection((frame) => this.client.signal(frame), peerId, options);
      this.calls.set(peerId, call);
      call.on("closed", ({ reason, remote }) => {
        if (this.calls.get(peerId) === call) this.calls.delete(peerId);
        this.emit("ended", { peer: call, reason, remote });
      });
      return call;
    }
    onSignal(frame) {
      let call = this.calls.get(frame.from);
      if (!call) {
        if (frame.type !== "offer") return;
        call = this.create(frame.from, frame.polite, frame.user);
        this.emit("incoming", call);
      }
      void call.handle(frame);
    }
  };

  // src/documents.ts
  var codePoints = (s) => {
    let n = 0;
    for (const _ of s) n++;
    return n;
  };
  var Builder = class {
    constructor() {
      this.ops = [];
    }
    retain(n) {
      if (n <= 0) return this;
      const last = this.ops[this.ops.length - 1];
      if (last && "retain" in last) last.retain += n;
      else this.ops.push({ retain: n });
      return this;
    }
    insert(s) {
      if (s === "") return this;
      const ops = this.ops;
      const last = ops[ops.length - 1];
      const before = ops[ops.length - 2];
      if (last && "insert" in last) last.insert += s;
      else if (last && "delete" in last && before && "insert" in before) before.insert += s;
      else if (last && "delete" in last) ops.splice(ops.length - 1, 0, { insert: s });
      else ops.push({ insert: s });
      return this;
    }
    delete(n) {
      if (n <= 0) return this;
      const last = this.ops[this.ops.length - 1];
      if (last && "delete" in last) last.delete += n;
      else this.ops.push({ delete: n });
      return this;
    }
  };
  var len = (c) => "retain" in c ? c.retain : "delete" in c ? c.delete : codePoints(c.insert);
  var baseLength = (op) => op.reduce((n, c) => n + ("insert" in c ? 0 : len(c)), 0);
  var targetLength = (op) => op.reduce((n, c) => n + ("delete" in c ? 0 : len(c)), 0);
  var Reader = class {
    constructor(op) {
      this.op = op;
      this.i = 0;
      this.used = 0;
    }
    peek() {
      const c = this.op[this.i];
      if (!c) return null;
      const kind = "retain" in c ? "retain" : "insert" in c ? "insert" : "delete";
      return { kind, left: len(c) - this.used };
    }
    take(max = Infinity) {
      const c = this.op[this.i];
      if (!c) return null;
      const total = len(c);
      const n = Math.min(total - this.used, max);
      let piece;
      if ("insert" in c) piece = { insert: Array.from(c.insert).slice(this.used, this.used + n).join("") };
      else if ("retain" in c) piece = { retain: n };
      else piece = { delete: n };
      this.used += n;
      if (this.used === total) {
        this.i++;
        this.used = 0;
      }
      return piece;
    }
  };
  function apply(text, op) {
    const chars = Array.from(text);
    if (baseLength(op) !== chars.length) {
      throw new HeraldError("invalid_op", `the operation spans ${baseLength(op)} code points, the text has ${chars.length}`);
    }
    const out = [];
    let at = 0;
    for (const c of op) {
      if ("retain" in c) {
        out.push(chars.slice(at, at + c.retain).join(""));
        at += c.retain;
      } else if ("insert" in c) out.push(c.insert);
      else at += c.delete;
    }
    return out.join("");
  }
  function transform(a, b) {
    if (baseLength(a) !== baseLength(b)) throw new HeraldError("invalid_op", "transform of operations on different lengths");
    const a2 = new Builder();
    const b2 = new Builder();
    const ra = new Reader(a);
    const rb = new Reader(b);
    for (; ; ) {
      const pa = ra.peek();
      const pb = rb.peek();
      if (!pa && !pb) break;
      if (pa?.kind === "insert") {
        const s = ra.take().insert;
        a2.insert(s);
        b2.retain(codePoints(s));
        continue;
      }
      if (pb?.kind === "insert") {
        const s = rb.take().insert;
        a2.retain(codePoints(s));
        b2.insert(s);
        continue;
      }
      if (!pa || !pb) throw new HeraldError("invalid_op", "operations of different lengths");
      const m = Math.min(pa.left, pb.left);
      ra.take(m);
      rb.take(m);
      if (pa.kind === "retain" && pb.kind === "retain") {
        a2.retain(m);
        b2.retain(m);
      } else if (pa.kind === "delete" && pb.kind === "retain") a2.delete(m);
      else if (pa.kind === "retain" && pb.kind === "delete") b2.delete(m);
    }
    return [a2.ops, b2.ops];
  }
  function compose(a, b) {
    if (targetLength(a) !== baseLength(b)) throw new HeraldError("invalid_op", "compose of operations that do not follow each other");
    const out = new Builder();
    const ra = new Reader(a);
    const rb = new Reader(b);
    for (; ; ) {
      const pa = ra.peek();
      const pb = rb.peek();
      if (!pa && !pb) break;
      if (pa?.kind === "delete") {
        out.delete(ra.take().delete);
        continue;
      }
      if (pb?.kind === "insert") {
        out.insert(rb.take().insert);
        continue;
      }
      if (!pa || !pb) throw new HeraldError("invalid_op", "operations of different lengths");
      const m = Math.min(pa.left, pb.left);
      const piece = ra.take(m);
      rb.take(m);
      if (pb.kind === "retain") {
        if ("retain" in piece) out.retain(m);
        else if ("insert" in piece) out.insert(piece.insert);
      } else if ("retain" in piece) out.delete(m);
    }
    return out.ops;
  }
  function transformPosition(position, op) {
    let at = 0;
    let shift = 0;
    for (const c of op) {
      if (at > position) break;
      if ("retain" in c) at += c.retain;
      else if ("insert" in c) shift += codePoints(c.insert);
      else {
        shift -= Math.min(c.delete, Math.max(position - at, 0));
        at += c.delete;
      }
    }
    return Math.min(Math.max(position + shift, 0), targetLength(op));
  }
  function diff(before, after) {
    const a = Array.from(before);
    const b = Array.from(after);
    let start = 0;
    while (start < a.length && start < b.length && a[start] === b[start]) start++;
    let end = 0;
    while (end < a.length - start && end < b.length - start && a[a.length - 1 - end] === b[b.length - 1 - end]) end++;
    return new Builder().retain(start).delete(a.length - start - end).insert(b.slice(start, b.length - end).join("")).retain(end).ops;
  }
  var idCounter = 0;
  var SharedDocument = class extends Emitter {
    constructor(client, id, options = {}) {
      super();
      this.client = client;
      this.id = id;
      this.text = "";
      /** The last version the server confirmed. */
      this.version = 0;
      this.seq = 0;
      this.inFlight = null;
      this.buffer = null;
      this.opened = false;
      this.closed = false;
      this.offs = [];
      this.cursors = /* @__PURE__ */ new Map();
      this.pendingCursor = void 0;
      this.clientId = options.clientId ?? `c${Date.now().toString(36)}${(++idCounter).toString(36)}${Math.random().toString(36).slice(2, 8)}`;
      this.offs.push(client.on("frame", (frame) => this.onFrame(frame)));
      this.offs.push(client.on("connected", () => this.sendOpen()));
      if (client.state === "connected") this.sendOpen();
    }
    /** Whether nothing is in flight or buffered. */
    get synchronised() {
      return !this.inFlight && !this.buffer;
    }
    /** Applies a local edit and sends it (or buffers it while one is in flight). */
    edit(op) {
      this.text = apply(this.text, op);
      for (const c of this.cursors.values()) {
        if (c.cursor) c.cursor = { anchor: transformPosition(c.cursor.anchor, op), head: transformPosition(c.cursor.head, op) };
      }
      this.emit("change", { op, local: true, text: this.text });
      if (this.inFlight) {
        this.buffer = this.buffer ? compose(this.buffer, op) : op;
        return;
      }
      this.inFlight = { seq: ++this.seq, base: this.version, op };
      this.sendOp(this.inFlight);
    }
    insert(position, text) {
      const n = codePoints(this.text);
      this.edit(new Builder().retain(position).insert(text).retain(n - position).ops);
    }
    delete(position, count) {
      const n = codePoints(this.text);
      this.edit(new Builder().retain(position).delete(count).retain(n - position - count).ops);
    }
    /** Makes the text `next` (the smallest single-span edit), as an editor's input event does. */
    replace(next) {
      if (next === this.text) return;
      this.edit(diff(this.text, next));
    }
    /** Shows this client's cursor to the others (sent once nothing is in flight). */
    setCursor(selection) {
      this.pendingCursor = selection;
      this.flushCursor();
    }
    flushCursor() {
      if (this.pendingCursor === void 0 || !this.synchronised || !this.opened) return;
      const cursor = this.pendingCursor;
      this.pendingCursor = void 0;
      this.send({ type: "doc_cursor", doc: this.id, version: this.version, cursor });
    }
    /** Closes the document (others get `doc_left`) and stops listening. */
    close() {
      if (this.closed) return;
      this.closed = true;
      if (this.opened) this.send({ type: "doc_close", doc: this.id });
      for (const off of this.offs) off();
    }
    send(frame) {
      this.client.sendFrame(frame);
    }
    sendOpen() {
      if (this.closed) return;
      const frame = { type: "doc_open", doc: this.id };
      if (this.opened) frame.since = this.version;
      this.send(frame);
    }
    sendOp(out) {
      this.send({ type: "doc_op", doc: this.id, client: this.clientId, seq: out.seq, base: out.base, op: out.op });
    }
    onFrame(frame) {
      if (!("doc" in frame) || frame.doc !== this.id || this.closed) return;
      switch (frame.type) {
        case "doc_opened":
          return this.onOpened(frame);
        case "doc_ack":
          if (this.inFlight?.seq === frame.seq) this.acked(frame.version);
          return;
        case "doc_op":
          return this.onOp(frame.version, frame.op, frame.client, frame.seq);
        case "doc_cursor": {
          const cursor = frame.cursor ? this.toLocal(frame.cursor) : null;
          this.cursors.set(frame.peer, { peer: frame.peer, user: frame.user, cursor });
          this.emit("cursors", this.cursors);
          return;
        }
        case "doc_joined":
          this.cursors.set(frame.peer, { peer: frame.peer, user: frame.user, cursor: null });
          this.emit("cursors", this.cursors);
          return;
        case "doc_left":
          this.cursors.delete(frame.peer);
          this.emit("cursors", this.cursors);
          return;
        case "doc_error": {
          const error = { code: frame.code, message: frame.message };
          if (frame.seq !== void 0 && frame.seq !== null) error.seq = frame.seq;
          this.emit("error", error);
          return;
        }
        default:
          return;
      }
    }
    /** A server position at this client's version, in local coordinates. */
    toLocal(selection) {
      let s = selection;
      for (const op of [this.inFlight?.op, this.buffer]) {
        if (op) s = { anchor: transformPosition(s.anchor, op), head: transformPosition(s.head, op) };
      }
      return s;
    }
    onOpened(frame) {
      const first = !this.opened;
      this.opened = true;
      if (frame.ops && frame.recovered) {
        for (const c of frame.ops) this.onOp(c.version, c.op, c.client, c.seq);
      } else {
        const text = frame.text ?? "";
        const lost = !first && !this.synchronised;
        this.text = text;
        this.version = frame.version;
        this.inFlight = null;
        this.buffer = null;
        if (lost) this.emit("reset", { text, version: frame.version });
      }
      this.cursors.clear();
      for (const p of frame.participants) {
        this.cursors.set(p.peer, { peer: p.peer, user: p.user, cursor: p.cursor ? this.toLocal(p.cursor) : null });
      }
      this.emit("open", { text: this.text, version: this.version, recovered: frame.recovered ?? null });
      this.emit("cursors", this.cursors);
      if (this.inFlight) {
        this.inFlight = { seq: this.inFlight.seq, base: this.version, op: this.inFlight.op };
        this.sendOp(this.inFlight);
      }
      this.flushCursor();
    }
    onOp(version, op, client, seq) {
      if (version <= this.version) return;
      if (client === this.clientId && this.inFlight?.seq === seq) {
        this.acked(version);
        return;
      }
      let incoming = op;
      if (this.inFlight) {
        const [server, mine] = transform(incoming, this.inFlight.op);
        this.inFlight.op = mine;
        incoming = server;
      }
      if (this.buffer) {
        const [server, mine] = transform(incoming, this.buffer);
        this.buffer = mine;
        incoming = server;
      }
      this.text = apply(this.text, incoming);
      this.version = version;
      for (const c of this.cursors.values()) {
        if (c.cursor) c.cursor = { anchor: transformPosition(c.cursor.anchor, incoming), head: transformPosition(c.cursor.head, incoming) };
      }
      this.emit("change", { op: incoming, local: false, text: this.text });
    }
    acked(version) {
      const done = this.inFlight;
      this.inFlight = null;
      this.version = version;
      this.emit("ack", { seq: done.seq, version });
      if (this.buffer) {
        this.inFlight = { seq: ++this.seq, base: this.version, op: this.buffer };
        this.buffer = null;
        this.sendOp(this.inFlight);
      }
      this.flushCursor();
    }
  };

  // src/streams.ts
  var HeraldStream = class extends Emitter {
    constructor(client, stream, options = {}) {
      super();
      this.client = client;
      this.stream = stream;
      this.options = options;
      /** Recent points, oldest first (at most `keep`). */
      this.points = [];
      /** Recent window results, oldest first (at most 100). */
      this.windows = [];
      this.epoch = null;
      this.offset = 0;
      this.active = true;
      this.awaiting = false;
      this.stops = [];
      this.keep = options.keep ?? options.maxPoints ?? 1e3;
      this.stops.push(
        client.on("connected", () => this.send()),
        client.on("frame", (frame) => this.onFrame(frame))
      );
      if (client.state === "connected") this.send();
    }
    /** The last position seen: the stream's epoch and the offset of its last message. */
    get position() {
      return this.epoch === null ? null : { epoch: this.epoch, offset: this.offset };
    }
    /** Stops the subscription (the server answers `stream_unsubscribed`). */
    unsubscribe() {
      if (!this.active) return;
      this.active = false;
      for (const stop of this.stops) stop();
      this.client.sendFrame({ type: "stream_unsubscribe", stream: this.stream });
      this.emit("unsubscribed", { stream: this.stream });
    }
    send() {
      if (!this.active) return;
      const since = this.position ?? void 0;
      const sent = this.client.sendFrame({
        type: "stream_subscribe",
        stream: this.stream,
        ...this.options.maxPoints !== void 0 ? { maxPoints: this.options.maxPoints } : {},
        ...this.options.maxRate !== void 0 ? { maxRate: this.options.maxRate } : {},
        ...since ? { since } : {}
      });
      this.awaiting = sent === "sent";
    }
    onFrame(frame) {
      if (!this.active) return;
      switch (frame.type) {
        case "stream_subscribed":
          if (frame.stream !== this.stream) return;
          this.awaiting = false;
          this.epoch = frame.epoch;
          if (frame.recovered !== true) {
            this.points.splice(0, this.points.length, ...frame.points);
            this.windows.splice(0, this.windows.length, ...frame.windows);
            this.offset = frame.offset;
          }
          this.trim();
          this.emit("snapshot", {
            points: this.points,
            windows: this.windows,
            ...frame.recovered != null ? { recovered: frame.recovered } : {},
            ...frame.fields ? { fields: frame.fields } : {}
          });
          return;
        case "stream_point":
          if (frame.stream !== this.stream || frame.offset <= this.offset) return;
          this.offset = frame.offset;
          this.points.push({ timestamp: frame.timestamp, value: frame.value });
          this.trim();
          this.emit("point", frame);
          return;
        case "stream_window":
          if (frame.stream !== this.stream || frame.offset <= this.offset) return;
          this.offset = frame.offset;
          this.windows.push(frame.window);
          this.trim();
          this.emit("window", frame);
          return;
        case "error":
          if (this.awaiting && (frame.code.startsWith("stream_") || frame.code === "subscription_refused")) {
            this.awaiting = false;
            this.emit("error", { code: frame.code, message: frame.message, source: "server" });
          }
          return;
        default:
          return;
      }
    }
    trim() {
      if (this.points.length > this.keep) this.points.splice(0, this.points.length - this.keep);
      if (this.windows.length > 100) this.windows.splice(0, this.windows.length - 100);
    }
  };
  function subscribeStream(client, stream, options = {}) {
    return new HeraldStream(client, stream, options);
  }
  return __toCommonJS(index_exports);
})();
