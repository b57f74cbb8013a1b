// Generated from schemas/topic-system-event.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Payload of the `system.events` topic: delivered to every connection on every node as a
 * `notification` (WebSocket) or `notification` event (SSE) without a `userId`.
 */
export interface SystemEvent {
/**
 * The text to show.
 */
message: string
/**
 * The kind of event; `system` when absent.
 */
type?: (string | null)
}
