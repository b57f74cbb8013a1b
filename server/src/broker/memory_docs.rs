//! Documents in memory (capability `documents`): the authority for every document on one node,
//! and the state a cluster broker keeps for its fallback.
//!
//! Each document sits behind its own lock; a command runs under it and its outcome is delivered
//! through [`BrokerEvents::document`] under the same lock, so every participant sees one order:
//! the `doc_opened` answer, then operations numbered after it. [`DocState`] holds the rules
//! without any locking or delivery, so they are tested directly.
//!
//! Layer 4 (rank 39: `broker::memory` uses it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use herald_protocol::document::{
    ClientId, CommittedOp, DocId, Op, Participant, Selection, CURSOR_IDLE_SECS, DOC_LOG_OPS,
    MAX_DOC_CHARS,
};
use herald_protocol::ot::{self, char_len};
use herald_protocol::signaling::PeerId;
use herald_protocol::{ErrorCode, ServerMessage, User};
use parking_lot::Mutex;

use crate::broker::documents::{DocCommand, DocEvent, DocSession};
use crate::broker::BrokerEvents;
use crate::wire::encode;

/// One committed operation in a document's log.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The version it made.
    pub version: u64,
    /// The operation as applied.
    pub op: Op,
    /// Its author.
    pub client: ClientId,
    /// Its author's sequence number.
    pub seq: u64,
}

/// Someone who has the document open.
#[derive(Debug, Clone)]
pub struct Member {
    /// The session.
    pub session: DocSession,
    /// Its user.
    pub user: Option<User>,
    /// Its cursor at the document's current version.
    pub cursor: Option<Selection>,
    /// When it last moved its cursor or edited.
    pub active: Instant,
}

/// Why an operation was refused (the document is unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The code.
    pub code: ErrorCode,
    /// The text.
    pub message: String,
}

fn refused(code: ErrorCode, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// What an operation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Committed now at `version`, as `op` (transformed).
    Committed {
        /// The version it made.
        version: u64,
        /// The operation as applied.
        op: Op,
    },
    /// A resend of an operation committed before at `version`: acknowledge again, change
    /// nothing.
    Duplicate {
        /// The version of its first commit.
        version: u64,
    },
}

/// A document: text, version, recent operations, applied `(client, seq)`s, participants.
#[derive(Debug, Clone, Default)]
pub struct DocState {
    /// The text.
    pub text: String,
    /// Its length in code points.
    pub len: u64,
    /// Operations committed so far.
    pub version: u64,
    /// The latest operations, oldest first (at most [`DOC_LOG_OPS`]).
    pub log: VecDeque<Logged>,
    /// Per client: its latest applied sequence number and the version it made.
    pub applied: HashMap<ClientId, (u64, u64)>,
    /// Who has it open, in the order they opened it.
    pub members: Vec<Member>,
}

impl DocState {
    /// A document with `text` at `version` and no log (a snapshot).
    pub fn from_snapshot(text: String, version: u64) -> Self {
        DocState {
            len: char_len(&text),
            text,
            version,
            ..DocState::default()
        }
    }

    /// The oldest version the log can transform from.
    fn oldest(&self) -> u64 {
        self.log.front().map_or(self.version, |l| l.version - 1)
    }

    /// The operations committed after `since`, when the log still has them all.
    pub fn ops_since(&self, since: u64) -> Option<Vec<CommittedOp>> {
        if since > self.version || since < self.oldest() {
            return None;
        }
        Some(
            self.log
                .iter()
                .filter(|l| l.version > since)
                .map(|l| CommittedOp {
                    version: l.version,
                    op: l.op.clone(),
                    client: l.client.clone(),
                    seq: l.seq,
                })
                .collect(),
        )
    }

