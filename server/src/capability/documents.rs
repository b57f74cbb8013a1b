//! Shared documents (capability `documents`): clients open plain-text documents by id, edit
//! them with operations against a version, and see each other's operations and cursors.
//!
//! The broker is the authority (`broker::documents`): it checks each operation's base version,
//! transforms it against what was committed since, applies it once per `(client, seq)`,
//! numbers it, and delivers the outcome in the document's order. This module does what is local
//! to a connection:
//! - which documents each session has open (at most [`MAX_OPEN_DOCS`]) and from which version
//!   on it takes a document's frames, so that the `doc_opened` answer and the operations after
//!   it are never missed nor doubled;
//! - the limits checked before anything reaches the broker: operations per second per
//!   connection, the size of one operation;
//! - access: with authentication on, a token's `rooms` claim must match `doc:<id>`.
//!
//! Errors about a document come as `doc_error` frames with a stable code; the document is left
//! as it was.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use herald_protocol::document::{
    DocId, MAX_DOC_OPS_PER_SECOND, MAX_OPEN_DOCS, MAX_OP_COMPONENTS, MAX_OP_INSERT_CHARS,
};
use herald_protocol::{ClientMessage, ErrorCode, ServerMessage};
use parking_lot::Mutex;

use crate::broker::documents::{DocCommand, DocEvent};
use crate::broker::SessionId;
use crate::node::{Capability, Node};
use crate::session::Session;
use crate::wire::Utf8Bytes;

/// One session that has a document open (or is opening it), here.
struct Reader {
    session: Arc<Session>,
    /// The last version it has: frames numbered up to it are not sent again. `None` until the
    /// `doc_opened` answer comes; frames that arrive before it (a cluster broker's bus can
    /// overtake the answer) wait in `early`.
    floor: Option<u64>,
    /// Frames that came before the answer, with their version (`None`: not numbered).
    early: Vec<(Option<u64>, Utf8Bytes)>,
    /// The other participants it knows of (from `doc_opened`, then `doc_joined` and
    /// `doc_left`): a cluster's bus can bring a `doc_joined` of someone the answer already
    /// listed, or a `doc_left` of someone it never listed; those are not sent.
    peers: HashSet<String>,
}

impl Reader {
    /// Queues a numbered frame once, in order; returns whether it was sent now.
    fn numbered(&mut self, version: u64, frame: &Utf8Bytes) -> bool {
        match self.floor {
            None => {
                self.early.push((Some(version), frame.clone()));
                false
            }
            Some(floor) if floor >= version => false,
            Some(_) => {
                self.floor = Some(version);
                self.session.push(frame.clone())
            }
        }
    }

    fn unnumbered(&mut self, frame: &Utf8Bytes) -> bool {
        if self.floor.is_none() {
            self.early.push((None, frame.clone()));
            return false;
        }
        if !self.changes_peers(frame) {
            return false;
        }
        self.session.push(frame.clone())
    }

