// Names for the generated protocol types (src/generated is written by `npm run gen` from
// schemas/; nothing here restates a field by hand).
import type { ClientMessage, StreamPosition, UserObject } from './generated/client-message.js';
import type { ServerMessage, User } from './generated/server-message.js';

export type { ClientMessage, ServerMessage, StreamPosition, User, UserObject };
export type { Notification } from './generated/sse-notification.js';
export type { Update } from './generated/sse-update.js';
export type { Connected } from './generated/sse-connect.js';
export type { StockUpdate } from './generated/sse-stock-update.js';
export type { NewsItem } from './generated/sse-news.js';
export type { NotifyRequest } from './generated/notify-request.js';
export type { UpdateRequest } from './generated/update-request.js';
export type { ErrorResponse } from './generated/error-response.js';

/** One server frame type, by its `type`. */
export type Frame<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

export type WelcomeFrame = Frame<'welcome'>;
export type RoomJoinedFrame = Frame<'room_joined'>;
export type RoomResumedFrame = Frame<'room_resumed'>;
export type ChatMessage = Frame<'chat'>;
export type TypingMessage = Frame<'typing'>;
export type UserJoinedMessage = Frame<'user_joined'>;
export type UserLeftMessage = Frame<'user_left'>;
export type PrivateMessage = Frame<'private_message'>;
export type ErrorFrame = Frame<'error'>;
export type PeersFrame = Frame<'peers'>;
export type OfferFrame = Frame<'offer'>;
export type AnswerFrame = Frame<'answer'>;
export type IceCandidateFrame = Frame<'ice_candidate'>;
export type HangupFrame = Frame<'hangup'>;
/** A relayed WebRTC signal, as the receiver gets it (`from`, `polite`). */
export type SignalFrame = OfferFrame | AnswerFrame | IceCandidateFrame | HangupFrame;
/** A WebRTC signal as a client sends it (`to`). */
export type OutgoingSignal = Extract<ClientMessage, { type: 'offer' | 'answer' | 'ice_candidate' | 'hangup' }>;
export type { Peer, IceServer, IceCandidate } from './generated/server-message.js';
