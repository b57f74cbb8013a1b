//! Limits every implementation enforces. They are named here once and appear in the generated
//! JSON Schema as constraints, so a client can check a frame before it sends it.

/// Largest WebSocket frame (and HTTP body) the server accepts, in bytes. A larger WebSocket frame
/// is refused with close code 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Longest chat or private-message text, in characters.
pub const MAX_TEXT_CHARS: u64 = 8_192;

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
