// Shared documents (capability `documents`, PROTOCOL.md section 3.9).
//
// `SharedDocument` is the client side of operational transformation, as ot.js does it: at most
// one operation in flight; what the user types meanwhile is composed into a buffer and sent when
// the server acknowledges (states synchronised / awaiting confirm / awaiting with buffer).
// Incoming operations are transformed against the operation in flight and the buffer, so the
// local text never waits for the network. After a reconnect the document reopens with `since`,
// applies what it missed, and resends its operation in flight with the same `(client, seq)`,
// which the server applies at most once.
//
// Positions count Unicode code points (`Array.from(text)`), never UTF-16 units: `'👍'.length` is
// 2 in JavaScript but one position here.
import { HeraldError, type HeraldClient } from './client.js';
import { Emitter } from './emitter.js';
import type { ClientMessage, ServerMessage } from './types.js';

type Frame<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;
/** One operation component: `{retain: n}`, `{insert: text}` or `{delete: n}`. */
export type Component = { retain: number } | { insert: string } | { delete: number };
/** An operation: components walking the whole document. */
export type Op = Component[];
/** A cursor or selection in code points. */
export interface Selection {
  anchor: number;
  head: number;
}

/** Code points in `s`. */
export const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

// ------------------------------------------------------------------ the OT core

class Builder {
  ops: Op = [];
  retain(n: number): this {
    if (n <= 0) return this;
    const last = this.ops[this.ops.length - 1];
    if (last && 'retain' in last) last.retain += n;
    else this.ops.push({ retain: n });
    return this;
  }
  insert(s: string): this {
    if (s === '') return this;
    const ops = this.ops;
    const last = ops[ops.length - 1];
    const before = ops[ops.length - 2];
    if (last && 'insert' in last) last.insert += s;
    else if (last && 'delete' in last && before && 'insert' in before) before.insert += s;
    else if (last && 'delete' in last) ops.splice(ops.length - 1, 0, { insert: s });
    else ops.push({ insert: s });
    return this;
  }
  delete(n: number): this {
    if (n <= 0) return this;
    const last = this.ops[this.ops.length - 1];
    if (last && 'delete' in last) last.delete += n;
    else this.ops.push({ delete: n });
    return this;
  }
}

const len = (c: Component): number =>
  'retain' in c ? c.retain : 'delete' in c ? c.delete : codePoints(c.insert);

/** Code points an operation expects the document to have. */
export const baseLength = (op: Op): number =>
  op.reduce((n, c) => n + ('insert' in c ? 0 : len(c)), 0);

/** Code points the document has after the operation. */
export const targetLength = (op: Op): number =>
  op.reduce((n, c) => n + ('delete' in c ? 0 : len(c)), 0);

/** Reads an operation's components in pieces of at most a given length. */
class Reader {
  private i = 0;
  private used = 0;
  constructor(private readonly op: Op) {}
  peek(): { kind: 'retain' | 'insert' | 'delete'; left: number } | null {
    const c = this.op[this.i];
    if (!c) return null;
    const kind = 'retain' in c ? 'retain' : 'insert' in c ? 'insert' : 'delete';
    return { kind, left: len(c) - this.used };
  }
  take(max = Infinity): Component | null {
    const c = this.op[this.i];
    if (!c) return null;
    const total = len(c);
    const n = Math.min(total - this.used, max);
    let piece: Component;
    if ('insert' in c) piece = { insert: Array.from(c.insert).slice(this.used, this.used + n).join('') };
    else if ('retain' in c) piece = { retain: n };
    else piece = { delete: n };
    this.used += n;
    if (this.used === total) {
      this.i++;
      this.used = 0;
    }
    return piece;
  }
}

/** Applies `op` to `text`; throws when it does not span the text exactly. */
export function apply(text: string, op: Op): string {
  const chars = Array.from(text);
  if (baseLength(op) !== chars.length) {
    throw new HeraldError('invalid_op', `the operation spans ${baseLength(op)} code points, the text has ${chars.length}`);
  }
  const out: string[] = [];
  let at = 0;
  for (const c of op) {
    if ('retain' in c) {
      out.push(chars.slice(at, at + c.retain).join(''));
      at += c.retain;
    } else if ('insert' in c) out.push(c.insert);
    else at += c.delete;
  }
  return out.join('');
}

