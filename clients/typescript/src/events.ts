/**
 * Server-Sent Events from `GET /events`: notifications, updates (and the demo feeds), resumed
 * with Last-Event-ID after every reconnect so no notification is missed while the server still
 * holds it. Browsers use `EventSource`; runtimes without it (Node 20) read the stream with
 * `fetch`.
 */
import { backoffDelay, DEFAULT_MAX_DELAY_MS, DEFAULT_MIN_DELAY_MS } from './backoff.js';
import { Emitter } from './emitter.js';
import type { Connected, NewsItem, Notification, StockUpdate, Update } from './types.js';

export type EventStreamState = 'disconnected' | 'connecting' | 'connected';

export interface EventStreamEvents {
  state: { state: EventStreamState; previous: EventStreamState; reason: string };
  connect: Connected;
  notification: Notification;
  update: Update;
  stock_update: StockUpdate;
  news: NewsItem;
  error: { code: string; message: string };
}

/** The part of the browser's EventSource the helper uses. */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  addEventListener(type: string, listener: (event: { data: string; lastEventId?: string }) => void): void;
  close(): void;
}
export type EventSourceConstructor = new (url: string) => EventSourceLike;

export interface EventStreamOptions {
  /** Ties the stream to a user (`?userId=`); ignored by a server with authentication on. */
  userId?: string;
  /** A token for each (re)connection: `?token=` with EventSource, a Bearer header with fetch. */
  getToken?: () => string | Promise<string>;
  /** Resume after this event id (e.g. one saved in storage). */
  lastEventId?: string;
  /** An EventSource constructor; `null` forces the fetch reader. Default: the global one. */
  EventSource?: EventSourceConstructor | null;
  /** The fetch to use without EventSource. Default: the global one. */
  fetch?: typeof fetch;
  minReconnectDelay?: number;
  maxReconnectDelay?: number;
  random?: () => number;
}

const KINDS = ['connect', 'notification', 'update', 'stock_update', 'news'] as const;
type Kind = (typeof KINDS)[number];
const CLOSED = 2;

/** One SSE stream that reconnects by itself; `close` stops it. */
export class HeraldEvents extends Emitter<EventStreamEvents> {
  state: EventStreamState = 'disconnected';
  /** The id of the last notification or update received. */
  lastEventId: string | undefined;

  private readonly base: string;
  private readonly opts: EventStreamOptions;
  private readonly EventSourceCtor: EventSourceConstructor | undefined;
  private readonly fetchImpl: typeof fetch | undefined;
  private attempt = 0;
  private stopped = true;
  private generation = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private source: EventSourceLike | null = null;
  private abort: AbortController | null = null;

  constructor(url: string, options: EventStreamOptions = {}) {
    super();
    this.base = url;
    this.opts = options;
    this.lastEventId = options.lastEventId;
    const globals = globalThis as { EventSource?: EventSourceConstructor; fetch?: typeof fetch };
    this.EventSourceCtor =
      options.EventSource === null ? undefined : (options.EventSource ?? globals.EventSource);
    this.fetchImpl = options.fetch ?? globals.fetch?.bind(globalThis);
    if (!this.EventSourceCtor && !this.fetchImpl) {
      throw new Error('no EventSource and no fetch in this runtime: pass options.fetch');
    }
  }

  /** Which reader is used: `eventsource` or `fetch`. */
  get reader(): 'eventsource' | 'fetch' {
    return this.EventSourceCtor ? 'eventsource' : 'fetch';
  }

