/** Reconnect delays: exponential growth capped at `maxDelay`, with full jitter. */
export interface BackoffOptions {
  /** The ceiling of the first retry's delay, in ms (default 500). */
  minDelay?: number;
  /** The largest ceiling, in ms (default 20 000). */
  maxDelay?: number;
  /** A source of numbers in [0, 1), for tests (default Math.random). */
  random?: () => number;
}

export const DEFAULT_MIN_DELAY_MS = 500;
export const DEFAULT_MAX_DELAY_MS = 20_000;

/**
 * Full jitter: the delay before retry number `attempt` (0 for the first) is uniform in
 * [0, min(maxDelay, minDelay * 2^attempt)). Clients that lost the same server at the same
 * moment thus come back spread over the whole window rather than all at once.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const min = options.minDelay ?? DEFAULT_MIN_DELAY_MS;
  const max = options.maxDelay ?? DEFAULT_MAX_DELAY_MS;
  if (!(min > 0) || !(max >= min)) {
    throw new RangeError(`backoff needs 0 < minDelay <= maxDelay (got ${min}, ${max})`);
  }
  const ceiling = Math.min(max, min * 2 ** Math.min(Math.max(attempt, 0), 30));
  const random = options.random ?? Math.random;
  return Math.floor(random() * ceiling);
}