/**
 * Transforms concurrent `a` and `b` (same base) into `[a', b']` with
 * apply(apply(s, a), b') === apply(apply(s, b), a'); on ties `a`'s insert goes first.
 */
export function transform(a: Op, b: Op): [Op, Op] {
  if (baseLength(a) !== baseLength(b)) throw new HeraldError('invalid_op', 'transform of operations on different lengths');
  const a2 = new Builder();
  const b2 = new Builder();
  const ra = new Reader(a);
  const rb = new Reader(b);
  for (;;) {
    const pa = ra.peek();
    const pb = rb.peek();
    if (!pa && !pb) break;
    if (pa?.kind === 'insert') {
      const s = (ra.take() as { insert: string }).insert;
      a2.insert(s);
      b2.retain(codePoints(s));
      continue;
    }
    if (pb?.kind === 'insert') {
      const s = (rb.take() as { insert: string }).insert;
      a2.retain(codePoints(s));
      b2.insert(s);
      continue;
    }
    if (!pa || !pb) throw new HeraldError('invalid_op', 'operations of different lengths');
    const m = Math.min(pa.left, pb.left);
    ra.take(m);
    rb.take(m);
    if (pa.kind === 'retain' && pb.kind === 'retain') {
      a2.retain(m);
      b2.retain(m);
    } else if (pa.kind === 'delete' && pb.kind === 'retain') a2.delete(m);
    else if (pa.kind === 'retain' && pb.kind === 'delete') b2.delete(m);
  }
  return [a2.ops, b2.ops];
}

/** One operation with the effect of `a` then `b`. */
export function compose(a: Op, b: Op): Op {
  if (targetLength(a) !== baseLength(b)) throw new HeraldError('invalid_op', 'compose of operations that do not follow each other');
  const out = new Builder();
  const ra = new Reader(a);
  const rb = new Reader(b);
  for (;;) {
    const pa = ra.peek();
    const pb = rb.peek();
    if (!pa && !pb) break;
    if (pa?.kind === 'delete') {
      out.delete((ra.take() as { delete: number }).delete);
      continue;
    }
    if (pb?.kind === 'insert') {
      out.insert((rb.take() as { insert: string }).insert);
      continue;
    }
    if (!pa || !pb) throw new HeraldError('invalid_op', 'operations of different lengths');
    const m = Math.min(pa.left, pb.left);
    const piece = ra.take(m)!;
    rb.take(m);
    if (pb.kind === 'retain') {
      if ('retain' in piece) out.retain(m);
      else if ('insert' in piece) out.insert(piece.insert);
    } else if ('retain' in piece) out.delete(m);
    // An insert deleted at once leaves nothing.
  }
  return out.ops;
}

/** Where a position goes through `op` (text inserted at it pushes it along). */
export function transformPosition(position: number, op: Op): number {
  let at = 0;
  let shift = 0;
  for (const c of op) {
    if (at > position) break;
    if ('retain' in c) at += c.retain;
    else if ('insert' in c) shift += codePoints(c.insert);
    else {
      shift -= Math.min(c.delete, Math.max(position - at, 0));
      at += c.delete;
    }
  }
  return Math.min(Math.max(position + shift, 0), targetLength(op));
}

/** The operation that turns `before` into `after` (one changed span, in code points). */
export function diff(before: string, after: string): Op {
  const a = Array.from(before);
  const b = Array.from(after);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let end = 0;
  while (end < a.length - start && end < b.length - start && a[a.length - 1 - end] === b[b.length - 1 - end]) end++;
  return new Builder()
    .retain(start)
    .delete(a.length - start - end)
    .insert(b.slice(start, b.length - end).join(''))
    .retain(end).ops;
}

// ------------------------------------------------------------------ the client algorithm

