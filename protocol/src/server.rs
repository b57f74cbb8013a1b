//! Frames the server sends over a WebSocket.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::RoomName;
use crate::document::{ClientId, CommittedOp, DocId, Op, Participant, Selection};
use crate::error::ErrorCode;
use crate::signaling::{IceCandidate, IceServer, Peer, PeerId};
use crate::sse::Notification;
use crate::stream::{StreamId, StreamPoint, StreamValue, WindowResult};
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
        /// The protocol version the server speaks, such as `1.1` (see `protocol/CHANGELOG.md`).
        /// Absent on a server that speaks only the core; chapter clients ignore it.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+$"))]
        protocol: String,
        /// The names of the capabilities the server guarantees on this connection (`recovery`,
        /// `offsets`, `room-in-presence`, `app-ping`, `auth`, ...). Absent or empty: the server
        /// speaks only the core. Names a client does not know are to be ignored.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(inner(regex(pattern = r"^[a-z][a-z0-9-]*$")))]
        capabilities: Vec<String>,
    },
    /// The answer to `join`: the room and everyone in it, the joiner included.
    RoomJoined {
        /// The room joined.
        room: RoomName,
        /// Every member of the room, the joiner included, each as they described themselves.
        users: Vec<User>,
        /// Capability `recovery`: the epoch of the room's message stream; offsets are comparable
        /// only within one epoch, and a client resumes with it in `join`'s `since`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
        /// Capability `offsets`: the offset of the room's latest message (0 when it has none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// Capability `recovery`: present when the join asked to resume (`since`). `true` when
        /// every missed message follows, in order, before live ones; `false` when that was
        /// impossible and nothing is replayed (all or nothing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    /// Someone else joined the room (not sent to the joiner).
    UserJoined {
        /// Who joined.
        user: User,
        /// Every member of the room now.
        users: Vec<User>,
        /// Capability `room-in-presence`: the room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomName>,
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
        /// Capability `room-in-presence`: the room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomName>,
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
        /// Capability `offsets`: the message's position in the room's stream (1 for the first
        /// message of an epoch). Always the last field, so a server may encode the frame once and
        /// append each offset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// Another member started or stopped typing (never echoed to the sender).
    Typing {
        /// Who is typing.
        user: User,
        /// Whether they are typing.
        #[serde(rename = "isTyping")]
        is_typing: bool,
        /// Capability `room-in-presence`: the room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomName>,
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
    /// Capability `presence-diff`: who joined and who left the room (for members that joined with
    /// `"presence":"diff"`, instead of `user_joined` and `user_left`).
    PresenceDiff {
        /// The room.
        room: RoomName,
        /// Members who joined, in order.
        joins: Vec<User>,
        /// Members who left, in order.
        leaves: Vec<User>,
    },
    /// Capability `presence-diff`: the answer to `presence`: every member of the room now, in
    /// join order.
    PresenceState {
        /// The room.
        room: RoomName,
        /// Every member, in join order.
        users: Vec<User>,
    },
    /// Capability `app-ping`: the answer to an application-level `ping`, sent after every frame
    /// queued for the connection before the ping arrived.
    Pong {},
    /// Capability `signaling`: the answer to `peers`: the other members of the room as peers,
    /// and the ICE servers to use.
    Peers {
        /// The room.
        room: RoomName,
        /// Every other member of the room (on every node), in join order.
        peers: Vec<Peer>,
        /// The STUN and TURN servers to use (possibly none). TURN servers are listed only with
        /// authentication on, with credentials for the token's user, valid for the server's
        /// TURN lifetime; fresh ones come from asking again or from `GET /turn-credentials`.
        #[serde(rename = "iceServers")]
        ice_servers: Vec<IceServer>,
    },
    /// Capability `signaling`: an offer from another member of the room.
    Offer {
        /// The sender's peer id, stamped by the server.
        from: PeerId,
        /// The user the sender is in the room as.
        user: User,
        /// The SDP of the offer.
        sdp: String,
        /// Whether the receiver is the polite peer of this pair (its peer id sorts first).
        polite: bool,
    },
    /// Capability `signaling`: an answer from another member of the room.
    Answer {
        /// The sender's peer id, stamped by the server.
        from: PeerId,
        /// The SDP of the answer.
        sdp: String,
        /// Whether the receiver is the polite peer of this pair (its peer id sorts first).
        polite: bool,
    },
    /// Capability `signaling`: an ICE candidate from another member of the room, or `null` for
    /// the end of its candidates.
    #[schemars(transform = crate::signaling::require_candidate)]
    IceCandidate {
        /// The sender's peer id, stamped by the server.
        from: PeerId,
        /// The candidate, or `null` for the end of candidates (never absent).
        candidate: Option<IceCandidate>,
        /// Whether the receiver is the polite peer of this pair (its peer id sorts first).
        polite: bool,
    },
    /// Capability `signaling`: another member of the room ended its connection with this one.
    Hangup {
        /// The sender's peer id, stamped by the server.
        from: PeerId,
        /// Whether the receiver is the polite peer of this pair (its peer id sorts first).
        polite: bool,
    },
    /// Capability `documents`: the answer to `doc_open`. Either `text` (a snapshot) or `ops`
    /// (catch-up from `since`) is present; operations and cursors after `version` follow.
    DocOpened {
        /// The document.
        doc: DocId,
        /// The document's version (the number of operations ever committed to it).
        version: u64,
        /// The whole text at `version`; absent when `ops` brings the client up to date.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// With `since`: every operation committed after `since`, in order, up to `version`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ops: Option<Vec<CommittedOp>>,
        /// Present when the open asked for `since`: `true` when `ops` lists every missed
        /// operation, `false` when they are gone and `text` is a fresh snapshot instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// Everyone else who has the document open, with their cursors at `version`.
        participants: Vec<Participant>,
    },
    /// Capability `documents`: the author's operation is committed.
    DocAck {
        /// The document.
        doc: DocId,
        /// The operation's sequence number (with this connection's client id).
        seq: u64,
        /// The version the document reached with it. A resend of an operation already
        /// committed is acknowledged again with the version of its first commit.
        version: u64,
    },
    /// Capability `documents`: another client's operation, committed and transformed so that it
    /// applies to the document at `version - 1`.
    DocOp {
        /// The document.
        doc: DocId,
        /// The version the document reached with it.
        version: u64,
        /// The operation (positions in code points).
        op: Op,
        /// Its author's client id.
        client: ClientId,
        /// Its author's sequence number.
        seq: u64,
    },
    /// Capability `documents`: another participant's cursor or selection, at `version`;
    /// `null` when it hid it or it expired.
    DocCursor {
        /// The document.
        doc: DocId,
        /// The participant's connection (its `clientId`).
        peer: PeerId,
        /// The participant's user, when its connection has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<User>,
        /// The version the positions refer to.
        version: u64,
        /// The cursor or selection, or `null`.
        cursor: Option<Selection>,
    },
    /// Capability `documents`: someone else opened the document.
    DocJoined {
        /// The document.
        doc: DocId,
        /// The participant's connection (its `clientId`).
        peer: PeerId,
        /// The participant's user, when its connection has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<User>,
    },
    /// Capability `documents`: someone else closed the document or disconnected; its cursor
    /// is gone.
    DocLeft {
        /// The document.
        doc: DocId,
        /// The participant's connection (its `clientId`).
        peer: PeerId,
    },
    /// Capability `documents`: the answer to `doc_close`.
    DocClosed {
        /// The document.
        doc: DocId,
    },
    /// Capability `documents`: a document frame could not be acted on; the document is as it
    /// was and the connection stays open.
    DocError {
        /// The document.
        doc: DocId,
        /// The refused operation's sequence number, when an operation was refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// A stable, machine-readable code.
        code: ErrorCode,
        /// A human-readable text.
        message: String,
    },
    /// Capability `streams`: the answer to `stream_subscribe`. Without `since`, or when
    /// `recovered` is `false`, `points` is a snapshot of the stream's recent points and
    /// `windows` its recent window results; with `recovered: true` both are empty and every
    /// missed `stream_point` and `stream_window` follows, in order, before live ones.
    StreamSubscribed {
        /// The stream.
        stream: StreamId,
        /// The epoch of the stream's messages; a client resumes with it in `since`.
        epoch: String,
        /// The offset of the stream's latest message (0 when it has none).
        offset: u64,
        /// Present when the subscription asked to resume (`since`): whether every missed
        /// message follows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// The value's field names, for a stream of objects; absent for plain numbers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fields: Option<Vec<String>>,
        /// Recent points, oldest first, downsampled (LTTB) to at most `maxPoints`.
        points: Vec<StreamPoint>,
        /// Recent window results, oldest first.
        windows: Vec<WindowResult>,
    },
    /// Capability `streams`: the answer to `stream_unsubscribe`.
    StreamUnsubscribed {
        /// The stream.
        stream: StreamId,
    },
    /// Capability `streams`: a live point.
    StreamPoint {
        /// The stream.
        stream: StreamId,
        /// Event time, in milliseconds since the Unix epoch.
        timestamp: i64,
        /// The value.
        value: StreamValue,
        /// For a subscriber with `maxRate`: how many points this frame stands for when more than
        /// one (it carries the latest); absent when it is one point.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conflated: Option<u64>,
        /// The point's position in the stream (the latest folded point's, when conflated).
        offset: u64,
    },
    /// Capability `streams`: a closed window's aggregates.
    StreamWindow {
        /// The stream.
        stream: StreamId,
        /// The result.
        window: WindowResult,
        /// The result's position in the stream.
        offset: u64,
    },
    /// Capability `recovery`: this connection's room stream was interrupted on the server (its
    /// node lost the cluster's broker, or the room's stream started over) while the client
    /// stayed connected. Like `room_joined` with `since`: `recovered: true` when every chat the
    /// client missed follows, in order, then live ones (nothing lost, nothing twice); `false`
    /// when some were lost and are not replayed. `epoch` and `offset` are the client's new
    /// position: live chats after `offset` follow.
    RoomResumed {
        /// The room.
        room: RoomName,
        /// The epoch of the room's message stream from now on.
        epoch: String,
        /// The room's offset when the server resumed it: with `recovered: true` the missed chats
        /// up to it follow first; every chat after it follows in any case.
        offset: u64,
        /// Whether every missed chat follows.
        recovered: bool,
    },
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
