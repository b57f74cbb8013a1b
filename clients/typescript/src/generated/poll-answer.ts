// Generated from schemas/poll-answer.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Answer to `GET /poll/{session}?ack=N`.
 */
export interface PollAnswer {
/**
 * The number of the last frame in `frames`, or `N` when there is none: the next poll's
 * `ack`.
 */
cursor: number
/**
 * The server frames (each a `server-message`) numbered `N + 1` to `cursor`, in order;
 * empty when the hold time passed without any.
 */
frames: {
[k: string]: unknown | undefined
}[]
/**
 * Present when the server has ended the session: these are its last frames, and any later
 * request for it is answered `404` `unknown_session`.
 */
closed?: (PollClosed | null)
}
/**
 * Why the server ended a polling session: the close code and reason a WebSocket would have
 * been closed with.
 */
export interface PollClosed {
/**
 * The WebSocket close code (1001 shutting down or idle, 1008 slow consumer or rate
 * limited, 4001 token expired).
 */
code: number
/**
 * The WebSocket close reason.
 */
reason: string
}
