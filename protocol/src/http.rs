//! Bodies of the HTTP publish endpoints and their answers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorCode;
use crate::limits::{MAX_LABEL_CHARS, MAX_NOTIFICATION_CHARS, MAX_USER_ID_CHARS};

/// Body of `POST /notifications`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    /// The user to notify (every SSE stream and WebSocket of that user); everyone when absent.
    #[serde(rename = "userId", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_USER_ID_CHARS))]
    pub user_id: Option<String>,
    /// The text to show.
    #[schemars(length(max = MAX_NOTIFICATION_CHARS))]
    pub message: String,
    /// The kind of notification; `info` when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_LABEL_CHARS))]
    pub kind: Option<String>,
}

/// Answer to an accepted `POST /notifications`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyResponse {
    /// Always `true`.
    #[schemars(extend("const" = true))]
    pub success: bool,
    /// The id the notification carries on every stream.
    #[serde(rename = "notificationId")]
    pub notification_id: String,
}

/// Body of `POST /updates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// What kind of resource changed.
    #[schemars(length(min = 1, max = MAX_LABEL_CHARS))]
    pub resource: String,
    /// What happened to it.
    #[schemars(length(min = 1, max = MAX_LABEL_CHARS))]
    pub action: String,
    /// Any JSON value, passed to the streams unchanged (`null` included).
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<Value>,
}

/// Answer to an accepted `POST /updates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateResponse {
    /// Always `true`.
    #[schemars(extend("const" = true))]
    pub success: bool,
}

/// Answer to any HTTP request the server refuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorResponse {
    /// Always `false`.
    #[schemars(extend("const" = false))]
    pub success: bool,
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error inside an [`ErrorResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// A stable, machine-readable code.
    pub code: ErrorCode,
    /// A human-readable text; for schema violations it names the JSON path at fault.
    pub message: String,
}

impl ErrorResponse {
    /// An error body.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorResponse {
            success: false,
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

/// Deserialises a field that may hold any JSON value: present (even as `null`) is `Some`, absent
/// is `None` (with `#[serde(default)]`), so an explicit `null` survives a round trip.
pub(crate) fn present_value<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}
