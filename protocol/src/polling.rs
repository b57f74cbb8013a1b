//! Long polling (capability `long-polling`): the same client and server frames as on a
//! WebSocket, carried in small JSON envelopes over plain HTTP requests.
//!
//! - `POST /poll` opens a session and answers [`PollOpened`] (the session's secret id and its
//!   first frames, `welcome` among them).
//! - `GET /poll/{session}?ack=N` answers [`PollAnswer`]: the server frames after number `N`,
//!   waiting up to the hold time for one when there is none yet.
//! - `POST /poll/{session}` with a [`PollSend`] body hands client frames to the server and
//!   answers [`PollSent`].
//! - `DELETE /poll/{session}` ends the session (`204`).
//!
//! Server frames are numbered 1, 2, 3... within a session. An answer's `cursor` is the number of
//! its last frame (or, when it has none, the number the client acknowledged), and the client's
//! next poll acknowledges it with `ack=cursor`. Frames stay on the server until acknowledged: a
//! poll whose answer was lost is repeated with the same `ack` and gets the same frames again.
//! Sends are numbered too (`seq` 1, 2, 3...): a send repeated with the number of the last one
//! applied is not applied again and gets the same answer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A frame inside an envelope, as the schemas show it: a JSON object, which is a WebSocket frame
/// (`server-message` from the server, `client-message` from the client). The envelopes' schemas
/// name those schemas in prose instead of embedding them.
type FrameSchema = Vec<serde_json::Map<String, serde_json::Value>>;

/// Client frames one send may carry at most.
pub const MAX_FRAMES_PER_SEND: usize = 100;

/// Answer to `POST /poll`: the new session.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollOpened {
    /// The session's secret id, for the paths of its polls, sends and close. It is not the
    /// `clientId` (which other members see): whoever holds it speaks as the session.
    pub session: String,
    /// The number of the last frame in `frames`: acknowledge it with the first poll.
    pub cursor: u64,
    /// The session's first frames (each a `server-message`), `welcome` first.
    #[schemars(with = "FrameSchema")]
    pub frames: Vec<Box<RawValue>>,
    /// How long the server holds a poll that has nothing to answer, in milliseconds.
    #[serde(rename = "holdMs")]
    pub hold_ms: u64,
    /// How long a session may go without a request before the server ends it, in
    /// milliseconds.
    #[serde(rename = "idleMs")]
    pub idle_ms: u64,
}

/// Answer to `GET /poll/{session}?ack=N`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollAnswer {
    /// The number of the last frame in `frames`, or `N` when there is none: the next poll's
    /// `ack`.
    pub cursor: u64,
    /// The server frames (each a `server-message`) numbered `N + 1` to `cursor`, in order;
    /// empty when the hold time passed without any.
    #[schemars(with = "FrameSchema")]
    pub frames: Vec<Box<RawValue>>,
    /// Present when the server has ended the session: these are its last frames, and any later
    /// request for it is answered `404` `unknown_session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<PollClosed>,
}

/// Why the server ended a polling session: the close code and reason a WebSocket would have
/// been closed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollClosed {
    /// The WebSocket close code (1001 shutting down or idle, 1008 slow consumer or rate
    /// limited, 4001 token expired).
    pub code: u16,
    /// The WebSocket close reason.
    pub reason: String,
}

/// Body of `POST /poll/{session}`: client frames, in order.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollSend {
    /// This send's number: 1 for the session's first, then one more each time. Repeating the
    /// number of the last send applied (a retry after a lost answer) applies nothing and gets
    /// the same answer.
    #[schemars(range(min = 1))]
    pub seq: u64,
    /// Client frames (each a `client-message`), exactly as they would be sent on a WebSocket.
    /// Each is checked as a WebSocket frame is: a bad one is answered with an `error` frame on
    /// the poll, and the others are applied.
    #[schemars(with = "Vec<serde_json::Value>", length(min = 1, max = MAX_FRAMES_PER_SEND))]
    pub frames: Vec<Box<RawValue>>,
}

/// Answer to `POST /poll/{session}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollSent {
    /// The send's number.
    pub seq: u64,
    /// How many of its frames the server took (all of them; the answers, errors included,
    /// come on the poll).
    pub accepted: u64,
}