export interface DocumentChange {
  /** The operation as applied to the local text. */
  op: Op;
  /** Whether this client made it. */
  local: boolean;
  /** The text after it. */
  text: string;
}

export interface RemoteCursor {
  peer: string;
  user?: unknown;
  /** In local code points (moved through what is in flight here). */
  cursor: Selection | null;
}

export interface SharedDocumentEvents {
  /** The document is open: its text and version (again after every reconnect). */
  open: { text: string; version: number; recovered: boolean | null };
  /** The text changed. */
  change: DocumentChange;
  /** The server confirmed this client's operation. */
  ack: { seq: number; version: number };
  /** Someone else opened the document, closed it, or moved their cursor (`cursors` has all). */
  cursors: Map<string, RemoteCursor>;
  /** Local edits were lost: the server could only offer a fresh snapshot. */
  reset: { text: string; version: number };
  /** A `doc_error` for this document. */
  error: { code: string; message: string; seq?: number };
}

interface InFlight {
  seq: number;
  base: number;
  op: Op;
}

let idCounter = 0;

/**
 * One document, edited through a `HeraldClient`. `text` is always the local view; edit it with
 * `edit(op)`, `insert`, `delete` or `replace(newText)`.
 */
export class SharedDocument extends Emitter<SharedDocumentEvents> {
  text = '';
  /** The last version the server confirmed. */
  version = 0;
  /** This author's id, kept across reconnections (so resends are recognised). */
  readonly clientId: string;
  private seq = 0;
  private inFlight: InFlight | null = null;
  private buffer: Op | null = null;
  private opened = false;
  private closed = false;
  private readonly offs: Array<() => void> = [];
  readonly cursors = new Map<string, RemoteCursor>();

