// Generated from schemas/points-response.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Answer to an accepted `POST /streams/{id}/points`.
 */
export interface PointsResponse {
/**
 * Always `true`.
 */
success: true
/**
 * How many points were accepted.
 */
accepted: number
}
