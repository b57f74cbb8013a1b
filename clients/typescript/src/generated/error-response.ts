// Generated from schemas/error-response.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * Answer to any HTTP request the server refuses.
 */
export interface ErrorResponse {
/**
 * Always `false`.
 */
success: false
error: ErrorDetail
}
/**
 * What went wrong.
 */
export interface ErrorDetail {
/**
 * A stable, machine-readable code.
 */
code: ("invalid_format" | "unknown_type" | "invalid_message" | "not_in_room" | "user_not_found" | "rate_limited" | "forbidden" | "unauthorized" | "invalid_json" | "invalid_request" | "payload_too_large" | "not_found" | "method_not_allowed" | "unsupported_media_type" | "overloaded" | "origin_not_allowed" | "internal" | "peer_not_found" | "doc_not_open" | "doc_too_large" | "op_too_large" | "invalid_op" | "version_unknown" | "too_many_docs" | "stream_not_found" | "stream_conflict" | "subscription_refused" | "unknown_session" | "overlapping_request")
/**
 * A human-readable text; for schema violations it names the JSON path at fault.
 */
message: string
}
