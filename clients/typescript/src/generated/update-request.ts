// Generated from schemas/update-request.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Body of `POST /updates`.
 */
export interface UpdateRequest {
/**
 * What kind of resource changed.
 */
resource: string
/**
 * What happened to it.
 */
action: string
/**
 * Any JSON value, passed to the streams unchanged (`null` included).
 */
data?: {
[k: string]: unknown | undefined
}
}
