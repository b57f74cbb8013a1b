// Starts the Herald binary on a free port and stops it again.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const HERALD_BIN = process.env.HERALD_BIN || resolve(REPO, 'target', 'debug', 'herald');

const LISTENING = /listening on (http:\/\/127\.0\.0\.1:\d+)/;

/**
 * Runs `herald serve --listen 127.0.0.1:0` (or the `listen` address given) and resolves once it
 * prints its address.
 * The returned object has `url` (e.g. http://127.0.0.1:41234), `output()` (everything the server
 * printed so far, for failure messages) and `stop()`.
 */
export async function startServer({ listen = '127.0.0.1:0', extraArgs = [], timeoutMs = 30_000 } = {}) {
  if (!existsSync(HERALD_BIN)) {
    throw new Error(`no server binary at ${HERALD_BIN}: run \`cargo build -p herald-server\` ` +
      'or set HERALD_BIN');
  }
  const child = spawn(HERALD_BIN, ['serve', '--listen', listen, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  const lines = [];
  const output = () => lines.join('\n');
  let exited = null;
  const exit = new Promise((done) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      done(exited);
    });
  });
  const stopOnExit = () => child.kill('SIGKILL');
  process.once('exit', stopOnExit);

  const url = await new Promise((done, fail) => {
    const timer = setTimeout(() => {
      fail(new Error(`server printed no "listening on" line within ${timeoutMs} ms:\n${output()}`));
    }, timeoutMs);
    const watch = (stream, name) => {
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(`[${name}] ${line}`);
        if (lines.length > 2000) lines.shift();
        const found = name === 'stdout' && LISTENING.exec(line);
        if (found) {
          clearTimeout(timer);
          done(found[1]);
        }
      });
    };
    watch(child.stdout, 'stdout');
    watch(child.stderr, 'stderr');
    child.once('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    exit.then(({ code, signal }) => {
      clearTimeout(timer);
      fail(new Error(`server exited (code ${code}, signal ${signal}) before listening:\n${output()}`));
    });
  });

  async function stop() {
    process.removeListener('exit', stopOnExit);
    if (exited) return exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    const result = await exit;
    clearTimeout(timer);
    return result;
  }

  return { url, output, stop };
}
