// Generated from schemas/sse-ping.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Data of the `ping` event, sent every 30 s by default to keep the stream alive.
 */
export interface Ping {
/**
 * When the ping was sent (RFC 3339).
 */
timestamp: string
}