  constructor(
    private readonly client: HeraldClient,
    readonly id: string,
    options: { clientId?: string } = {},
  ) {
    super();
    this.clientId =
      options.clientId ?? `c${Date.now().toString(36)}${(++idCounter).toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    this.offs.push(client.on('frame', (frame) => this.onFrame(frame)));
    this.offs.push(client.on('connected', () => this.sendOpen()));
    if (client.state === 'connected') this.sendOpen();
  }

  /** Whether nothing is in flight or buffered. */
  get synchronised(): boolean {
    return !this.inFlight && !this.buffer;
  }

  /** Applies a local edit and sends it (or buffers it while one is in flight). */
  edit(op: Op): void {
    this.text = apply(this.text, op);
    for (const c of this.cursors.values()) {
      if (c.cursor) c.cursor = { anchor: transformPosition(c.cursor.anchor, op), head: transformPosition(c.cursor.head, op) };
    }
    this.emit('change', { op, local: true, text: this.text });
    if (this.inFlight) {
      this.buffer = this.buffer ? compose(this.buffer, op) : op;
      return;
    }
    this.inFlight = { seq: ++this.seq, base: this.version, op };
    this.sendOp(this.inFlight);
  }

  insert(position: number, text: string): void {
    const n = codePoints(this.text);
    this.edit(new Builder().retain(position).insert(text).retain(n - position).ops);
  }

  delete(position: number, count: number): void {
    const n = codePoints(this.text);
    this.edit(new Builder().retain(position).delete(count).retain(n - position - count).ops);
  }

  /** Makes the text `next` (the smallest single-span edit), as an editor's input event does. */
  replace(next: string): void {
    if (next === this.text) return;
    this.edit(diff(this.text, next));
  }

  /** Shows this client's cursor to the others (sent once nothing is in flight). */
  setCursor(selection: Selection | null): void {
    this.pendingCursor = selection;
    this.flushCursor();
  }

  private pendingCursor: Selection | null | undefined = undefined;

  private flushCursor(): void {
    if (this.pendingCursor === undefined || !this.synchronised || !this.opened) return;
    const cursor = this.pendingCursor;
    this.pendingCursor = undefined;
    this.send({ type: 'doc_cursor', doc: this.id, version: this.version, cursor });
  }

  /** Closes the document (others get `doc_left`) and stops listening. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.opened) this.send({ type: 'doc_close', doc: this.id });
    for (const off of this.offs) off();
  }

  private send(frame: ClientMessage): void {
    this.client.sendFrame(frame);
  }

  private sendOpen(): void {
    if (this.closed) return;
    const frame: ClientMessage = { type: 'doc_open', doc: this.id };
    if (this.opened) frame.since = this.version;
    this.send(frame);
  }

  private sendOp(out: InFlight): void {
    this.send({ type: 'doc_op', doc: this.id, client: this.clientId, seq: out.seq, base: out.base, op: out.op });
  }

  private onFrame(frame: ServerMessage): void {
    if (!('doc' in frame) || frame.doc !== this.id || this.closed) return;
    switch (frame.type) {
      case 'doc_opened':
        return this.onOpened(frame);
      case 'doc_ack':
        if (this.inFlight?.seq === frame.seq) this.acked(frame.version);
        return;
      case 'doc_op':
        return this.onOp(frame.version, frame.op as Op, frame.client, frame.seq);
      case 'doc_cursor': {
        const cursor = frame.cursor ? this.toLocal(frame.cursor) : null;
        this.cursors.set(frame.peer, { peer: frame.peer, user: frame.user, cursor });
        this.emit('cursors', this.cursors);
        return;
      }
      case 'doc_joined':
        this.cursors.set(frame.peer, { peer: frame.peer, user: frame.user, cursor: null });
        this.emit('cursors', this.cursors);
        return;
      case 'doc_left':
        this.cursors.delete(frame.peer);
        this.emit('cursors', this.cursors);
        return;
      case 'doc_error': {
        const error: SharedDocumentEvents['error'] = { code: frame.code, message: frame.message };
        if (frame.seq !== undefined && frame.seq !== null) error.seq = frame.seq;
        this.emit('error', error);
        return;
      }
      default:
        return;
    }
  }

  /** A server position at this client's version, in local coordinates. */
  private toLocal(selection: Selection): Selection {
    let s = selection;
    for (const op of [this.inFlight?.op, this.buffer]) {
      if (op) s = { anchor: transformPosition(s.anchor, op), head: transformPosition(s.head, op) };
    }
    return s;
  }

  private onOpened(frame: Frame<'doc_opened'>): void {
    const first = !this.opened;
    this.opened = true;
    if (frame.ops && frame.recovered) {
      for (const c of frame.ops) this.onOp(c.version, c.op as Op, c.client, c.seq);
    } else {
      const text = frame.text ?? '';
      const lost = !first && !this.synchronised;
      this.text = text;
      this.version = frame.version;
      this.inFlight = null;
      this.buffer = null;
      if (lost) this.emit('reset', { text, version: frame.version });
    }
    this.cursors.clear();
    for (const p of frame.participants) {
      this.cursors.set(p.peer, { peer: p.peer, user: p.user, cursor: p.cursor ? this.toLocal(p.cursor) : null });
    }
    this.emit('open', { text: this.text, version: this.version, recovered: frame.recovered ?? null });
    this.emit('cursors', this.cursors);
    // What was in flight when the connection dropped goes again, rebased, with its seq.
    if (this.inFlight) {
      this.inFlight = { seq: this.inFlight.seq, base: this.version, op: this.inFlight.op };
      this.sendOp(this.inFlight);
    }
    this.flushCursor();
  }

  private onOp(version: number, op: Op, client: string, seq: number): void {
    if (version <= this.version) return; // already applied (an overlapping catch-up)
    if (client === this.clientId && this.inFlight?.seq === seq) {
      // Our own operation, committed from a connection that is gone: it is our ack.
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
    this.emit('change', { op: incoming, local: false, text: this.text });
  }

  private acked(version: number): void {
    const done = this.inFlight!;
    this.inFlight = null;
    this.version = version;
    this.emit('ack', { seq: done.seq, version });
    if (this.buffer) {
      this.inFlight = { seq: ++this.seq, base: this.version, op: this.buffer };
      this.buffer = null;
      this.sendOp(this.inFlight);
    }
    this.flushCursor();
  }
}
