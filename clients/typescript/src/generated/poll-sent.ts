// Generated from schemas/poll-sent.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Answer to `POST /poll/{session}`.
 */
export interface PollSent {
/**
 * The send's number.
 */
seq: number
/**
 * How many of its frames the server took (all of them; the answers, errors included,
 * come on the poll).
 */
accepted: number
}
