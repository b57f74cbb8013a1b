//! The documents seam (capability `documents`): the commands a node sends its broker about
//! shared documents and the events that come back.
//!
//! The broker is the authority for each document: its text, its version, the log of its latest
//! operations, which `(client, seq)` pairs it applied, and who has it open with which cursor.
//! An operation is checked against the version, transformed against what was committed since
//! its base, applied and numbered in one step (memory: under the document's lock; Redis: in one
//! script), and the outcome comes back as [`DocEvent`]s in the document's order. Like every
//! command, these carry ids and encoded frames, never sessions.
//!
//! Layer 3, below `broker` itself (rank 29 in `tests/layers.rs`): `broker::Command` and
//! `broker::BrokerEvents` name these types.

use std::sync::Arc;

use herald_protocol::document::{ClientId, DocId, Op, Selection};
use herald_protocol::User;

use crate::wire::Utf8Bytes;

/// A connection's id (the same as [`crate::broker::SessionId`]).
pub type DocSession = Arc<str>;

/// What a node asks of the broker about a document.
#[derive(Debug, Clone)]
pub enum DocCommand {
    /// A session opens a document (creating it empty when new): it gets `doc_opened`, the
    /// others `doc_joined`.
    Open {
        /// The session.
        session: DocSession,
        /// The document.
        doc: DocId,
        /// The user the session is, if any.
        user: Option<User>,
        /// The version the client already has: catch-up instead of a snapshot.
        since: Option<u64>,
    },
    /// An operation from a session that has the document open.
    Op {
        /// The session.
        session: DocSession,
        /// The document.
        doc: DocId,
        /// The author's client id.
        client: ClientId,
        /// The author's sequence number.
        seq: u64,
        /// The version it was made against.
        base: u64,
        /// The operation (already checked against the per-operation limits).
        op: Op,
    },
    /// A session's cursor, at a version it has seen.
    Cursor {
        /// The session.
        session: DocSession,
        /// The document.
        doc: DocId,
        /// The version the positions refer to.
        version: u64,
        /// The cursor, or `None` to hide it.
        cursor: Option<Selection>,
    },
    /// A session closes a document (or disconnected: `answer` false).
    Close {
        /// The session.
        session: DocSession,
        /// The document.
        doc: DocId,
        /// Whether to answer the session with `doc_closed`.
        answer: bool,
    },
}

/// What the broker delivers about a document, in the document's order.
#[derive(Debug, Clone)]
pub enum DocEvent {
    /// The answer to an open: `frame` (`doc_opened`) for `session`, which from now on takes
    /// the document's frames numbered after `version`.
    Opened {
        /// The session that opened it.
        session: DocSession,
        /// The document.
        doc: DocId,
        /// The version the answer brings the session to.
        version: u64,
        /// The encoded `doc_opened`.
        frame: Utf8Bytes,
    },
    /// An operation committed at `version`: `ack` for the session that sent it, `frame`
    /// (`doc_op`) for every other session that has the document open.
    Committed {
        /// The document.
        doc: DocId,
        /// The version it made.
        version: u64,
        /// The session that sent it.
        author: DocSession,
        /// The encoded `doc_ack`.
        ack: Utf8Bytes,
        /// The encoded `doc_op`.
        frame: Utf8Bytes,
    },
    /// A frame for one session (a repeated ack, `doc_closed`, `doc_error`).
    ToSession {
        /// The session.
        session: DocSession,
        /// The document.
        doc: DocId,
        /// The encoded frame.
        frame: Utf8Bytes,
        /// Whether the session stops taking the document's frames after this one (its close).
        closes: bool,
    },
    /// A frame for every session that has the document open, except one (`doc_cursor`,
    /// `doc_joined`, `doc_left`).
    Broadcast {
        /// The document.
        doc: DocId,
        /// The session that does not get it.
        except: Option<DocSession>,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
}
