//! What goes on the wire, encoded once: WebSocket frames and SSE event blocks built from
//! `herald_protocol` types, the transports a session can have, and the close codes.
//!
//! Every frame a client sees is built here from a protocol type; recipients share the encoded
//! bytes ([`Utf8Bytes`] is reference-counted). Layer 1 (a leaf): imports nothing from the crate.

use std::fmt::Write as _;

use herald_protocol::sse::Notification;
use herald_protocol::ServerMessage;
use serde::Serialize;

/// An encoded frame: UTF-8 bytes, cheap to clone and share between recipients.
pub use hyper_tungstenite::tungstenite::Utf8Bytes;

/// Which transport carries a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A WebSocket: receives `ServerMessage` JSON frames.
    WebSocket,
    /// A Server-Sent Events stream: receives formatted `event:`/`data:` blocks.
    Sse,
    /// Long polling: receives `ServerMessage` JSON frames, as a WebSocket does, in the answers
    /// to its polls.
    Polling,
}

impl Transport {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
            Transport::Polling => "polling",
        }
    }

    /// Whether it carries `ServerMessage` frames (private messages and notification frames go
    /// to these), not SSE blocks.
    pub fn speaks_frames(self) -> bool {
        matches!(self, Transport::WebSocket | Transport::Polling)
    }
}

/// Why the server ends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client's outbound queue filled up.
    SlowConsumer,
    /// The client sent nothing, not even a pong, within the timeout.
    Timeout,
    /// The server is shutting down.
    Shutdown,
    /// A frame was larger than the limit.
    TooBig,
    /// A text frame was not valid UTF-8.
    BadData,
    /// The client kept sending past its message rate.
    RateLimited,
    /// The connection's token expired.
    TokenExpired,
}

impl CloseReason {
    /// The WebSocket close code.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::SlowConsumer => 1008,
            CloseReason::Timeout => 1001,
            CloseReason::Shutdown => 1001,
            CloseReason::TooBig => 1009,
            CloseReason::BadData => 1007,
            CloseReason::RateLimited => 1008,
            CloseReason::TokenExpired => 4001,
        }
    }

    /// The WebSocket close reason text.
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::Timeout => "ping timeout",
            CloseReason::Shutdown => "server shutting down",
            CloseReason::TooBig => "message too big",
            CloseReason::BadData => "invalid UTF-8",
            CloseReason::RateLimited => "rate limited",
            CloseReason::TokenExpired => "token expired",
        }
    }
}

/// Encodes a WebSocket frame once; every recipient shares the bytes.
pub fn encode(message: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(message).expect("server messages always serialise"))
}

/// Encodes one SSE event block (`event:`, optional `id:`, `data:`), once for every stream.
pub fn encode_sse(name: &str, id: Option<u64>, data: &impl Serialize) -> Utf8Bytes {
    let json = serde_json::to_string(data).expect("SSE payloads always serialise");
    sse_block(name, id, &json)
}

/// One SSE event block around a payload that is already JSON (one line: serde_json's compact
/// form never contains a raw newline).
pub fn sse_block(name: &str, id: Option<u64>, json: &str) -> Utf8Bytes {
    let mut out = String::with_capacity(json.len() + name.len() + 32);
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    out.push_str("data: ");
    out.push_str(json);
    out.push_str("\n\n");
    Utf8Bytes::from(out)
}

/// The WebSocket `notification` frame for a notification.
pub fn notification_frame(content: &Notification) -> Utf8Bytes {
    encode(&ServerMessage::Notification {
        content: content.clone(),
    })
}

/// A room message encoded up to its offset, which is its last field: `{"type":"chat",...,
/// "offset":`. The broker gives it its offset; [`with_offset`] completes it. Encoding once up
/// to the offset keeps the broker's ordering step free of JSON work.
pub fn offset_prefix(message: &ServerMessage) -> String {
    let mut json = serde_json::to_string(message).expect("server messages always serialise");
    assert!(
        json.ends_with(r#","offset":0}"#),
        "a room message ends with its offset"
    );
    json.truncate(json.len() - 2);
    json
}

/// Completes a frame from [`offset_prefix`] with its offset.
pub fn with_offset(prefix: &str, offset: u64) -> Utf8Bytes {
    let mut out = String::with_capacity(prefix.len() + 21);
    out.push_str(prefix);
    let _ = write!(out, "{offset}}}");
    Utf8Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_protocol::{RoomName, User};

    #[test]
    fn a_prefix_completed_with_its_offset_is_the_whole_frame() {
        let message = |offset| ServerMessage::Chat {
            id: "m1".into(),
            user: User::Name("ann".into()),
            text: "hi".into(),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            room: RoomName::from("r"),
            offset: Some(offset),
        };
        let prefix = offset_prefix(&message(0));
        assert_eq!(
            with_offset(&prefix, 42).as_str(),
            encode(&message(42)).as_str()
        );
    }

    #[test]
    fn sse_blocks_carry_name_id_and_data() {
        let block = sse_block("update", Some(7), r#"{"a":1}"#);
        assert_eq!(block.as_str(), "event: update\nid: 7\ndata: {\"a\":1}\n\n");
        let block = sse_block("ping", None, "{}");
        assert_eq!(block.as_str(), "event: ping\ndata: {}\n\n");
    }
}
