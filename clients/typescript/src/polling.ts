/**
 * The long-polling transport (capability `long-polling`, PROTOCOL.md section 10): the
 * WebSocket's frames in JSON envelopes over plain HTTP requests, for networks and proxies that
 * block WebSocket upgrades. It implements the seam in transport.ts, so the client does the rest.
 *
 * Nothing is lost when a request or its answer is: the server keeps frames until a poll
 * acknowledges them (`ack` = the last frame number received), so a poll whose answer never came
 * is simply repeated with the same `ack`; sends are numbered (`seq`) and a retried send is
 * applied once. One poll and one send are in flight at a time; sends made meanwhile are batched.
 */
import type { Transport, TransportConnection } from './transport.js';
import type { ErrorResponse } from './generated/error-response.js';
import type { PollAnswer } from './generated/poll-answer.js';
import type { PollOpened } from './generated/poll-opened.js';
import type { PollSent } from './generated/poll-sent.js';

/** The part of `fetch` the transport uses (the global one by default). */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface PollingTransportOptions {
  /** The `fetch` to use (default: the global one). */
  fetch?: FetchLike;
  /**
   * How long past the server's hold time a poll may take before it is given up and repeated,
   * in ms (default 10 000).
   */
  pollMargin?: number;
  /** Pause before repeating a failed request, in ms (default 250, doubling up to 4 000). */
  retryDelay?: number;
}

/** Turns a base URL into the polling endpoint: `ws://h/ws` or `http://h/` -> `http://h/poll`. */
export function pollingUrl(base: string): string {
  const url = new URL(base);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  else if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`a Herald URL must be http(s):// or ws(s)://, got ${base}`);
  }
  let path = url.pathname.replace(/\/+$/, '');
  if (path.endsWith('/ws')) path = path.slice(0, -3);
  url.pathname = `${path}/poll`;
  url.search = '';
  url.hash = '';
  return url.toString();
}

/** Frames one send carries at most (the server's limit). */
const MAX_FRAMES_PER_SEND = 100;

/** A request that failed without an answer (network, abort) or with one it cannot use. */
class Failed extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

async function errorOf(response: Response): Promise<Failed> {
  let code: string | undefined;
  let message = `HTTP ${response.status}`;
  try {
    const body = (await response.json()) as ErrorResponse;
    code = body.error.code;
    message = `${message} ${code}: ${body.error.message}`;
  } catch {
    // not an error body (a proxy's page)
  }
  return new Failed(message, response.status, code);
}

/** The long-polling transport. */
export function pollingTransport(options: PollingTransportOptions = {}): Transport {
  const doFetch: FetchLike | undefined =
    options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch?.bind(globalThis);
  if (!doFetch) throw new Error('no fetch implementation: pass one as `fetch`');
  const margin = options.pollMargin ?? 10_000;
  const firstDelay = options.retryDelay ?? 250;
  return {
    name: 'polling',
    open({ url, token }, handlers): TransportConnection {
      let endpoint: string;
      try {
        endpoint = pollingUrl(url);
      } catch (err) {
        queueMicrotask(() => handlers.onClose({ code: 1006, reason: String(err), opened: false }));
        return { send() {}, close() {} };
      }
      const headers: Record<string, string> = {};
      if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
      let opened = false;
      let done = false;
      let session = '';
      let cursor = 0;
      let holdMs = 25_000;
      let idleMs = 60_000;
      let seq = 0;
      let outgoing: string[] = [];
      let sending = false;
      const aborts = new Set<AbortController>();

      const finish = (code: number, reason: string) => {
        if (done) return;
        done = true;
        for (const a of aborts) a.abort();
        aborts.clear();
        handlers.onClose({ code, reason, opened });
      };

      /** One request with an abort on `timeout`; the caller decides what a failure means. */
      const request = async (target: string, init: RequestInit, timeout: number): Promise<Response> => {
        const abort = new AbortController();
        aborts.add(abort);
        const timer = setTimeout(() => abort.abort(), timeout);
        try {
          return await doFetch(target, { ...init, signal: abort.signal, cache: 'no-store' });
        } finally {
          clearTimeout(timer);
          aborts.delete(abort);
        }
      };

      const deliver = (frames: unknown[]) => {
        for (const frame of frames) {
          if (done) return;
          handlers.onMessage(JSON.stringify(frame));
        }
      };

      /**
       * Runs `attempt` until it succeeds, repeating it after failures without an answer (and
       * after 409s: the server is still finishing the request given up on) for up to the
       * session's idle time; any other refusal ends the connection.
       */
      const persist = async <T>(attempt: () => Promise<T>): Promise<T | undefined> => {
        let delay = firstDelay;
        const giveUp = Date.now() + idleMs;
        for (;;) {
          if (done) return undefined;
          try {
            return await attempt();
          } catch (err) {
            if (done) return undefined;
            const failed = err instanceof Failed ? err : undefined;
            if (failed && failed.status === 404) {
              finish(1006, 'the polling session expired');
              return undefined;
            }
            const retryable = !failed || failed.status === 409 || failed.status >= 500;
            if (!retryable || Date.now() > giveUp) {
              finish(1006, failed ? failed.message : `polling failed: ${String(err)}`);
              return undefined;
            }
          }
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 4_000);
        }
      };

      const pollLoop = async () => {
        while (!done) {
          const answer = await persist(async () => {
            const response = await request(
              `${endpoint}/${session}?ack=${cursor}`,
              { method: 'GET', headers },
              holdMs + margin,
            );
            if (!response.ok) throw await errorOf(response);
            return (await response.json()) as PollAnswer;
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
            const body = JSON.stringify({ seq, frames: batch.map((text) => JSON.parse(text) as unknown) });
            const sent = await persist(async () => {
              const response = await request(
                `${endpoint}/${session}`,
                { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body },
                30_000,
              );
              if (!response.ok) throw await errorOf(response);
              return (await response.json()) as PollSent;
            });
            if (!sent) return;
            outgoing = outgoing.slice(batch.length);
          }
        } finally {
          sending = false;
        }
      };

      void (async () => {
        let opening: PollOpened;
        try {
          const response = await request(endpoint, { method: 'POST', headers }, 30_000);
          if (!response.ok) {
            const failed = await errorOf(response);
            finish(failed.status === 401 ? 4001 : 1006, failed.message);
            return;
          }
          opening = (await response.json()) as PollOpened;
        } catch (err) {
          finish(1006, `polling failed to open: ${String(err)}`);
          return;
        }
        if (done) {
          // Closed while opening: end the session the server just made.
          void doFetch(`${endpoint}/${opening.session}`, { method: 'DELETE', headers }).catch(() => {});
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
        send(text: string) {
          if (done) throw new Error('the polling session is closed');
          outgoing.push(text);
          if (opened) void flush();
        },
        close(code = 1000, reason = '') {
          if (done) return;
          if (session) {
            void doFetch(`${endpoint}/${session}`, { method: 'DELETE', headers, keepalive: true }).catch(
              () => {},
            );
          }
          finish(code, reason);
        },
      };
    },
  };
}
