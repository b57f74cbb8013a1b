//! A user as the client describes it in `join`: a plain name, or an object with an id.
//!
//! The server echoes the user back exactly as it came: an object keeps every extra field the
//! client added, and optional fields that were absent stay absent.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{text, ErrorCode};
use crate::limits::{
    LimitExceeded, MAX_URL_CHARS, MAX_USER_ID_CHARS, MAX_USER_NAME_CHARS, MAX_USER_OBJECT_BYTES,
    MAX_USER_OBJECT_FIELDS,
};

/// A user: either a plain name (`"JohnDoe"`), which is also the user's id, or an object with an
/// `id` and a `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum User {
    /// A plain user name; it is the user's id too.
    Name(#[schemars(length(min = 1, max = MAX_USER_NAME_CHARS))] String),
    /// A user object; `id` identifies the user, other fields are shown to others as they are.
    // Boxed: a user is stored with every room membership and session, and most are plain
    // names, which then take 24 bytes instead of the object's 144.
    Object(Box<UserObject>),
}

/// A user object, such as `{"id":"user123","name":"John Doe","avatar":"https://..."}`. Fields
/// beyond these are allowed and echoed back unchanged. At most 1024 bytes as compact JSON
/// (`user object over 1024 bytes` otherwise) and at most 32 fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("maxProperties" = MAX_USER_OBJECT_FIELDS))]
pub struct UserObject {
    /// The user's stable id; private messages and notifications are addressed to it.
    #[schemars(length(min = 1, max = MAX_USER_ID_CHARS))]
    pub id: String,
    /// The name shown to other users.
    #[schemars(length(min = 1, max = MAX_USER_NAME_CHARS))]
    pub name: String,
    /// An optional picture URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_URL_CHARS))]
    pub avatar: Option<String>,
    /// Any further fields the client sent, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// The user's id: the string itself, or the object's `id`.
    pub fn id(&self) -> &str {
        match self {
            User::Name(name) => name,
            User::Object(object) => &object.id,
        }
    }

    /// The name to show: the string itself, or the object's `name`.
    pub fn display_name(&self) -> &str {
        match self {
            User::Name(name) => name,
            User::Object(object) => &object.name,
        }
    }
}

impl User {
    /// Checks that the user, serialized as compact JSON, is at most
    /// [`MAX_USER_OBJECT_BYTES`]; the error carries `invalid_message` and
    /// [`text::USER_TOO_LARGE`]. A string user is bounded by the schema already, and passes.
    pub fn check_size(&self) -> Result<(), LimitExceeded> {
        match self {
            User::Name(_) => Ok(()),
            User::Object(object) => {
                let mut counter = ByteCounter(0);
                // Writing into a counter cannot fail, and a user object always serialises.
                let _ = serde_json::to_writer(&mut counter, object);
                if counter.0 <= MAX_USER_OBJECT_BYTES {
                    Ok(())
                } else {
                    Err(LimitExceeded {
                        code: ErrorCode::InvalidMessage,
                        message: text::USER_TOO_LARGE,
                    })
                }
            }
        }
    }
}

/// Counts the bytes written to it, without keeping them.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl From<&str> for User {
    fn from(name: &str) -> Self {
        User::Name(name.to_owned())
    }
}