  connect(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    this.attempt = 0;
    void this.open('connect called');
    return this;
  }

  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.generation += 1;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
    this.abort?.abort();
    this.abort = null;
    this.setState('disconnected', 'closed by the client');
  }

  private setState(state: EventStreamState, reason: string): void {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit('state', { state, previous, reason });
  }

  private url(token: string | undefined, withLastId: boolean): string {
    const url = new URL('/events', this.base.replace(/^ws/, 'http'));
    if (this.opts.userId !== undefined) url.searchParams.set('userId', this.opts.userId);
    if (token !== undefined) url.searchParams.set('token', token);
    if (withLastId && this.lastEventId !== undefined) url.searchParams.set('lastEventId', this.lastEventId);
    return url.toString();
  }

  private deliver(kind: string, data: string, id: string | undefined): void {
    if (!(KINDS as readonly string[]).includes(kind)) return; // ping, and kinds newer than this
    let payload: unknown;
    try {
      payload = JSON.parse(data);
    } catch {
      this.emit('error', { code: 'bad_event', message: `unreadable ${kind} event` });
      return;
    }
    if (id) this.lastEventId = id;
    if (kind === 'connect') {
      this.attempt = 0;
      this.setState('connected', 'stream open');
    }
    this.emit(kind as Kind, payload as never);
  }

  private retry(reason: string): void {
    if (this.stopped) return;
    this.generation += 1;
    const delay = backoffDelay(this.attempt, {
      minDelay: this.opts.minReconnectDelay ?? DEFAULT_MIN_DELAY_MS,
      maxDelay: this.opts.maxReconnectDelay ?? DEFAULT_MAX_DELAY_MS,
      ...(this.opts.random ? { random: this.opts.random } : {}),
    });
    this.attempt += 1;
    this.setState('connecting', reason);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.open(reason), delay);
  }

  private async open(reason: string): Promise<void> {
    this.setState('connecting', reason);
    const generation = ++this.generation;
    let token: string | undefined;
    if (this.opts.getToken) {
      try {
        token = await this.opts.getToken();
      } catch (err) {
        if (generation !== this.generation) return;
        this.emit('error', { code: 'token', message: `getToken failed: ${String(err)}` });
        this.retry('no token');
        return;
      }
      if (generation !== this.generation) return;
    }
    if (this.EventSourceCtor) this.openEventSource(generation, token);
    else await this.readWithFetch(generation, token);
  }

  private openEventSource(generation: number, token: string | undefined): void {
    const source = new this.EventSourceCtor!(this.url(token, true));
    this.source = source;
    for (const kind of KINDS) {
      source.addEventListener(kind, (event) => {
        if (generation === this.generation) this.deliver(kind, event.data, event.lastEventId);
      });
    }
    source.onerror = () => {
      if (generation !== this.generation) return;
      if (source.readyState === CLOSED) {
        // The browser gave up (an HTTP error such as 401); reconnect with backoff and a new token.
        this.source = null;
        this.retry('stream refused');
      } else {
        // The browser reconnects by itself and sends Last-Event-ID.
        this.setState('connecting', 'stream lost, the browser is reconnecting');
      }
    };
  }

  private async readWithFetch(generation: number, token: string | undefined): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId;
    let reason = 'stream ended';
    try {
      const response = await this.fetchImpl!(this.url(undefined, false), {
        headers,
        signal: abort.signal,
        cache: 'no-store',
      });
      if (!response.ok || !response.body) {
        reason = `stream refused (HTTP ${response.status})`;
        if (generation === this.generation) this.emit('error', { code: `http_${response.status}`, message: reason });
        await response.body?.cancel().catch(() => {});
      } else {
        await this.parse(response.body, generation);
      }
    } catch (err) {
      reason = `stream lost (${String(err)})`;
    }
    if (generation === this.generation) this.retry(reason);
  }

  /** Reads `text/event-stream` blocks: `event:`, `data:`, `id:` lines up to a blank line. */
  private async parse(body: ReadableStream<Uint8Array>, generation: number): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let kind = '';
    let data: string[] = [];
    let id: string | undefined;
    for (;;) {
      const { done, value } = await reader.read();
      if (done || generation !== this.generation) {
        await reader.cancel().catch(() => {});
        return;
      }
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        let line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length > 0) this.deliver(kind || 'message', data.join('\n'), id);
          kind = '';
          data = [];
          id = undefined;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') kind = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id' && !value.includes('\0')) id = value;
      }
    }
  }
}
