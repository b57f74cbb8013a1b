// Generated from schemas/notify-request.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Body of `POST /notifications`.
 */
export interface NotifyRequest {
/**
 * The user to notify (every SSE stream and WebSocket of that user); everyone when absent.
 */
userId?: (string | null)
/**
 * The text to show.
 */
message: string
/**
 * The kind of notification; `info` when absent.
 */
type?: (string | null)
}