    /// Checks, transforms, applies and numbers one operation; on refusal nothing changes.
    pub fn commit(
        &mut self,
        client: &ClientId,
        seq: u64,
        base: u64,
        op: &Op,
    ) -> Result<Outcome, Refused> {
        if let Some(&(last, version)) = self.applied.get(client) {
            if seq <= last {
                let version = self
                    .log
                    .iter()
                    .find(|l| &l.client == client && l.seq == seq)
                    .map_or(version, |l| l.version);
                return Ok(Outcome::Duplicate { version });
            }
        }
        if base > self.version {
            return Err(refused(
                ErrorCode::VersionUnknown,
                format!(
                    "Base version {base} is ahead of the document (version {})",
                    self.version
                ),
            ));
        }
        if base < self.oldest() {
            return Err(refused(
                ErrorCode::VersionUnknown,
                format!("Base version {base} is too old to transform from: reopen the document"),
            ));
        }
        let mut op = op.clone();
        for logged in self.log.iter().filter(|l| l.version > base) {
            // What was committed first wins ties: its inserts go first.
            let (_, mine) = ot::transform(&logged.op, &op).map_err(|e| {
                refused(
                    ErrorCode::InvalidOp,
                    format!("The operation does not fit version {base}: {e}"),
                )
            })?;
            op = mine;
        }
        let text = ot::apply(&self.text, &op).map_err(|e| {
            refused(
                ErrorCode::InvalidOp,
                format!("The operation does not fit: {e}"),
            )
        })?;
        let len = op.target_len();
        if len > MAX_DOC_CHARS {
            return Err(refused(
                ErrorCode::DocTooLarge,
                format!("The document would have {len} code points; at most {MAX_DOC_CHARS}"),
            ));
        }
        self.text = text;
        self.len = len;
        self.version += 1;
        self.log.push_back(Logged {
            version: self.version,
            op: op.clone(),
            client: client.clone(),
            seq,
        });
        while self.log.len() > DOC_LOG_OPS {
            self.log.pop_front();
        }
        self.applied.insert(client.clone(), (seq, self.version));
        for member in &mut self.members {
            if let Some(cursor) = member.cursor.as_mut() {
                *cursor = ot::transform_selection(*cursor, &op);
            }
        }
        Ok(Outcome::Committed {
            version: self.version,
            op,
        })
    }

    /// A cursor at `version`, moved to the current version; `None` when the version is unknown.
    pub fn rebase_cursor(&self, version: u64, cursor: Selection) -> Option<Selection> {
        if version > self.version || version < self.oldest() {
            return None;
        }
        let mut cursor = Selection {
            anchor: cursor.anchor.min(self.length_at(version)?),
            head: cursor.head.min(self.length_at(version)?),
        };
        for logged in self.log.iter().filter(|l| l.version > version) {
            cursor = ot::transform_selection(cursor, &logged.op);
        }
        Some(cursor)
    }

    /// The document's length at a version the log reaches.
    fn length_at(&self, version: u64) -> Option<u64> {
        if version == self.version {
            return Some(self.len);
        }
        self.log
            .iter()
            .find(|l| l.version == version + 1)
            .map(|l| l.op.base_len())
    }

    /// The participants other than `session`, as `doc_opened` lists them.
    fn participants(&self, except: &str) -> Vec<Participant> {
        self.members
            .iter()
            .filter(|m| &*m.session != except)
            .map(|m| Participant {
                peer: PeerId(m.session.to_string()),
                user: m.user.clone(),
                cursor: m.cursor,
            })
            .collect()
    }

    /// The `doc_opened` answer for a session that has `since`.
    pub fn opened(&self, doc: &DocId, session: &str, since: Option<u64>) -> ServerMessage {
        let ops = since.and_then(|s| self.ops_since(s));
        let recovered = since.map(|_| ops.is_some());
        ServerMessage::DocOpened {
            doc: doc.clone(),
            version: self.version,
            text: ops.is_none().then(|| self.text.clone()),
            ops,
            recovered,
            participants: self.participants(session),
        }
    }
}

/// Every document on this node.
#[derive(Default)]
pub struct MemoryDocs {
    docs: DashMap<DocId, Arc<Mutex<DocState>>, ahash::RandomState>,
    events: OnceLock<Weak<dyn BrokerEvents>>,
}