    /// Whether a frame is news to this reader: a `doc_joined` of a peer it does not know yet,
    /// a `doc_left` of one it knows, or any other frame.
    fn changes_peers(&mut self, frame: &Utf8Bytes) -> bool {
        let text = frame.as_str();
        if !text.starts_with(r#"{"type":"doc_joined""#)
            && !text.starts_with(r#"{"type":"doc_left""#)
        {
            return true;
        }
        match serde_json::from_str::<ServerMessage>(text) {
            Ok(ServerMessage::DocJoined { peer, .. }) => self.peers.insert(peer.0),
            Ok(ServerMessage::DocLeft { peer, .. }) => self.peers.remove(&peer.0),
            _ => true,
        }
    }

    /// Starts the view of the other participants from a `doc_opened` answer.
    fn opened(&mut self, frame: &Utf8Bytes) {
        if let Ok(ServerMessage::DocOpened { participants, .. }) =
            serde_json::from_str::<ServerMessage>(frame.as_str())
        {
            self.peers = participants.into_iter().map(|p| p.peer.0).collect();
        }
    }
}

/// What this node holds for one session.
struct Open {
    docs: HashSet<DocId>,
    /// Tokens for operations: refilled at [`MAX_DOC_OPS_PER_SECOND`], at most as many.
    tokens: f64,
    refilled: Instant,
}

impl Open {
    fn new() -> Self {
        Open {
            docs: HashSet::new(),
            tokens: f64::from(MAX_DOC_OPS_PER_SECOND),
            refilled: Instant::now(),
        }
    }

    fn take_token(&mut self) -> bool {
        let rate = f64::from(MAX_DOC_OPS_PER_SECOND);
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
struct State {
    /// Document → the sessions here that take its frames.
    readers: HashMap<DocId, HashMap<SessionId, Reader>>,
    /// Session → what it has open.
    sessions: HashMap<SessionId, Open>,
}

/// The documents capability.
#[derive(Default)]
pub struct Documents {
    state: Mutex<State>,
}

impl Documents {
    /// A capability with no document open.
    pub fn new() -> Self {
        Documents::default()
    }
}

fn doc_error(
    node: &Node,
    session: &Session,
    doc: DocId,
    seq: Option<u64>,
    code: ErrorCode,
    message: String,
) {
    node.metrics.error(code);
    node.send(
        session,
        &ServerMessage::DocError {
            doc,
            seq,
            code,
            message,
        },
    );
}

impl Capability for Documents {
    fn name(&self) -> &'static str {
        "documents"
    }

    fn handles(&self) -> &'static [&'static str] {
        &["doc_open", "doc_op", "doc_cursor", "doc_close"]
    }

    fn announces(&self) -> &'static [&'static str] {
        &[herald_protocol::capability::name::DOCUMENTS]
    }

    fn handle(&self, node: &Node, session: &Arc<Session>, message: ClientMessage) {
        let id = session.id.clone();
        match message {
            ClientMessage::DocOpen { doc, since } => {
                if let Some(identity) = session.identity.get() {
                    if !identity.may_join(&format!("doc:{doc}")) {
                        let text = format!("You may not open document {doc}");
                        return doc_error(node, session, doc, None, ErrorCode::Forbidden, text);
                    }
                }
                {
                    let mut state = self.state.lock();
                    let open = state.sessions.entry(id.clone()).or_insert_with(Open::new);
                    if !open.docs.contains(&doc) && open.docs.len() >= MAX_OPEN_DOCS {
                        drop(state);
                        let text = format!("At most {MAX_OPEN_DOCS} documents may be open at once");
                        return doc_error(node, session, doc, None, ErrorCode::TooManyDocs, text);
                    }
                    open.docs.insert(doc.clone());
                    // Opening (or reopening): the answer starts the session from its version.
                    state.readers.entry(doc.clone()).or_default().insert(
                        id.clone(),
                        Reader {
                            session: session.clone(),
                            floor: None,
                            early: Vec::new(),
                            peers: HashSet::new(),
                        },
                    );
                }
                let user = session
                    .state
                    .lock()
                    .user
                    .clone()
                    .or_else(|| session.identity.get().map(|i| i.user.clone()));
                node.submit_document(DocCommand::Open {
                    session: id,
                    doc,
                    user,
                    since,
                });
            }
            ClientMessage::DocOp {
                doc,
                client,
                seq,
                base,
                op,
            } => {
                let allowed = {
                    let mut state = self.state.lock();
                    match state.sessions.get_mut(&id) {
                        Some(open) if open.docs.contains(&doc) => Ok(open.take_token()),
                        _ => Err(()),
                    }
                };
                match allowed {
                    Err(()) => return not_open(node, session, doc, Some(seq)),
                    Ok(false) => {
                        let text = format!(
                            "More than {MAX_DOC_OPS_PER_SECOND} operations per second; slow down"
                        );
                        return doc_error(
                            node,
                            session,
                            doc,
                            Some(seq),
                            ErrorCode::RateLimited,
                            text,
                        );
                    }
                    Ok(true) => {}
                }
                if op.0.len() as u64 > MAX_OP_COMPONENTS || op.inserted_len() > MAX_OP_INSERT_CHARS
                {
                    let text = format!(
                        "An operation may insert at most {MAX_OP_INSERT_CHARS} code points in at \
                         most {MAX_OP_COMPONENTS} components"
                    );
                    return doc_error(node, session, doc, Some(seq), ErrorCode::OpTooLarge, text);
                }
                if let Err(e) = op.check() {
                    return doc_error(
                        node,
                        session,
                        doc,
                        Some(seq),
                        ErrorCode::InvalidOp,
                        e.to_string(),
                    );
                }
                node.submit_document(DocCommand::Op {
                    session: id,
                    doc,
                    client,
                    seq,
                    base,
                    op,
                });
            }
            ClientMessage::DocCursor {
                doc,
                version,
                cursor,
            } => {
                if !self.is_open(&id, &doc) {
                    return not_open(node, session, doc, None);
                }
                node.submit_document(DocCommand::Cursor {
                    session: id,
                    doc,
                    version,
                    cursor,
                });
            }
            ClientMessage::DocClose { doc } => {
                let was_open = {
                    let mut state = self.state.lock();
                    state
                        .sessions
                        .get_mut(&id)
                        .is_some_and(|open| open.docs.remove(&doc))
                };
                if !was_open {
                    return not_open(node, session, doc, None);
                }
                node.submit_document(DocCommand::Close {
                    session: id,
                    doc,
                    answer: true,
                });
            }
            // The node dispatches only the types listed in `handles`.
            _ => {}
        }
    }

    fn document(&self, node: &Node, event: &DocEvent) -> bool {
        let mut state = self.state.lock();
        let mut sent = 0usize;
        match event {
            DocEvent::Opened {
                session,
                doc,
                version,
                frame,
            } => {
                // Closed meanwhile, or the connection is gone: nothing to start.
                let Some(reader) = state.readers.get_mut(doc).and_then(|r| r.get_mut(session))
                else {
                    return true;
                };
                sent += usize::from(reader.session.push(frame.clone()));
                reader.opened(frame);
                // Each answer restarts the session's view from its version.
                reader.floor = Some(reader.floor.map_or(*version, |f| f.max(*version)));
                for (number, frame) in std::mem::take(&mut reader.early) {
                    let now = match number {
                        Some(v) => reader.numbered(v, &frame),
                        None => reader.unnumbered(&frame),
                    };
                    sent += usize::from(now);
                }
            }
            DocEvent::Committed {
                doc,
                version,
                author,
                ack,
                frame,
            } => {
                if let Some(readers) = state.readers.get_mut(doc) {
                    for (id, reader) in readers.iter_mut() {
                        let frame = if id == author { ack } else { frame };
                        sent += usize::from(reader.numbered(*version, frame));
                    }
                }
            }
            DocEvent::ToSession {
                session,
                doc,
                frame,
                closes,
            } => {
                let readers = state.readers.get_mut(doc);
                let target = match (readers, closes) {
                    (Some(readers), true) => readers.remove(session).map(|r| r.session),
                    (Some(readers), false) => readers.get(session).map(|r| r.session.clone()),
                    (None, _) => None,
                };
                if state.readers.get(doc).is_some_and(|r| r.is_empty()) {
                    state.readers.remove(doc);
                }
                if let Some(target) = target.or_else(|| node.hub.session(session)) {
                    sent += usize::from(target.push(frame.clone()));
                }
            }
            DocEvent::Broadcast { doc, except, frame } => {
                if let Some(readers) = state.readers.get_mut(doc) {
                    for (id, reader) in readers.iter_mut() {
                        if Some(id) != except.as_ref() {
                            sent += usize::from(reader.unnumbered(frame));
                        }
                    }
                }
            }
        }
        drop(state);
        node.metrics.frames_out.inc_by(sent as u64);
        true
    }

    fn closed(&self, node: &Node, session: &Arc<Session>) {
        let docs = {
            let mut state = self.state.lock();
            let Some(open) = state.sessions.remove(&session.id) else {
                return;
            };
            for doc in &open.docs {
                if let Some(readers) = state.readers.get_mut(doc) {
                    readers.remove(&session.id);
                    if readers.is_empty() {
                        state.readers.remove(doc);
                    }
                }
            }
            open.docs
        };
        for doc in docs {
            node.submit_document(DocCommand::Close {
                session: session.id.clone(),
                doc,
                answer: false,
            });
        }
    }
}

impl Documents {
    fn is_open(&self, session: &SessionId, doc: &DocId) -> bool {
        self.state
            .lock()
            .sessions
            .get(session)
            .is_some_and(|open| open.docs.contains(doc))
    }
}

fn not_open(node: &Node, session: &Session, doc: DocId, seq: Option<u64>) {
    let text = format!("Document {doc} is not open on this connection");
    doc_error(node, session, doc, seq, ErrorCode::DocNotOpen, text);
}
