// Generated from schemas/poll-opened.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Answer to `POST /poll`: the new session.
 */
export interface PollOpened {
/**
 * The session's secret id, for the paths of its polls, sends and close. It is not the
 * `clientId` (which other members see): whoever holds it speaks as the session.
 */
session: string
/**
 * The number of the last frame in `frames`: acknowledge it with the first poll.
 */
cursor: number
/**
 * The session's first frames (each a `server-message`), `welcome` first.
 */
frames: {
[k: string]: unknown | undefined
}[]
/**
 * How long the server holds a poll that has nothing to answer, in milliseconds.
 */
holdMs: number
/**
 * How long a session may go without a request before the server ends it, in
 * milliseconds.
 */
idleMs: number
}
