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
export type ChatMessage = Frame<'chat'>;
export type TypingMessage = Frame<'typing'>;
export type UserJoinedMessage = Frame<'user_joined'>;
export type UserLeftMessage = Frame<'user_left'>;
export type PrivateMessage = Frame<'private_message'>;
export type ErrorFrame = Frame<'error'>;
