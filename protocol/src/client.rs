//! Frames a client sends over a WebSocket (and, later, any bidirectional transport).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::document::{ClientId, DocId, Op, Selection};
use crate::limits::{
    LimitExceeded, MAX_ROOM_NAME_CHARS, MAX_SDP_CHARS, MAX_USER_ID_CHARS, ROOM_NAME_PATTERN,
};
use crate::limits::{MAX_SNAPSHOT_POINTS, MAX_STREAM_RATE};
use crate::signaling::{IceCandidate, PeerId};
use crate::stream::StreamId;
use crate::user::User;

/// A frame from client to server, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Join a room, leaving the current one first if there is one. The server answers with
    /// `room_joined` and tells the other members with `user_joined`.
    Join {
        /// The room to join.
        room: RoomName,
        /// Who is joining. With authentication on, the server takes the identity from the token
        /// instead.
        user: User,
        /// Capability `recovery`: the last position this client saw in the room, to receive what
        /// it missed. Send it only to a server whose `welcome` lists `recovery`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<StreamPosition>,
        /// Capability `presence-diff`: `diff` to receive `presence_diff` frames (only who joined
        /// or left) instead of `user_joined`/`user_left` with the whole member list. Absent or
        /// `full`: the core frames.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        presence: Option<PresenceMode>,
    },
    /// Leave the current room. The server answers with `room_left` and tells the others with
    /// `user_left`.
    Leave {},
    /// Say something in the current room; every member, the sender included, receives it.
    Chat {
        /// The message text. HTML is sanitised: only `b`, `i`, `em` and `strong` survive, without
        /// attributes. Its length is bounded only by the frame limit.
        text: String,
    },
    /// Tell the other members of the room whether this user is typing.
    Typing {
        /// `true` while the user types, `false` when they stop.
        #[serde(rename = "isTyping")]
        is_typing: bool,
    },
    /// Send a message to every connection of one user.
    PrivateMessage {
        /// The id of the user to reach.
        #[schemars(length(min = 1, max = MAX_USER_ID_CHARS))]
        target: String,
        /// The message text, sanitised like chat text; bounded only by the frame limit.
        text: String,
    },
    /// Capability `app-ping`: an application-level ping (browsers cannot send WebSocket pings);
    /// answered with `pong`.
    Ping {},
    /// Capability `presence-diff`: ask for the current room's whole member list; answered with
    /// `presence_state`.
    Presence {},
    /// Capability `signaling`: ask for the peer ids of the room's members and the ICE servers;
    /// answered with `peers`. Ask again when `user_joined` or `user_left` says the room changed.
    Peers {},
    /// Capability `signaling`: a session description offer for one member of the room.
    Offer {
        /// The peer id (`clientId`) of the member to reach.
        to: PeerId,
        /// The SDP of the offer.
        #[schemars(length(min = 1, max = MAX_SDP_CHARS))]
        sdp: String,
    },
    /// Capability `signaling`: a session description answer for one member of the room.
    Answer {
        /// The peer id (`clientId`) of the member to reach.
        to: PeerId,
        /// The SDP of the answer.
        #[schemars(length(min = 1, max = MAX_SDP_CHARS))]
        sdp: String,
    },
    /// Capability `signaling`: an ICE candidate for one member of the room, or `null` when
    /// this side has gathered all its candidates (end of candidates).
    #[schemars(transform = crate::signaling::require_candidate)]
    IceCandidate {
        /// The peer id (`clientId`) of the member to reach.
        to: PeerId,
        /// The candidate, or `null` for the end of candidates (never absent).
        candidate: Option<IceCandidate>,
    },
    /// Capability `signaling`: this side ends its connection with one member of the room.
    Hangup {
        /// The peer id (`clientId`) of the member to reach.
        to: PeerId,
    },
    /// Capability `documents`: open a document (it is created empty when new). Answered with
    /// `doc_opened`; the document's operations and cursors follow it, in order.
    DocOpen {
        /// The document.
        doc: DocId,
        /// The version this client already has (after a reconnection): the answer lists the
        /// operations committed since, or, when they are no longer all kept, the whole text
        /// (all or nothing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// Capability `documents`: an edit of an open document. Answered with `doc_ack`; the others
    /// get it as `doc_op`.
    DocOp {
        /// The document.
        doc: DocId,
        /// The client's own id, the same across reconnections.
        client: ClientId,
        /// The client's sequence number for this operation: each new operation takes a larger
        /// one; a resend keeps it and is applied at most once.
        seq: u64,
        /// The version the operation was made against.
        base: u64,
        /// The operation (positions in code points).
        op: Op,
    },
    /// Capability `documents`: this client's cursor or selection in an open document (`null`:
    /// none), at a version it has seen.
    DocCursor {
        /// The document.
        doc: DocId,
        /// The version the positions refer to.
        version: u64,
        /// The cursor or selection, or `null` to hide it.
        cursor: Option<Selection>,
    },
    /// Capability `documents`: close a document. Answered with `doc_closed`; the others get
    /// `doc_left`.
    DocClose {
        /// The document.
        doc: DocId,
    },
    /// Capability `streams`: subscribe to a data stream. The server answers with
    /// `stream_subscribed` (a snapshot of recent points, or with `since` the missed messages),
    /// then sends `stream_point` and `stream_window` as they come.
    StreamSubscribe {
        /// The stream.
        stream: StreamId,
        /// Most points in the snapshot (downsampled with LTTB, first and last kept); 1,000 when
        /// absent.
        #[serde(rename = "maxPoints", default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = MAX_SNAPSHOT_POINTS))]
        max_points: Option<u32>,
        /// The last position seen in this stream (`offset` of the last message, `epoch` from
        /// `stream_subscribed`), to resume: every missed message follows, or `recovered: false`
        /// and a fresh snapshot.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<StreamPosition>,
        /// Most `stream_point` frames per second; points in between are conflated (the latest
        /// is sent, with `conflated`). Every point is sent when absent.
        #[serde(rename = "maxRate", default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0.01, max = MAX_STREAM_RATE))]
        max_rate: Option<f64>,
    },
    /// Capability `streams`: stop receiving a stream; answered with `stream_unsubscribed`.
    StreamUnsubscribe {
        /// The stream.
        stream: StreamId,
    },
}

