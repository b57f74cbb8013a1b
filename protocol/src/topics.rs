//! Messages that backend services publish into Herald through the broker (Redis pub/sub), on the
//! topics `room.messages`, `user.notifications` and `system.events` (each optionally behind the
//! node's topic prefix). Each payload is one JSON document of the type named below; a payload
//! that does not match its schema is logged and dropped.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::RoomName;
use crate::limits::{LimitExceeded, MAX_LABEL_CHARS, MAX_NOTIFICATION_CHARS, MAX_TOPIC_TEXT_CHARS};
use crate::user::User;

/// Topic names, without the node's topic prefix.
pub mod topic {
    /// A message for a room's members: [`super::RoomMessage`].
    pub const ROOM_MESSAGES: &str = "room.messages";
    /// A notification for one user or everyone: [`crate::NotifyRequest`].
    pub const USER_NOTIFICATIONS: &str = "user.notifications";
    /// An announcement for every connection: [`super::SystemEvent`].
    pub const SYSTEM_EVENTS: &str = "system.events";
    /// Points for a data stream (capability `streams`): [`crate::stream::TopicPoints`].
    pub const STREAM_POINTS: &str = "stream.points";
}

/// Payload of the `room.messages` topic: delivered to the room's members on every node as a
/// `chat` frame, with an id, a timestamp and the room's next offset (so it is kept in history
/// and recovered like any chat). Exactly one node handles each payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomMessage {
    /// The room.
    pub room: RoomName,
    /// The text; sanitised like a member's chat.
    #[schemars(length(max = MAX_TOPIC_TEXT_CHARS))]
    pub text: String,
    /// Who the message is from; `"system"` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
}

impl RoomMessage {
    /// Checks the limits the schema cannot express: the user object's size.
    pub fn check_limits(&self) -> Result<(), LimitExceeded> {
        match &self.user {
            Some(user) => user.check_size(),
            None => Ok(()),
        }
    }
}

/// Payload of the `system.events` topic: delivered to every connection on every node as a
/// `notification` (WebSocket) or `notification` event (SSE) without a `userId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemEvent {
    /// The text to show.
    #[schemars(length(max = MAX_NOTIFICATION_CHARS))]
    pub message: String,
    /// The kind of event; `system` when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_LABEL_CHARS))]
    pub kind: Option<String>,
}
