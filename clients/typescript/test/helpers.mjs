// Test helpers: the real `herald` binary on a free port, and promise-based waits on client
// events (every wait has a timeout that fails the test with what was expected).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR || resolve(REPO, 'target');
export const HERALD_BIN = process.env.HERALD_BIN || resolve(TARGET, 'debug', 'herald');

const LISTENING = /^listening on (http:\/\/[^\s]+)/;

/**
 * Runs `herald serve --listen <listen> [args]` and resolves once it prints its address.
 * Returns { url, wsUrl, address, stop() (SIGTERM), kill() (SIGKILL), output() }.
 */
export async function startHerald({ listen = '127.0.0.1:0', args = [], env = {} } = {}) {
  if (!existsSync(HERALD_BIN)) {
    throw new Error(`no server binary at ${HERALD_BIN}: run \`cargo build -p herald-server\` or set HERALD_BIN`);
  }
  const child = spawn(HERALD_BIN, ['serve', '--listen', listen, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  const lines = [];
  const output = () => lines.join('\n');
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const url = await new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`herald printed no address in 30 s:\n${output()}`)), 30_000);
    for (const [stream, name] of [[child.stdout, 'out'], [child.stderr, 'err']]) {
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(`[${name}] ${line}`);
        if (lines.length > 500) lines.shift();
        const found = name === 'out' && LISTENING.exec(line);
        if (found) {
          clearTimeout(timer);
          done(found[1]);
        }
      });
    }
    child.once('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      fail(new Error(`herald exited (${code ?? signal}) before listening:\n${output()}`));
    });
  });
  const end = async (signal) => {
    process.removeListener('exit', killOnExit);
    child.kill(signal);
    return exited;
  };
  return {
    url,
    address: new URL(url).host,
    output,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
  };
}

/** Resolves with the first `event` payload from `emitter` that satisfies `predicate`. */
export function next(emitter, event, predicate = () => true, timeoutMs = 10_000) {
  return new Promise((done, fail) => {
    const timer = setTimeout(() => {
      off();
      fail(new Error(`no "${event}" event matching ${predicate} within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = emitter.on(event, (payload) => {
      if (!predicate(payload)) return;
      clearTimeout(timer);
      off();
      done(payload);
    });
  });
}

/** Records every payload of `event` into an array. */
export function record(emitter, event) {
  const seen = [];
  emitter.on(event, (payload) => seen.push(payload));
  return seen;
}

/** Waits until `check()` is true, re-checking whenever `emitter` emits `event`. */
export function until(emitter, event, check, timeoutMs = 10_000) {
  if (check()) return Promise.resolve();
  return next(emitter, event, () => check(), timeoutMs).then(() => undefined);
}

export async function post(base, path, body, headers = {}) {
  const response = await fetch(new URL(path, base), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  if (response.status !== 200) throw new Error(`POST ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

/** Whether Redis answers on 127.0.0.1:6379 (a PING over a plain socket). */
export async function redisUp() {
  const net = await import('node:net');
  return new Promise((done) => {
    const socket = net.connect(6379, '127.0.0.1');
    const finish = (ok) => {
      socket.destroy();
      done(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => finish(String(data).startsWith('+PONG')));
  });
}

/**
 * A TCP proxy in front of `target` (host:port) that a test can cut like a lost network:
 * `cut()` destroys every proxied connection, `stall()` stops forwarding on them without closing
 * them, `block()` makes new ones fail at once until `unblock()`.
 * Returns { url, cut, stall, block, unblock, close, connections() }.
 */
export async function startProxy(target) {
  const net = await import('node:net');
  const [host, port] = [target.split(':')[0], Number(target.split(':')[1])];
  const live = new Set();
  let blocked = false;
  let accepted = 0;
  const server = net.createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    accepted += 1;
    const upstream = net.connect(port, host);
    const pair = { client, upstream };
    live.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      live.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const { port: own } = server.address();
  return {
    url: `http://127.0.0.1:${own}`,
    connections: () => accepted,
    cut() {
      for (const { client, upstream } of live) {
        client.destroy();
        upstream.destroy();
      }
      live.clear();
    },
    /** Stops forwarding on every open connection without closing it (a silent dead link). */
    stall() {
      for (const { client, upstream } of live) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    block() {
      blocked = true;
    },
    unblock() {
      blocked = false;
    },
    close() {
      this.cut();
      return new Promise((done) => server.close(() => done()));
    },
  };
}
