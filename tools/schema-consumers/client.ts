// A small client written only against the TypeScript types generated from schemas/*.schema.json.
// check.sh type-checks it with `tsc --noEmit --strict`: if a schema change breaks a field this
// client relies on, the check fails.

import type { ClientMessage, UserObject } from './generated/client-message';
import type { ServerMessage, User } from './generated/server-message';
import type { Notification } from './generated/sse-notification';
import type { NotifyRequest } from './generated/notify-request';
import type { ErrorResponse } from './generated/error-response';

// Object users are open: extra fields such as `color` are allowed and echoed back.
const me: UserObject = { id: 'user123', name: 'John Doe', avatar: 'https://example.com/a.png', color: '#f80' };

export const outgoing: ClientMessage[] = [
  { type: 'join', room: 'general', user: me },
  { type: 'join', room: 'general', user: 'JohnDoe', since: { offset: 41, epoch: 'e1' } },
  { type: 'chat', text: 'hi <b>all</b>' },
  { type: 'typing', isTyping: true },
  { type: 'private_message', target: 'user456', text: 'psst' },
  { type: 'leave' },
  { type: 'ping' },
  // Capability `signaling`: peers are addressed by the clientId their welcome carried.
  { type: 'peers' },
  { type: 'offer', to: 'c-91b2', sdp: 'v=0\r\n' },
  { type: 'answer', to: 'c-91b2', sdp: 'v=0\r\n' },
  { type: 'ice_candidate', to: 'c-91b2', candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 } },
  { type: 'ice_candidate', to: 'c-91b2', candidate: null },
  { type: 'hangup', to: 'c-91b2' },
];

export function encode(message: ClientMessage): string {
  return JSON.stringify(message);
}

function nameOf(user: User): string {
  // A string user is its own name and id; an object user has both.
  return typeof user === 'string' ? user : user.name;
}

function showNotification(n: Notification): string {
  const to = n.userId ?? 'everyone';
  return `[${n.type}] ${n.message} (for ${to}, ${new Date(n.timestamp).toISOString()}, id ${n.id})`;
}

/** Handles one frame from the server; returns a line to show, if any. */
export function handle(message: ServerMessage): string | undefined {
  switch (message.type) {
    case 'welcome':
      // Chapter servers send neither field: a core-only server.
      return `connected as ${message.clientId} (protocol ${message.protocol ?? 'core'}: ${(message.capabilities ?? []).join(', ')})`;
    case 'room_joined':
      // epoch and offset come with the `recovery` and `offsets` capabilities only.
      return `joined ${message.room} (${message.users.map(nameOf).join(', ')})${message.epoch !== undefined && message.epoch !== null ? ` at ${message.epoch}/${message.offset ?? 0}` : ''}`;
    case 'room_resumed':
      // Capability `recovery`: the connection stayed open and the server resumed the room.
      return `${message.room} resumed at ${message.epoch}/${message.offset}${message.recovered ? '' : ' (some messages may be missing)'}`;
    case 'user_joined':
      return `${nameOf(message.user)} joined; ${message.users.length} here`;
    case 'room_left':
      return `left ${message.room}`;
    case 'user_left':
      return `${nameOf(message.user)} left ${message.room}`;
    case 'chat':
      return `${message.timestamp} #${message.room} <${nameOf(message.user)}> ${message.text}`;
    case 'typing':
      return message.isTyping ? `${nameOf(message.user)} is typing` : undefined;
    case 'private_message':
      return `(private) ${nameOf(message.from)}: ${message.text}`;
    case 'notification':
      return showNotification(message.content);
    case 'pong':
      return undefined;
    case 'presence_diff':
      // Capability `presence-diff`: only who changed.
      return `${message.joins.map(nameOf).join(', ')} joined, ${message.leaves.map(nameOf).join(', ')} left ${message.room}`;
    case 'presence_state':
      return `${message.users.length} in ${message.room}: ${message.users.map(nameOf).join(', ')}`;
    case 'peers':
      // Each entry says whether this side is polite toward that peer (perfect negotiation).
      return `${message.peers.length} peers in ${message.room}: ${message.peers.map((p) => `${p.peerId}${p.polite ? ' (polite)' : ''}`).join(', ')}; ${message.iceServers.length} ICE servers`;
    case 'offer':
      return `offer from ${message.from} (${nameOf(message.user)}), ${message.sdp.length} bytes of SDP${message.polite ? ', polite' : ''}`;
    case 'answer':
      return `answer from ${message.from}, ${message.sdp.length} bytes of SDP`;
    case 'ice_candidate':
      return message.candidate === null ? `${message.from}: end of candidates` : `${message.from}: ${message.candidate.candidate}`;
    case 'hangup':
      return `${message.from} hung up`;
    case 'stream_subscribed':
      // Capability `streams`: a snapshot (or, resuming, what follows it).
      return `${message.stream}: ${message.points.length} points, ${message.windows.length} windows at offset ${message.offset}${message.recovered === true ? ' (recovered)' : ''}`;
    case 'stream_unsubscribed':
      return `left stream ${message.stream}`;
    case 'stream_point':
      return `${message.stream} #${message.offset} ${JSON.stringify(message.value)}${message.conflated ? ` (${message.conflated} points)` : ''}`;
    case 'stream_window':
      return `${message.stream} #${message.offset} window ${message.window.start}-${message.window.end}: ${message.window.count} points, ${message.window.late} late`;
    case 'doc_opened':
      // Capability `documents`: the text (a snapshot) or the operations since `since`.
      return `${message.doc} v${message.version}: ${message.text !== undefined && message.text !== null ? `${[...message.text].length} code points` : `${message.ops?.length ?? 0} ops to catch up`}, ${message.participants.length} others`;
    case 'doc_ack':
      return `${message.doc}: op ${message.seq} committed as v${message.version}`;
    case 'doc_op':
      return `${message.doc} v${message.version}: ${message.op.length} components from ${message.client}`;
    case 'doc_cursor':
      return `${message.doc}: ${message.peer}'s cursor ${message.cursor ? `at ${message.cursor.head}` : 'hidden'}`;
    case 'doc_joined':
      return `${message.peer} opened ${message.doc}`;
    case 'doc_left':
      return `${message.peer} left ${message.doc}`;
    case 'doc_closed':
      return `closed ${message.doc}`;
    case 'doc_error':
      return `${message.doc}: ${message.code} ${message.message}`;
    case 'error': {
      const code: string = message.code;
      return `error ${code}: ${message.message}`;
    }
    default: {
      // Every variant is handled: a new one in the schema makes this line fail to compile.
      const unreachable: never = message;
      return unreachable;
    }
  }
}

export function decode(text: string): ServerMessage {
  return JSON.parse(text) as ServerMessage;
}

export const publish: NotifyRequest = { userId: 'u1', message: 'hi', type: 'info' };

export function describeFailure(body: ErrorResponse): string {
  return body.success ? 'impossible' : `${body.error.code}: ${body.error.message}`;
}
