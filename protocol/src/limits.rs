//! Limits every implementation enforces. They are named here once and appear in the generated
//! JSON Schema as constraints, so a client can check a frame before it sends it.

/// Largest WebSocket frame (and HTTP body) the server accepts, in bytes. A larger WebSocket frame
/// is refused with close code 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

// Chat and private-message text has no limit of its own: the frame limit governs (protocol 1.1
// removed the 8,192-character cap of 1.0, which refused frames well under 64 KiB).

/// Largest user object (a `join`'s object `user`, extra fields included), in bytes of its compact
/// JSON serialization. Every presence frame carries every member's object, so this bounds what
/// one member can make each join cost. JSON Schema cannot express it; the schema documents it and
/// caps the number of fields, and [`crate::ClientMessage::check_limits`] enforces it.
pub const MAX_USER_OBJECT_BYTES: usize = 1024;

/// Most fields a user object may have (`id`, `name`, `avatar` and extras).
pub const MAX_USER_OBJECT_FIELDS: u64 = 32;

/// Longest text of a backend's `room.messages` payload, in characters: as long as a frame can be,
/// so that it never refuses what a member could send.
pub const MAX_TOPIC_TEXT_CHARS: u64 = MAX_FRAME_BYTES as u64;

/// Longest room name, in characters.
pub const MAX_ROOM_NAME_CHARS: u64 = 64;

/// Characters a room name may use: letters, digits, `_`, `-`, `.` and `:`.
pub const ROOM_NAME_PATTERN: &str = r"^[A-Za-z0-9_.:\-]+$";

/// Longest user name (a string user, or an object user's `name`), in characters.
pub const MAX_USER_NAME_CHARS: u64 = 64;

/// Longest user id (an object user's `id`, a private message's `target`), in characters.
pub const MAX_USER_ID_CHARS: u64 = 128;

/// Longest URL (an object user's `avatar`), in characters.
pub const MAX_URL_CHARS: u64 = 2_048;

/// Longest notification message, in characters.
pub const MAX_NOTIFICATION_CHARS: u64 = 8_192;

/// Longest notification `type`, update `resource` or update `action`, in characters.
pub const MAX_LABEL_CHARS: u64 = 128;

/// Longest SDP in a signaling `offer` or `answer` (capability `signaling`), in characters. A
/// data-channel-only description is under 1 KiB and an audio and video one with simulcast a few
/// KiB; 32 KiB leaves room for many media sections while the frame, with JSON escaping of the
/// SDP's line breaks, stays well under [`MAX_FRAME_BYTES`].
pub const MAX_SDP_CHARS: u64 = 32 * 1024;

/// Longest ICE candidate line (capability `signaling`), in characters. Real candidates are
/// under 256.
pub const MAX_ICE_CANDIDATE_CHARS: u64 = 1024;

/// Longest `sdpMid` of an ICE candidate, in characters.
pub const MAX_ICE_MID_CHARS: u64 = 64;

/// Longest ICE username fragment, in characters (RFC 8839 allows 256).
pub const MAX_ICE_UFRAG_CHARS: u64 = 256;

/// Longest peer id (a `clientId`), in characters.
pub const MAX_PEER_ID_CHARS: u64 = 64;

/// Characters a peer id may use: letters, digits, `_`, `-`, `.` and `:`.
pub const PEER_ID_PATTERN: &str = r"^[A-Za-z0-9_.:\-]+$";

/// Longest stream id (capability `streams`), in characters.
pub const MAX_STREAM_ID_CHARS: u64 = 64;

/// Characters a stream id may use: letters, digits, `_`, `-`, `.` and `:`.
pub const STREAM_ID_PATTERN: &str = r"^[A-Za-z0-9_.:\-]+$";

/// Most fields an object-valued stream may declare.
pub const MAX_STREAM_FIELDS: u64 = 32;

/// Most points one `POST /streams/{id}/points` (or one `stream.points` payload) may carry.
pub const MAX_POINTS_PER_REQUEST: u64 = 1_000;

/// Most points a stream keeps (`maxDataPoints`).
pub const MAX_STREAM_POINTS: u64 = 100_000;

/// Most points a `stream_subscribe` snapshot may ask for (`maxPoints`).
pub const MAX_SNAPSHOT_POINTS: u64 = 10_000;

/// The snapshot size when `stream_subscribe` names none.
pub const DEFAULT_SNAPSHOT_POINTS: u32 = 1_000;

/// Highest `maxRate` (point frames per second) a subscriber may ask for.
pub const MAX_STREAM_RATE: f64 = 1_000.0;

/// Most streams one connection may subscribe to at once.
pub const MAX_STREAM_SUBSCRIPTIONS: usize = 64;

/// A frame that passed the schema but breaks a limit the schema cannot express.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The code to answer with.
    pub code: crate::ErrorCode,
    /// The text to answer with.
    pub message: &'static str,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for LimitExceeded {}