/// How a member hears of other members joining and leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceMode {
    /// `user_joined` and `user_left` with the whole member list (the core).
    Full,
    /// `presence_diff` with only who changed.
    Diff,
}

impl ClientMessage {
    /// Every `type` a client may send.
    pub const TYPES: [&'static str; 18] = [
        "join",
        "leave",
        "chat",
        "typing",
        "private_message",
        "ping",
        "presence",
        "peers",
        "offer",
        "answer",
        "ice_candidate",
        "hangup",
        "doc_open",
        "doc_op",
        "doc_cursor",
        "doc_close",
        "stream_subscribe",
        "stream_unsubscribe",
    ];

    /// This message's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::Leave {} => "leave",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::Typing { .. } => "typing",
            ClientMessage::PrivateMessage { .. } => "private_message",
            ClientMessage::Ping {} => "ping",
            ClientMessage::Presence {} => "presence",
            ClientMessage::Peers {} => "peers",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::IceCandidate { .. } => "ice_candidate",
            ClientMessage::Hangup { .. } => "hangup",
            ClientMessage::DocOpen { .. } => "doc_open",
            ClientMessage::DocOp { .. } => "doc_op",
            ClientMessage::DocCursor { .. } => "doc_cursor",
            ClientMessage::DocClose { .. } => "doc_close",
            ClientMessage::StreamSubscribe { .. } => "stream_subscribe",
            ClientMessage::StreamUnsubscribe { .. } => "stream_unsubscribe",
        }
    }

    /// Checks the limits that the JSON Schema cannot express, on a frame that already passed the
    /// schema: today, that a `join`'s user object is at most
    /// [`MAX_USER_OBJECT_BYTES`](crate::limits::MAX_USER_OBJECT_BYTES) serialized. The error
    /// carries the code and text to send back in an `error` frame.
    pub fn check_limits(&self) -> Result<(), LimitExceeded> {
        match self {
            ClientMessage::Join { user, .. } => user.check_size(),
            _ => Ok(()),
        }
    }
}

/// A room's name.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct RoomName(
    #[schemars(length(min = 1, max = MAX_ROOM_NAME_CHARS), regex(pattern = ROOM_NAME_PATTERN))]
    pub String,
);

impl RoomName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RoomName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RoomName {
    fn from(name: &str) -> Self {
        RoomName(name.to_owned())
    }
}

/// A position in a room's message stream: the offset of the last message seen and the epoch of
/// the stream it belongs to. Offsets from another epoch cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamPosition {
    /// The offset of the last message the client saw (0 when it saw none).
    pub offset: u64,
    /// The epoch of the room's stream, from `room_joined`.
    #[schemars(length(min = 1, max = 64))]
    pub epoch: String,
}
