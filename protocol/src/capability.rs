//! The protocol's version, its core and its named capabilities.
//!
//! The **core** is what the clients of the "Real-time APIs" chapter speak: every frame exactly as
//! the chapter sends it. Everything Herald adds on top is a **capability** with a stable name.
//! A field that a capability adds to a core frame is optional in the schema (its description
//! names the capability); a server that announces the capability in `welcome` guarantees it.
//! Whole frames that a capability adds (`ping`/`pong` for `app-ping`) are sent only by servers
//! that announce it.

/// The version of the protocol this crate describes. It appears in `welcome`, in every schema's
/// `$id`, and in `protocol/CHANGELOG.md`. A minor version only adds (optional fields, frames a
/// capability guards, capabilities); a frame valid under an earlier minor version stays valid.
pub const PROTOCOL_VERSION: &str = "1.1";

/// Capability names, as they appear in `welcome`'s `capabilities`.
pub mod name {
    /// Resuming a room: `since` on `join`; `epoch` and `recovered` on `room_joined`.
    pub const RECOVERY: &str = "recovery";
    /// Room stream positions: `offset` on `chat` and on `room_joined`.
    pub const OFFSETS: &str = "offsets";
    /// The room named in presence frames: `room` on `user_joined`, `user_left` and `typing`.
    pub const ROOM_IN_PRESENCE: &str = "room-in-presence";
    /// Application-level liveness: the client's `ping` frame answered with `pong`.
    pub const APP_PING: &str = "app-ping";
    /// Authentication is on: identity comes from a token, not from `join`.
    pub const AUTH: &str = "auth";
    /// Presence as diffs instead of full member lists.
    pub const PRESENCE_DIFF: &str = "presence-diff";
    /// Shared plain-text documents edited together with operational transformation:
    /// `doc_open`, `doc_op`, `doc_cursor`, `doc_close` and their answers.
    pub const DOCUMENTS: &str = "documents";
    /// Live data streams: snapshots, live points, window aggregates, conflation.
    pub const STREAMS: &str = "streams";
    /// WebRTC signaling between members of a room: `peers`, `offer`, `answer`, `ice_candidate`,
    /// `hangup`, and `GET /turn-credentials`.
    pub const SIGNALING: &str = "signaling";
    /// The long-polling transport: the same frames in envelopes over plain HTTP requests.
    pub const LONG_POLLING: &str = "long-polling";
}

/// Whether a capability is specified and implemented, or only reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Specified in this version; Herald implements it.
    Stable,
    /// The name is reserved for a later version; no server may announce it yet.
    Planned,
}

/// One capability: its name, what it adds and its status.
#[derive(Debug, Clone, Copy)]
pub struct Capability {
    /// The name announced in `welcome`.
    pub name: &'static str,
    /// One sentence on what it is for.
    pub summary: &'static str,
    /// What it adds to the core, as `frame.field` (a field on a core frame), `frame` (a whole
    /// frame) or a prose item.
    pub adds: &'static [&'static str],
    /// Whether it is specified yet.
    pub status: Status,
}

