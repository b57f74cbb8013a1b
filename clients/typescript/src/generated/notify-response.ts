// Generated from schemas/notify-response.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Answer to an accepted `POST /notifications`.
 */
export interface NotifyResponse {
/**
 * Always `true`.
 */
success: true
/**
 * The id the notification carries on every stream.
 */
notificationId: string
}
