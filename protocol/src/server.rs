//! Frames the server sends over a WebSocket.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::RoomName;
use crate::error::ErrorCode;
use crate::sse::Notification;
use crate::user::User;

/// A frame from server to client, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMessage {
    /// The first frame on every connection.
    Welcome {
        /// This connection's id.
        #[serde(rename = "clientId")]
        client_id: String,
    },
    /// The answer to `join`: the room and everyone in it, the joiner included.
    RoomJoined {
        /// The room joined.
        room: RoomName,
        /// Every member of the room, the joiner included, each as they described themselves.
        users: Vec<User>,
        /// The epoch of the room's message stream; offsets are comparable only within one epoch.
        epoch: String,
        /// The offset of the room's latest message (0 when it has none).
        offset: u64,
        /// Present when the join asked to resume (`since`): `true` when every missed message
        /// follows, in order, before live ones; `false` when that was impossible and nothing is
        /// replayed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    /// Someone else joined the room (not sent to the joiner).
    UserJoined {
        /// Who joined.
        user: User,
        /// Every member of the room now.
        users: Vec<User>,
        /// The room.
        room: RoomName,
    },
    /// The answer to `leave`.
    RoomLeft {
        /// The room left.
        room: RoomName,
    },
    /// Someone left the room or disconnected.
    UserLeft {
        /// Who left.
        user: User,
        /// The room.
        room: RoomName,
    },
    /// A chat message, sent to every member of the room, its sender included.
    Chat {
        /// The message's unique id.
        id: String,
        /// The sender.
        user: User,
        /// The sanitised text.
        text: String,
        /// When the server accepted the message (RFC 3339).
        #[schemars(extend("format" = "date-time"))]
        timestamp: String,
        /// The room.
        room: RoomName,
        /// The message's position in the room's stream (1 for the first message of an epoch).
        offset: u64,
    },
    /// Another member started or stopped typing (never echoed to the sender).
    Typing {
        /// Who is typing.
        user: User,
        /// Whether they are typing.
        #[serde(rename = "isTyping")]
        is_typing: bool,
        /// The room.
        room: RoomName,
    },
    /// A private message, sent to every connection of its target.
    PrivateMessage {
        /// The message's unique id.
        id: String,
        /// The sender.
        from: User,
        /// The sanitised text.
        text: String,
        /// When the server accepted the message (RFC 3339).
        #[schemars(extend("format" = "date-time"))]
        timestamp: String,
    },
    /// A notification pushed by a backend (`POST /notifications`).
    Notification {
        /// The same object the SSE `notification` event carries.
        content: Notification,
    },
    /// The answer to an application-level `ping`.
    Pong {},
    /// Something the client sent could not be acted on; the connection stays open.
    Error {
        /// A human-readable text. The chapter's texts (`Invalid message format`,
        /// `Unknown message type`, `Not in a room`) are kept word for word.
        message: String,
        /// A stable, machine-readable code.
        code: ErrorCode,
    },
}

impl ServerMessage {
    /// An `error` frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            message: message.into(),
            code,
        }
    }
}
