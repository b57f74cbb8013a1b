//! Error codes. Every `error` frame and every HTTP error body carries one of these as a stable,
//! machine-readable `code`; the human text may change, the code does not.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON, or not an object with a string `type`
    /// (message text: `Invalid message format`).
    InvalidFormat,
    /// The frame's `type` is not one the server knows (message text: `Unknown message type`).
    UnknownType,
    /// The frame has a known `type` but breaks its schema: a missing or mistyped field, a value
    /// over a limit, or a field the schema does not allow. The message names the JSON path.
    InvalidMessage,
    /// `chat`, `typing`, `leave` or `private_message` before a `join`
    /// (message text: `Not in a room`).
    NotInRoom,
    /// A private message's target is unknown or has no open connection.
    UserNotFound,
    /// The client sends faster than its message rate allows.
    RateLimited,
    /// The client's identity does not allow this action (a room outside its grant, say).
    Forbidden,
    /// Authentication is required and was missing or invalid.
    Unauthorized,
    /// An HTTP request body is not valid JSON.
    InvalidJson,
    /// An HTTP request body is JSON but does not match its schema.
    InvalidRequest,
    /// An HTTP request body is larger than the server accepts.
    PayloadTooLarge,
    /// An HTTP request asked for a path the server does not serve.
    NotFound,
    /// An HTTP request used a method the path does not accept.
    MethodNotAllowed,
    /// The request's `Content-Type` is not `application/json`.
    UnsupportedMediaType,
    /// The server refuses more connections (its connection limit is reached), or, in a cluster,
    /// a `chat` it could not send: the node is cut off from the cluster's broker or its queue to
    /// it is full (PROTOCOL.md section 4). Send it again later.
    Overloaded,
    /// The request's `Origin` is not on the server's allowlist.
    OriginNotAllowed,
    /// Something failed inside the server; the request may be retried.
    Internal,
    /// Capability `signaling`: a signal's target is not a member of the sender's room (it left,
    /// closed its connection, or never was one), or is the sender itself.
    PeerNotFound,
    /// Capability `documents`: a document frame for a document this connection has not open.
    DocNotOpen,
    /// Capability `documents`: the operation would make the document longer than it may be.
    DocTooLarge,
    /// Capability `documents`: the operation inserts more, or has more components, than one
    /// operation may.
    OpTooLarge,
    /// Capability `documents`: the operation does not fit the document (its positions are out
    /// of range, or it does not span the document at its base version); nothing changed.
    InvalidOp,
    /// Capability `documents`: the version is ahead of the document, or too old to transform
    /// from: reopen with `doc_open`.
    VersionUnknown,
    /// Capability `documents`: the connection has as many documents open as it may.
    TooManyDocs,
    /// Capability `streams`: no stream has this id.
    StreamNotFound,
    /// Capability `streams`: a stream of this id exists with another declaration.
    StreamConflict,
    /// Capability `streams`: the connection is subscribed to as many streams as it may be, or
    /// `stream_unsubscribe` named a stream it is not subscribed to.
    SubscriptionRefused,
    /// Capability `long-polling`: the polling session named in the path does not exist (it
    /// expired, was closed, or never was): open a new one.
    UnknownSession,
    /// Capability `long-polling`: a poll (or a send) arrived while another poll (or send) of the
    /// same session was still in progress; a session has one of each at a time.
    OverlappingRequest,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidFormat => "invalid_format",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::UserNotFound => "user_not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::Internal => "internal",
            ErrorCode::PeerNotFound => "peer_not_found",
            ErrorCode::DocNotOpen => "doc_not_open",
            ErrorCode::DocTooLarge => "doc_too_large",
            ErrorCode::OpTooLarge => "op_too_large",
            ErrorCode::InvalidOp => "invalid_op",
            ErrorCode::VersionUnknown => "version_unknown",
            ErrorCode::TooManyDocs => "too_many_docs",
            ErrorCode::StreamNotFound => "stream_not_found",
            ErrorCode::StreamConflict => "stream_conflict",
            ErrorCode::SubscriptionRefused => "subscription_refused",
            ErrorCode::UnknownSession => "unknown_session",
            ErrorCode::OverlappingRequest => "overlapping_request",
        }
    }

    /// Every code, for metrics and documentation.
    pub const ALL: [ErrorCode; 29] = [
        ErrorCode::InvalidFormat,
        ErrorCode::UnknownType,
        ErrorCode::InvalidMessage,
        ErrorCode::NotInRoom,
        ErrorCode::UserNotFound,
        ErrorCode::RateLimited,
        ErrorCode::Forbidden,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Overloaded,
        ErrorCode::OriginNotAllowed,
        ErrorCode::Internal,
        ErrorCode::PeerNotFound,
        ErrorCode::DocNotOpen,
        ErrorCode::DocTooLarge,
        ErrorCode::OpTooLarge,
        ErrorCode::InvalidOp,
        ErrorCode::VersionUnknown,
        ErrorCode::TooManyDocs,
        ErrorCode::StreamNotFound,
        ErrorCode::StreamConflict,
        ErrorCode::SubscriptionRefused,
        ErrorCode::UnknownSession,
        ErrorCode::OverlappingRequest,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The texts the chapter's clients may match on, kept word for word.
pub mod text {
    /// Sent with [`super::ErrorCode::InvalidFormat`].
    pub const INVALID_FORMAT: &str = "Invalid message format";
    /// Sent with [`super::ErrorCode::UnknownType`].
    pub const UNKNOWN_TYPE: &str = "Unknown message type";
    /// Sent with [`super::ErrorCode::NotInRoom`].
    pub const NOT_IN_ROOM: &str = "Not in a room";
    /// Sent with [`super::ErrorCode::InvalidMessage`] when a `join`'s user object is larger than
    /// [`crate::limits::MAX_USER_OBJECT_BYTES`] serialized.
    pub const USER_TOO_LARGE: &str = "user object over 1024 bytes";
}