impl MemoryDocs {
    /// No documents.
    pub fn new() -> Self {
        MemoryDocs::default()
    }

    /// Where outcomes go (when used on its own rather than through [`crate::broker::memory`]).
    pub fn attach(&self, events: Weak<dyn BrokerEvents>) {
        let _ = self.events.set(events);
    }

    fn doc(&self, id: &DocId) -> Arc<Mutex<DocState>> {
        if let Some(doc) = self.docs.get(id) {
            return doc.clone();
        }
        self.docs.entry(id.clone()).or_default().clone()
    }

    /// Carries out one command, delivering its outcome to `events` under the document's lock.
    pub fn submit(&self, events: &dyn BrokerEvents, command: DocCommand) {
        match command {
            DocCommand::Open {
                session,
                doc,
                user,
                since,
            } => {
                let state = self.doc(&doc);
                let mut state = state.lock();
                let again = state.members.iter().any(|m| m.session == session);
                state.members.retain(|m| m.session != session);
                state.members.push(Member {
                    session: session.clone(),
                    user: user.clone(),
                    cursor: None,
                    active: Instant::now(),
                });
                let frame = encode(&state.opened(&doc, &session, since));
                events.document(DocEvent::Opened {
                    session: session.clone(),
                    doc: doc.clone(),
                    version: state.version,
                    frame,
                });
                if !again {
                    let joined = ServerMessage::DocJoined {
                        doc: doc.clone(),
                        peer: PeerId(session.to_string()),
                        user,
                    };
                    events.document(DocEvent::Broadcast {
                        doc,
                        except: Some(session),
                        frame: encode(&joined),
                    });
                }
            }
            DocCommand::Op {
                session,
                doc,
                client,
                seq,
                base,
                op,
            } => {
                let state = self.doc(&doc);
                let mut state = state.lock();
                if let Some(m) = state.members.iter_mut().find(|m| m.session == session) {
                    m.active = Instant::now();
                }
                let outcome = state.commit(&client, seq, base, &op);
                deliver_outcome(events, &doc, &session, &client, seq, outcome);
            }
            DocCommand::Cursor {
                session,
                doc,
                version,
                cursor,
            } => {
                let state = self.doc(&doc);
                let mut state = state.lock();
                let moved = match cursor {
                    Some(c) => match state.rebase_cursor(version, c) {
                        Some(c) => Some(c),
                        None => {
                            let error = ServerMessage::DocError {
                                doc: doc.clone(),
                                seq: None,
                                code: ErrorCode::VersionUnknown,
                                message: format!("Version {version} is unknown"),
                            };
                            events.document(DocEvent::ToSession {
                                session,
                                doc,
                                frame: encode(&error),
                                closes: false,
                            });
                            return;
                        }
                    },
                    None => None,
                };
                let now = state.version;
                let Some(member) = state.members.iter_mut().find(|m| m.session == session) else {
                    return;
                };
                member.cursor = moved;
                member.active = Instant::now();
                let frame = ServerMessage::DocCursor {
                    doc: doc.clone(),
                    peer: PeerId(session.to_string()),
                    user: member.user.clone(),
                    version: now,
                    cursor: moved,
                };
                events.document(DocEvent::Broadcast {
                    doc,
                    except: Some(session),
                    frame: encode(&frame),
                });
            }
            DocCommand::Close {
                session,
                doc,
                answer,
            } => {
                let Some(state) = self.docs.get(&doc).map(|d| d.clone()) else {
                    return;
                };
                let mut state = state.lock();
                let before = state.members.len();
                state.members.retain(|m| m.session != session);
                let was_member = state.members.len() != before;
                if answer {
                    events.document(DocEvent::ToSession {
                        session: session.clone(),
                        doc: doc.clone(),
                        frame: encode(&ServerMessage::DocClosed { doc: doc.clone() }),
                        closes: true,
                    });
                }
                if was_member {
                    let left = ServerMessage::DocLeft {
                        doc: doc.clone(),
                        peer: PeerId(session.to_string()),
                    };
                    events.document(DocEvent::Broadcast {
                        doc,
                        except: Some(session),
                        frame: encode(&left),
                    });
                }
            }
        }
    }

