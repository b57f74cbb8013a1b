// Generated from schemas/sse-update.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Data of the `update` event: a resource changed.
 */
export interface Update {
/**
 * What kind of resource changed (`order`, `user`, ...).
 */
resource: string
/**
 * What happened to it (`created`, `updated`, ...).
 */
action: string
/**
 * The publisher's data, passed through unchanged; absent when the publisher sent none.
 */
data?: {
[k: string]: unknown | undefined
}
/**
 * When the server accepted it (RFC 3339).
 */
timestamp: string
}
