// Generated from schemas/sse-notification.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * A notification, as the SSE `notification` event's data and a WebSocket `notification`
 * frame's `content`.
 */
export interface Notification {
/**
 * The notification's unique id.
 */
id: string
/**
 * The user it is for; absent when it went to everyone.
 */
userId?: (string | null)
/**
 * The text to show.
 */
message: string
/**
 * The kind of notification (`info`, `warning`, ...), as the publisher named it.
 */
type: string
/**
 * When the server accepted it (RFC 3339).
 */
timestamp: string
}