    /// Hides the cursors of participants quiet for longer than [`CURSOR_IDLE_SECS`].
    pub fn sweep(&self, events: &dyn BrokerEvents) {
        self.expire_cursors(events, Duration::from_secs(CURSOR_IDLE_SECS));
    }

    /// Hides the cursors of participants quiet for longer than `idle`.
    pub fn expire_cursors(&self, events: &dyn BrokerEvents, idle: Duration) {
        let docs: Vec<(DocId, Arc<Mutex<DocState>>)> = self
            .docs
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        for (doc, state) in docs {
            let mut state = state.lock();
            let version = state.version;
            for member in &mut state.members {
                if member.cursor.is_some() && member.active.elapsed() > idle {
                    member.cursor = None;
                    let frame = ServerMessage::DocCursor {
                        doc: doc.clone(),
                        peer: PeerId(member.session.to_string()),
                        user: member.user.clone(),
                        version,
                        cursor: None,
                    };
                    events.document(DocEvent::Broadcast {
                        doc: doc.clone(),
                        except: Some(member.session.clone()),
                        frame: encode(&frame),
                    });
                }
            }
        }
    }

    /// Runs `f` on a document's state (tests, snapshots).
    pub fn with_doc<R>(&self, doc: &DocId, f: impl FnOnce(&mut DocState) -> R) -> R {
        let state = self.doc(doc);
        let mut state = state.lock();
        f(&mut state)
    }
}

