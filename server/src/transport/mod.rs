//! Transports: thin adapters that turn a socket's bytes into calls on the [`crate::node::Node`]
//! and drain a session's outbox onto the socket. They know nothing of rooms or presence.

/// The response body type every handler answers with.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

pub mod coalesce;
pub mod sse;
pub mod websocket;