/// Every capability, stable ones first, in the order the specification lists them.
pub const CAPABILITIES: &[Capability] = &[
    Capability {
        name: name::RECOVERY,
        summary: "A client that reconnects to a room gets the messages it missed, in order, \
                  before live ones, or is told that this was impossible.",
        adds: &[
            "join.since",
            "room_joined.epoch",
            "room_joined.recovered",
            "room_resumed (server)",
        ],
        status: Status::Stable,
    },
    Capability {
        name: name::OFFSETS,
        summary: "Every chat carries its position in the room's stream, and room_joined the \
                  position of the room's latest message.",
        adds: &["chat.offset", "room_joined.offset"],
        status: Status::Stable,
    },
    Capability {
        name: name::ROOM_IN_PRESENCE,
        summary: "Presence and typing frames name the room they are about.",
        adds: &["user_joined.room", "user_left.room", "typing.room"],
        status: Status::Stable,
    },
    Capability {
        name: name::APP_PING,
        summary: "Browsers cannot send WebSocket pings: a ping frame is answered with pong, \
                  after every frame queued before it.",
        adds: &["ping (client)", "pong (server)"],
        status: Status::Stable,
    },
    Capability {
        name: name::SIGNALING,
        summary: "WebRTC signaling between members of one room: offers, answers, ICE candidates \
                  and hangups relayed to one member by its peer id (its clientId), stamped with \
                  the sender's, with the polite role of perfect negotiation, ICE servers and \
                  TURN credentials.",
        adds: &[
            "peers (client and server)",
            "offer, answer, ice_candidate, hangup (client and server)",
            "error code peer_not_found",
            "GET /turn-credentials",
        ],
        status: Status::Stable,
    },
    Capability {
        name: name::AUTH,
        summary: "Authentication is on: every connection presents a token, identity comes from \
                  it, and rooms may be restricted.",
        adds: &[
            "tokens (header, query, subprotocol)",
            "HTTP 401 before the upgrade",
            "close code 4001",
            "error code forbidden",
        ],
        status: Status::Stable,
    },
    Capability {
        name: name::PRESENCE_DIFF,
        summary: "Joins and leaves carry only the member who changed; full lists only on \
                  room_joined and on request.",
        adds: &[
            "join.presence",
            "presence_diff",
            "presence (client)",
            "presence_state",
        ],
        status: Status::Stable,
    },
    Capability {
        name: name::DOCUMENTS,
        summary: "Plain-text documents edited by several clients at once: operations on code \
                  points against a version, transformed and applied once per (client, seq), \
                  acknowledged to their author and broadcast to the others, with cursors and \
                  catch-up by version.",
        adds: &[
            "doc_open, doc_op, doc_cursor, doc_close (client)",
            "doc_opened, doc_ack, doc_op, doc_cursor, doc_joined, doc_left, doc_closed, \
             doc_error (server)",
            "error codes doc_not_open, doc_too_large, op_too_large, invalid_op, \
             version_unknown, too_many_docs",
        ],
        status: Status::Stable,
    },
    Capability {
        name: name::STREAMS,
        summary: "Live data streams: a snapshot of recent points (downsampled with LTTB), live \
                  points and tumbling-window aggregates with offsets, resume all or nothing, \
                  and conflation for subscribers that ask for a maximum rate.",
        adds: &[
            "stream_subscribe, stream_unsubscribe (client)",
            "stream_subscribed, stream_unsubscribed, stream_point, stream_window (server)",
            "error codes stream_not_found, stream_conflict, subscription_refused",
            "POST /streams, POST /streams/{id}/points, GET /events?stream=",
            "points from backends on the broker topic for stream points",
        ],
        status: Status::Stable,
    },
    Capability {
        name: name::LONG_POLLING,
        summary: "The same frames over plain HTTP requests for clients that cannot keep a \
                  WebSocket open: numbered frames kept until acknowledged, numbered sends \
                  applied once.",
        adds: &[
            "POST /poll, GET /poll/{session}, POST /poll/{session}, DELETE /poll/{session}",
            "error codes unknown_session and overlapping_request",
        ],
        status: Status::Stable,
    },
];

/// The capabilities Herald always implements, in [`CAPABILITIES`] order. `auth` is announced
/// only when authentication is on (see [`herald_capabilities`]).
pub const HERALD_ALWAYS: [&str; 8] = [
    name::RECOVERY,
    name::OFFSETS,
    name::ROOM_IN_PRESENCE,
    name::APP_PING,
    name::PRESENCE_DIFF,
    name::SIGNALING,
    name::DOCUMENTS,
    name::STREAMS,
];

/// The `capabilities` list a Herald server puts in `welcome`: [`HERALD_ALWAYS`], plus `auth`
/// when authentication is on.
pub fn herald_capabilities(auth_enabled: bool) -> Vec<String> {
    let mut names: Vec<String> = HERALD_ALWAYS.iter().map(|&n| n.to_owned()).collect();
    if auth_enabled {
        names.push(name::AUTH.to_owned());
    }
    names
}

/// The capability with this name, if the protocol defines it.
pub fn find(name: &str) -> Option<&'static Capability> {
    CAPABILITIES.iter().find(|c| c.name == name)
}
