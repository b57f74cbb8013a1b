// Generated from schemas/stream-created.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Answer to an accepted `POST /streams`.
 */
export interface StreamCreated {
/**
 * Always `true`.
 */
success: true
/**
 * The stream's id.
 */
id: string
/**
 * `false` when a stream of that id existed already (with the same declaration).
 */
created: boolean
}
