// Generated from schemas/poll-send.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Body of `POST /poll/{session}`: client frames, in order.
 */
export interface PollSend {
/**
 * This send's number: 1 for the session's first, then one more each time. Repeating the
 * number of the last send applied (a retry after a lost answer) applies nothing and gets
 * the same answer.
 */
seq: number
/**
 * Client frames (each a `client-message`), exactly as they would be sent on a WebSocket.
 * Each is checked as a WebSocket frame is: a bad one is answered with an `error` frame on
 * the poll, and the others are applied.
 * 
 * @minItems 1
 * @maxItems 100
 */
frames: [unknown, ...(unknown)[]]
}
