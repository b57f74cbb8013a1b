// The backoff's window, with the randomness pinned (no server needed).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { backoffDelay } from '../dist/index.js';

describe('full-jitter backoff', () => {
  it('doubles its ceiling from 500 ms up to 20 s by default', () => {
    const top = (attempt) => backoffDelay(attempt, { random: () => 0.999999 });
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 50].map(top), [499, 999, 1999, 3999, 7999, 15999, 19999, 19999, 19999]);
    assert.equal(backoffDelay(3, { random: () => 0 }), 0, 'full jitter starts at zero');
  });

  it('takes other bounds, and refuses nonsense ones', () => {
    assert.equal(backoffDelay(2, { minDelay: 100, maxDelay: 300, random: () => 0.999999 }), 299);
    assert.throws(() => backoffDelay(0, { minDelay: 0 }), RangeError);
    assert.throws(() => backoffDelay(0, { minDelay: 500, maxDelay: 100 }), RangeError);
  });
});
