// Generated from schemas/update-response.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Answer to an accepted `POST /updates`.
 */
export interface UpdateResponse {
/**
 * Always `true`.
 */
success: true
}