/// Turns an operation's outcome into its events: the ack and the broadcast, a repeated ack, or
/// an error for the author.
pub fn deliver_outcome(
    events: &dyn BrokerEvents,
    doc: &DocId,
    session: &DocSession,
    client: &ClientId,
    seq: u64,
    outcome: Result<Outcome, Refused>,
) {
    match outcome {
        Ok(Outcome::Committed { version, op }) => {
            let ack = encode(&ServerMessage::DocAck {
                doc: doc.clone(),
                seq,
                version,
            });
            let frame = encode(&ServerMessage::DocOp {
                doc: doc.clone(),
                version,
                op,
                client: client.clone(),
                seq,
            });
            events.document(DocEvent::Committed {
                doc: doc.clone(),
                version,
                author: session.clone(),
                ack,
                frame,
            });
        }
        Ok(Outcome::Duplicate { version }) => {
            let ack = ServerMessage::DocAck {
                doc: doc.clone(),
                seq,
                version,
            };
            events.document(DocEvent::ToSession {
                session: session.clone(),
                doc: doc.clone(),
                frame: encode(&ack),
                closes: false,
            });
        }
        Err(refusal) => {
            let error = ServerMessage::DocError {
                doc: doc.clone(),
                seq: Some(seq),
                code: refusal.code,
                message: refusal.message,
            };
            events.document(DocEvent::ToSession {
                session: session.clone(),
                doc: doc.clone(),
                frame: encode(&error),
                closes: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_protocol::document::Component;
    use herald_protocol::ot::OpBuilder;

    fn ins(at: u64, s: &str, len: u64) -> Op {
        OpBuilder::new()
            .retain(at)
            .insert(s)
            .retain(len - at)
            .build()
    }

    #[test]
    fn concurrent_operations_are_transformed_and_numbered() {
        let mut d = DocState::default();
        let a = ClientId::from("a");
        let b = ClientId::from("b");
        assert_eq!(
            d.commit(&a, 1, 0, &ins(0, "héllo", 0)),
            Ok(Outcome::Committed {
                version: 1,
                op: ins(0, "héllo", 0)
            })
        );
        // Both made against version 1: b's lands after a's, shifted.
        d.commit(&a, 2, 1, &ins(0, "👍", 5)).unwrap();
        let out = d.commit(&b, 1, 1, &ins(5, "漢", 5)).unwrap();
        assert_eq!(d.text, "👍héllo漢");
        assert_eq!(
            out,
            Outcome::Committed {
                version: 3,
                op: ins(6, "漢", 6)
            }
        );
    }

    #[test]
    fn a_resend_is_acknowledged_again_and_never_applied_twice() {
        let mut d = DocState::default();
        let a = ClientId::from("a");
        d.commit(&a, 1, 0, &ins(0, "x", 0)).unwrap();
        assert_eq!(
            d.commit(&a, 1, 0, &ins(0, "x", 0)),
            Ok(Outcome::Duplicate { version: 1 })
        );
        assert_eq!((d.text.as_str(), d.version), ("x", 1));
    }

    #[test]
    fn a_bad_position_is_refused_and_the_document_stays_intact() {
        let mut d = DocState::default();
        let a = ClientId::from("a");
        d.commit(&a, 1, 0, &ins(0, "abc", 0)).unwrap();
        let bad = Op(vec![Component::Retain(5), Component::Insert("x".into())]);
        let refusal = d.commit(&a, 2, 1, &bad).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::InvalidOp);
        let ahead = d.commit(&a, 3, 9, &ins(0, "x", 3)).unwrap_err();
        assert_eq!(ahead.code, ErrorCode::VersionUnknown);
        assert_eq!((d.text.as_str(), d.version), ("abc", 1));
        // The refused seqs were not recorded: a corrected op with seq 2 goes through.
        d.commit(&a, 2, 1, &ins(3, "d", 3)).unwrap();
        assert_eq!(d.text, "abcd");
    }

    #[test]
    fn the_size_limit_keeps_the_document() {
        let mut d = DocState::from_snapshot("a".repeat(MAX_DOC_CHARS as usize), 7);
        let refusal = d
            .commit(&ClientId::from("a"), 1, 7, &ins(0, "b", MAX_DOC_CHARS))
            .unwrap_err();
        assert_eq!(refusal.code, ErrorCode::DocTooLarge);
        assert_eq!(d.version, 7);
    }

    #[test]
    fn catch_up_lists_every_missed_op_or_nothing() {
        let mut d = DocState::default();
        let a = ClientId::from("a");
        for i in 0..(DOC_LOG_OPS as u64 + 5) {
            d.commit(&a, i + 1, i, &ins(0, "x", i)).unwrap();
        }
        let v = d.version;
        assert_eq!(d.ops_since(v).unwrap().len(), 0);
        assert_eq!(d.ops_since(v - 3).unwrap().len(), 3);
        assert_eq!(d.ops_since(v - 3).unwrap()[0].version, v - 2);
        assert!(d.ops_since(1).is_none(), "trimmed: a snapshot instead");
        assert!(d.ops_since(v + 1).is_none());
        let ServerMessage::DocOpened {
            text,
            ops,
            recovered,
            ..
        } = d.opened(&DocId::from("d"), "s", Some(2))
        else {
            unreachable!()
        };
        assert_eq!(
            (text.map(|t| t.len()), ops, recovered),
            (Some(v as usize), None, Some(false))
        );
    }

    #[test]
    fn cursors_follow_operations() {
        let mut d = DocState::from_snapshot("héllo".into(), 0);
        d.members.push(Member {
            session: "s".into(),
            user: None,
            cursor: Some(Selection { anchor: 1, head: 3 }),
            active: Instant::now(),
        });
        d.commit(&ClientId::from("a"), 1, 0, &ins(0, "👍👍", 5))
            .unwrap();
        assert_eq!(d.members[0].cursor, Some(Selection { anchor: 3, head: 5 }));
        // A cursor sent against version 0 is moved through the op.
        assert_eq!(
            d.rebase_cursor(0, Selection { anchor: 5, head: 0 }),
            Some(Selection { anchor: 7, head: 2 })
        );
        assert_eq!(d.rebase_cursor(2, Selection { anchor: 0, head: 0 }), None);
    }

    /// Records the document events, as the node would get them.
    #[derive(Default)]
    struct Events(Mutex<Vec<DocEvent>>);

    impl BrokerEvents for Events {
        fn joined(&self, _: crate::broker::JoinAnswer) {}
        fn room_message(
            &self,
            _: &herald_protocol::RoomName,
            _: &str,
            _: u64,
            _: crate::wire::Utf8Bytes,
        ) {
        }
        fn presence(&self, _: crate::broker::PresenceChange) {}
        fn members(&self, _: &str, _: &herald_protocol::RoomName, _: Vec<User>) {}
        fn room_volatile(
            &self,
            _: &herald_protocol::RoomName,
            _: Option<&str>,
            _: &crate::wire::Utf8Bytes,
        ) {
        }
        fn private(&self, _: &str, _: &crate::wire::Utf8Bytes) -> usize {
            0
        }
        fn undeliverable(&self, _: &str, _: &str) {}
        fn direct(
            &self,
            _: &herald_protocol::RoomName,
            _: &str,
            _: &crate::wire::Utf8Bytes,
        ) -> bool {
            false
        }
        fn peer_unreachable(&self, _: &str, _: &herald_protocol::RoomName, _: &str) {}
        fn roster(
            &self,
            _: &str,
            _: &herald_protocol::RoomName,
            _: Vec<(crate::broker::SessionId, User)>,
        ) {
        }
        fn event(&self, _: Option<u64>, _: &crate::broker::Event) {}
        fn backend(&self, _: crate::broker::BackendRequest) {}
        fn local_state(&self) -> crate::broker::LocalState {
            crate::broker::LocalState::default()
        }
        fn reset(&self) {}
        fn document(&self, event: DocEvent) {
            self.0.lock().push(event);
        }
    }

    fn frames(events: &Events) -> Vec<serde_json::Value> {
        events
            .0
            .lock()
            .drain(..)
            .map(|e| match e {
                DocEvent::Opened { frame, .. }
                | DocEvent::ToSession { frame, .. }
                | DocEvent::Broadcast { frame, .. }
                | DocEvent::Committed { frame, .. } => {
                    serde_json::from_str(frame.as_str()).unwrap()
                }
            })
            .collect()
    }

    #[test]
    fn a_quiet_participants_cursor_expires_and_a_closing_one_leaves() {
        let docs = MemoryDocs::new();
        let events = Events::default();
        let doc = DocId::from("d");
        for s in ["s1", "s2"] {
            docs.submit(
                &events,
                DocCommand::Open {
                    session: s.into(),
                    doc: doc.clone(),
                    user: None,
                    since: None,
                },
            );
        }
        docs.submit(
            &events,
            DocCommand::Cursor {
                session: "s1".into(),
                doc: doc.clone(),
                version: 0,
                cursor: Some(Selection { anchor: 0, head: 0 }),
            },
        );
        frames(&events);
        // Not quiet yet: nothing expires.
        docs.expire_cursors(&events, Duration::from_secs(3600));
        assert!(frames(&events).is_empty());
        docs.expire_cursors(&events, Duration::ZERO);
        let expired = frames(&events);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0]["type"], "doc_cursor");
        assert_eq!(expired[0]["peer"], "s1");
        assert_eq!(expired[0]["cursor"], serde_json::Value::Null);
        // Once hidden, it is not announced again.
        docs.expire_cursors(&events, Duration::ZERO);
        assert!(frames(&events).is_empty());
        docs.submit(
            &events,
            DocCommand::Close {
                session: "s1".into(),
                doc: doc.clone(),
                answer: true,
            },
        );
        let closed = frames(&events);
        assert_eq!(closed[0]["type"], "doc_closed");
        assert_eq!(closed[1]["type"], "doc_left");
        assert!(docs.with_doc(&doc, |d| d.members.len()) == 1);
    }
}
