// Generated from schemas/sse-connect.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Data of the `connect` event, the first on every stream.
 */
export type Connected = {
type: "connected"
/**
 * When the stream opened (RFC 3339).
 */
timestamp: string
}
