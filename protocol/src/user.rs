//! A user as the client describes it in `join`: a plain name, or an object with an id.
//!
//! The server echoes the user back exactly as it came: an object keeps every extra field the
//! client added, and optional fields that were absent stay absent.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::limits::{MAX_URL_CHARS, MAX_USER_ID_CHARS, MAX_USER_NAME_CHARS};

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
/// beyond these are allowed and echoed back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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

impl From<&str> for User {
    fn from(name: &str) -> Self {
        User::Name(name.to_owned())
    }
}
