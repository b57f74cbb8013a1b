/**
 * The seam between the client and the wire. A transport carries the protocol's JSON frames
 * (text in, text out) over one connection; the client does everything else (joins, recovery,
 * queueing, backoff). WebSocket is the only transport today. A long-polling transport (a later
 * server change) implements the same two interfaces and is passed in `transports`; the client
 * tries them in order and stays with the first that opens.
 */

/** How a connection ended. */
export interface TransportClose {
  /** The WebSocket close code (1006 when the connection failed or dropped without one). */
  code: number;
  reason: string;
  /** False when the connection never opened (refused, blocked upgrade, HTTP 401 ...). */
  opened: boolean;
}

export interface TransportHandlers {
  onOpen(): void;
  onMessage(text: string): void;
  /** Called exactly once per connection, whether it opened or not. */
  onClose(close: TransportClose): void;
}

/** One open (or opening) connection. */
export interface TransportConnection {
  send(text: string): void;
  /** Closes the connection; `onClose` still follows. */
  close(code?: number, reason?: string): void;
}

export interface TransportOpenOptions {
  /** The server's base URL, `http(s)://` or `ws(s)://`, with or without a path. */
  url: string;
  /** A token to present, if the client has one. */
  token?: string;
  /** Where the token goes: the `bearer.<token>` subprotocol (default) or `?token=`. */
  tokenVia: 'subprotocol' | 'query';
}

export interface Transport {
  /** A short name shown to users and in events (`websocket`, later `polling`). */
  readonly name: string;
  open(options: TransportOpenOptions, handlers: TransportHandlers): TransportConnection;
}

/** The part of the WebSocket API the client uses (the browser's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Turns a base URL into the WebSocket endpoint: `http://h/` -> `ws://h/ws`. */
export function webSocketUrl(base: string, token: string | undefined): string {
  const url = new URL(base);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new TypeError(`a Herald URL must be http(s):// or ws(s)://, got ${base}`);
  }
  if (url.pathname === '' || url.pathname === '/') url.pathname = '/ws';
  if (token !== undefined) url.searchParams.set('token', token);
  return url.toString();
}

const OPEN = 1;

/**
 * The WebSocket transport. In browsers it uses the global `WebSocket`; in Node 20 (which has
 * none) pass one, e.g. `webSocketTransport({ WebSocket: (await import('ws')).WebSocket })`.
 */
export function webSocketTransport(options: { WebSocket?: WebSocketConstructor } = {}): Transport {
  const Ctor =
    options.WebSocket ??
    (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Ctor) {
    throw new Error(
      'no WebSocket implementation: this runtime has no global WebSocket, so pass one ' +
        '(in Node 20: the `ws` package, as `{ WebSocket }`)',
    );
  }
  return {
    name: 'websocket',
    open({ url, token, tokenVia }, handlers) {
      const viaQuery = token !== undefined && tokenVia === 'query';
      const endpoint = webSocketUrl(url, viaQuery ? token : undefined);
      const protocols =
        token !== undefined && tokenVia === 'subprotocol' ? ['herald', `bearer.${token}`] : undefined;
      let opened = false;
      let done = false;
      const finish = (code: number, reason: string) => {
        if (done) return;
        done = true;
        handlers.onClose({ code, reason, opened });
      };
      let ws: WebSocketLike;
      try {
        ws = protocols ? new Ctor(endpoint, protocols) : new Ctor(endpoint);
      } catch (err) {
        // A constructor that throws (bad URL, blocked scheme) is a failed open.
        queueMicrotask(() => finish(1006, String(err)));
        return { send() {}, close() {} };
      }
      ws.onopen = () => {
        opened = true;
        handlers.onOpen();
      };
      ws.onmessage = (event) => {
        if (typeof event.data === 'string') handlers.onMessage(event.data);
        // Herald sends text frames only; anything else is ignored.
      };
      ws.onclose = (event) => finish(event.code || 1006, event.reason || '');
      // An error is always followed by a close event, which reports it.
      ws.onerror = () => {};
      return {
        send(text) {
          if (ws.readyState === OPEN) ws.send(text);
          else throw new Error('the WebSocket is not open');
        },
        close(code = 1000, reason = '') {
          try {
            ws.close(code, reason);
          } catch {
            ws.close();
          }
        },
      };
    },
  };
}
