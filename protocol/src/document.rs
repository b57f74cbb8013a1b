//! Capability `documents`: plain-text documents edited together through operational
//! transformation.
//!
//! A client opens a document by id (`doc_open`) and gets its text, its version and who else has
//! it open (`doc_opened`); from then on it receives every committed operation (`doc_op`) and
//! every cursor (`doc_cursor`) in order. It edits by sending an operation against the version it
//! last saw (`doc_op` with `base`); the server transforms it against every operation committed
//! since, applies it, bumps the version by one, acknowledges the author (`doc_ack`) and sends the
//! transformed operation to everyone else.
//!
//! **Positions and lengths count Unicode code points** (Unicode scalar values): never UTF-16
//! code units, never bytes. `"é"` written as `e` + U+0301 is two code points; `"👍"` is one
//! (two UTF-16 units in JavaScript); `"漢字"` is two.
//!
//! An operation walks the whole document from its start: `retain` n code points (keep them),
//! `insert` a string, `delete` n code points. The code points it retains and deletes must add up
//! to the document's length at its base version exactly.
//!
//! Every operation carries its author's `(client, seq)`: a client id the client chooses once and
//! keeps across reconnections, and a sequence number it increases with every new operation. The
//! server applies each pair at most once; a resend is acknowledged again with the version of the
//! first commit.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::signaling::PeerId;
use crate::user::User;

/// Longest document id, in characters.
pub const MAX_DOC_ID_CHARS: u64 = 128;

/// Characters a document id may use: letters, digits, `_`, `-`, `.` and `:`.
pub const DOC_ID_PATTERN: &str = r"^[A-Za-z0-9_.:\-]+$";

/// Longest client id (the author part of an operation's identity), in characters.
pub const MAX_CLIENT_ID_CHARS: u64 = 64;

/// Characters a client id may use: letters, digits, `_`, `-`, `.` and `:`.
pub const CLIENT_ID_PATTERN: &str = r"^[A-Za-z0-9_.:\-]+$";

/// Longest document, in code points. An operation that would make it longer is refused with
/// `doc_too_large` and the document stays as it was.
pub const MAX_DOC_CHARS: u64 = 256 * 1024;

/// Most components in one operation.
pub const MAX_OP_COMPONENTS: u64 = 1024;

/// Most code points one operation may insert (summed over its `insert` components); more is
/// refused with `op_too_large`.
pub const MAX_OP_INSERT_CHARS: u64 = 16 * 1024;

/// Operations per second one connection may send (a burst of as many is allowed); more are
/// refused with `rate_limited`.
pub const MAX_DOC_OPS_PER_SECOND: u32 = 100;

/// Most documents one connection may have open at once.
pub const MAX_OPEN_DOCS: usize = 16;

/// How many of its latest operations a document keeps for catch-up and for transforming late
/// operations. A client further behind gets a fresh snapshot (`doc_opened` without `ops`), and
/// an operation based on an older version is refused with `version_unknown`.
pub const DOC_LOG_OPS: usize = 1000;

/// Seconds after which the cursor of a participant that neither moved it nor edited is dropped
/// (`doc_cursor` with `cursor: null`).
pub const CURSOR_IDLE_SECS: u64 = 60;

/// A document's id.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct DocId(
    #[schemars(length(min = 1, max = MAX_DOC_ID_CHARS), regex(pattern = DOC_ID_PATTERN))] pub String,
);

impl DocId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for DocId {
    fn from(id: &str) -> Self {
        DocId(id.to_owned())
    }
}

impl std::fmt::Display for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id a client gives itself for authoring operations; it stays the same across
/// reconnections, so a resent operation is recognised.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct ClientId(
    #[schemars(length(min = 1, max = MAX_CLIENT_ID_CHARS), regex(pattern = CLIENT_ID_PATTERN))]
    pub String,
);

impl From<&str> for ClientId {
    fn from(id: &str) -> Self {
        ClientId(id.to_owned())
    }
}

impl ClientId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One step of an operation, as a one-key object: `{"retain":3}`, `{"insert":"héllo"}` or
/// `{"delete":2}`. Counts are code points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Component {
    /// Keep the next n code points.
    Retain(#[schemars(range(min = 1))] u64),
    /// Insert this text here.
    Insert(#[schemars(length(min = 1))] String),
    /// Delete the next n code points.
    Delete(#[schemars(range(min = 1))] u64),
}

/// An operation: components walking the whole document from its start (see the module's
/// documentation); `[]` is the no-op on the empty document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Op(#[schemars(length(max = MAX_OP_COMPONENTS))] pub Vec<Component>);

/// A cursor or a selection: `anchor` where it started, `head` where the caret is (equal for a
/// plain cursor), both code-point positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Where the selection started.
    pub anchor: u64,
    /// Where the caret is.
    pub head: u64,
}

/// Someone who has a document open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// The participant's connection (its `clientId` from `welcome`).
    pub peer: PeerId,
    /// The user it is, when the connection has one (from a token, or its room's `join`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// Its cursor or selection at the answer's version, if it has shown one and it has not
    /// expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Selection>,
}

/// A committed operation, as catch-up lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommittedOp {
    /// The version the document reached with it (the first operation makes version 1).
    pub version: u64,
    /// The operation, as applied to the document at `version - 1`.
    pub op: Op,
    /// Its author's client id.
    pub client: ClientId,
    /// Its author's sequence number.
    pub seq: u64,
}
