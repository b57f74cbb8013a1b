// Capability `streams`: a live data stream over a HeraldClient's connection. A subscription
// gets a snapshot (recent points, downsampled by the server, and recent window results), then
// live points and window results, each with its offset. After a reconnect it resumes from the
// last offset it saw: either every missed message follows (`recovered: true`), or the server
// says it cannot and sends a fresh snapshot instead (all or nothing).
import type { ClientErrorEvent, HeraldClient } from './client.js';
import { Emitter } from './emitter.js';
import type { Frame, ServerMessage } from './types.js';

export type StreamSubscribedFrame = Frame<'stream_subscribed'>;
export type StreamPointFrame = Frame<'stream_point'>;
export type StreamWindowFrame = Frame<'stream_window'>;
/** One data point: `timestamp` (ms since the Unix epoch) and `value` (a number or an object). */
export type StreamPoint = StreamSubscribedFrame['points'][number];
/** One closed window's aggregates. */
export type StreamWindow = StreamWindowFrame['window'];

export interface StreamOptions {
  /** Most points in the snapshot (the server downsamples with LTTB); the server's default when absent. */
  maxPoints?: number;
  /** Most point frames per second; the server conflates points in between (`conflated`). */
  maxRate?: number;
  /** Points kept in `points` (the chart's window); `maxPoints`, or 1,000, when absent. */
  keep?: number;
}

export interface StreamSnapshotEvent {
  /** The points now kept (the snapshot's, or after a recovery the kept ones plus the replay). */
  points: StreamPoint[];
  windows: StreamWindow[];
  /** `true` when a resume recovered every missed message, `false` when it could not (a fresh
   * snapshot replaced the old points), absent on a first subscription. */
  recovered?: boolean;
  fields?: string[];
}

export interface StreamEvents {
  /** The answer to a subscription (also after each reconnect). */
  snapshot: StreamSnapshotEvent;
  /** A live (or replayed) point. `conflated` counts the points it stands for, when more than one. */
  point: StreamPointFrame;
  /** A closed window's result. */
  window: StreamWindowFrame;
  /** The server refused the subscription (`stream_not_found`, ...). */
  error: ClientErrorEvent;
  unsubscribed: { stream: string };
}

/** A subscription to one data stream. Create it with `subscribeStream`. */
export class HeraldStream extends Emitter<StreamEvents> {
  /** Recent points, oldest first (at most `keep`). */
  readonly points: StreamPoint[] = [];
  /** Recent window results, oldest first (at most 100). */
  readonly windows: StreamWindow[] = [];
  private epoch: string | null = null;
  private offset = 0;
  private active = true;
  private awaiting = false;
  private readonly stops: (() => void)[] = [];
  private readonly keep: number;

  constructor(
    private readonly client: HeraldClient,
    readonly stream: string,
    private readonly options: StreamOptions = {},
  ) {
    super();
    this.keep = options.keep ?? options.maxPoints ?? 1000;
    this.stops.push(
      client.on('connected', () => this.send()),
      client.on('frame', (frame) => this.onFrame(frame)),
    );
    if (client.state === 'connected') this.send();
  }

  /** The last position seen: the stream's epoch and the offset of its last message. */
  get position(): { epoch: string; offset: number } | null {
    return this.epoch === null ? null : { epoch: this.epoch, offset: this.offset };
  }

  /** Stops the subscription (the server answers `stream_unsubscribed`). */
  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    for (const stop of this.stops) stop();
    this.client.sendFrame({ type: 'stream_unsubscribe', stream: this.stream });
    this.emit('unsubscribed', { stream: this.stream });
  }

  private send(): void {
    if (!this.active) return;
    const since = this.position ?? undefined;
    const sent = this.client.sendFrame({
      type: 'stream_subscribe',
      stream: this.stream,
      ...(this.options.maxPoints !== undefined ? { maxPoints: this.options.maxPoints } : {}),
      ...(this.options.maxRate !== undefined ? { maxRate: this.options.maxRate } : {}),
      ...(since ? { since } : {}),
    });
    this.awaiting = sent === 'sent';
  }

  private onFrame(frame: ServerMessage): void {
    if (!this.active) return;
    switch (frame.type) {
      case 'stream_subscribed':
        if (frame.stream !== this.stream) return;
        this.awaiting = false;
        this.epoch = frame.epoch;
        if (frame.recovered !== true) {
          // A first subscription or a failed resume: the snapshot replaces what was kept.
          this.points.splice(0, this.points.length, ...frame.points);
          this.windows.splice(0, this.windows.length, ...frame.windows);
          this.offset = frame.offset;
        }
        this.trim();
        this.emit('snapshot', {
          points: this.points,
          windows: this.windows,
          ...(frame.recovered != null ? { recovered: frame.recovered } : {}),
          ...(frame.fields ? { fields: frame.fields } : {}),
        });
        return;
      case 'stream_point':
        if (frame.stream !== this.stream || frame.offset <= this.offset) return;
        this.offset = frame.offset;
        this.points.push({ timestamp: frame.timestamp, value: frame.value });
        this.trim();
        this.emit('point', frame);
        return;
      case 'stream_window':
        if (frame.stream !== this.stream || frame.offset <= this.offset) return;
        this.offset = frame.offset;
        this.windows.push(frame.window);
        this.trim();
        this.emit('window', frame);
        return;
      case 'error':
        // A refusal answers the subscription that is waiting for its answer.
        if (this.awaiting && (frame.code.startsWith('stream_') || frame.code === 'subscription_refused')) {
          this.awaiting = false;
          this.emit('error', { code: frame.code, message: frame.message, source: 'server' });
        }
        return;
      default:
        return;
    }
  }

  private trim(): void {
    if (this.points.length > this.keep) this.points.splice(0, this.points.length - this.keep);
    if (this.windows.length > 100) this.windows.splice(0, this.windows.length - 100);
  }
}

/** Subscribes to a data stream on a client's connection (capability `streams`). */
export function subscribeStream(
  client: HeraldClient,
  stream: string,
  options: StreamOptions = {},
): HeraldStream {
  return new HeraldStream(client, stream, options);
}
