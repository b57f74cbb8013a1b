//! Documents in Redis (capability `documents` with `--broker redis://`): every node of a
//! cluster edits the same documents, with one order per document, and a document outlives the
//! nodes.
//!
//! Keys of document D, under the cluster prefix P, all with the hash tag `{doc:D}` so that one
//! document's keys share a slot (ready for Redis Cluster):
//! - `P:{doc:D}:meta` (hash): `version`, `len` (code points), `snap` (the snapshot's version);
//! - `P:{doc:D}:log` (list): the latest [`DOC_LOG_OPS`] committed operations, oldest first, each
//!   a `CommittedOp` as JSON;
//! - `P:{doc:D}:snap` (string): the text at version `snap`, refreshed every
//!   [`SNAPSHOT_EVERY`] operations, so the text is always the snapshot plus logged operations;
//! - `P:{doc:D}:applied` (hash): client id → `SEQ:VERSION`, its latest applied operation;
//! - `P:{doc:D}:members` (hash): `NODE/SESSION` → `{"user","cursor","v"}`, who has it open.
//!
//! An operation is committed in two steps: the node reads what was committed since the
//! operation's base (one script, a consistent view), transforms and checks it in Rust (the
//! shared `herald_protocol::ot`), then the commit script checks that the version is still the
//! one it read and that `(client, seq)` is new, and only then appends, bumps the version and
//! publishes the `doc_op` on the documents channel, all in one atomic step; when another node
//! committed meanwhile, the node reads again and retries. Two nodes therefore never commit two
//! operations at one version, and the bus carries them in version order.
//!
//! Each document's commands run in order on a worker of their own; different documents' run at
//! once over one multiplexed connection. Every node reads the documents channel `P:docs` and
//! hands what it reads to its node through [`BrokerEvents::document`], acks included: the
//! author's node turns an `O` message of its own session into the `doc_ack`.
//!
//! Not done here (the memory broker does them): hiding a quiet participant's cursor after
//! [`herald_protocol::document::CURSOR_IDLE_SECS`]; forgetting the participants of a node that
//! died without closing.
//!
//! Layer 4 (rank 40: `broker::redis` uses it).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::cluster_async::ClusterConnection;
use ::redis::Script;
use futures_util::StreamExt;
use herald_protocol::document::{
    CommittedOp, DocId, Op, Participant, Selection, DOC_LOG_OPS, MAX_DOC_CHARS,
};
use herald_protocol::ot;
use herald_protocol::signaling::PeerId;
use herald_protocol::{ErrorCode, ServerMessage, User};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::broker::bus::{decode_doc, encode_doc, DocBusMessage};
use crate::broker::documents::{DocCommand, DocEvent, DocSession};
use crate::broker::BrokerEvents;
use crate::wire::encode;

/// Operations between two snapshots.
pub const SNAPSHOT_EVERY: u64 = 100;

/// How often a commit is retried when other nodes keep committing first.
const COMMIT_ATTEMPTS: usize = 32;

/// Reads a consistent view: `{version, len, snap, first logged version, snapshot text or "",
/// the client's "SEQ:VERSION" or "", logged ops after ARGV[1], members as a flat list}`.
const READ: &str = r#"
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local len = tonumber(redis.call('HGET', KEYS[1], 'len') or '0')
local snap = tonumber(redis.call('HGET', KEYS[1], 'snap') or '0')
local n = redis.call('LLEN', KEYS[2])
local first = version - n + 1
local start = tonumber(ARGV[1]) + 1 - first
if start < 0 then start = 0 end
local entries = {}
if start < n then entries = redis.call('LRANGE', KEYS[2], start, -1) end
local text = ''
if ARGV[2] == '1' then text = redis.call('GET', KEYS[3]) or '' end
local applied = ''
if ARGV[3] ~= '' then applied = redis.call('HGET', KEYS[4], ARGV[3]) or '' end
return {version, len, snap, first, text, applied, entries, redis.call('HGETALL', KEYS[5])}
"#;

/// Commits when the version is still ARGV[1] and (client ARGV[2], seq ARGV[3]) is new:
/// `{1, version}` committed, `{0, version}` moved on (read again), `{2, version}` a resend.
const COMMIT: &str = r#"
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local applied = redis.call('HGET', KEYS[3], ARGV[2])
if applied then
  local seq, at = string.match(applied, '^(%d+):(%d+)$')
  if seq and tonumber(seq) >= tonumber(ARGV[3]) then return {2, tonumber(at)} end
end
if version ~= tonumber(ARGV[1]) then return {0, version} end
version = version + 1
redis.call('HSET', KEYS[1], 'version', version, 'len', ARGV[4])
redis.call('RPUSH', KEYS[2], ARGV[5])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3] .. ':' .. version)
redis.call('PUBLISH', ARGV[6], 'h1 O ' .. ARGV[9] .. ' ' .. version .. ' ' .. ARGV[10] .. ' ' .. ARGV[3] .. '\n' .. ARGV[7])
return {1, version}
"#;

/// Stores the snapshot ARGV[2] of version ARGV[1] when it is newer than the stored one.
const SNAPSHOT: &str = r#"
local snap = tonumber(redis.call('HGET', KEYS[1], 'snap') or '0')
if tonumber(ARGV[1]) <= snap then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'snap', ARGV[1])
return 1
"#;

struct Keys {
    meta: String,
    log: String,
    snap: String,
    applied: String,
    members: String,
}

/// A consistent view of a document.
struct View {
    version: u64,
    len: u64,
    snap: u64,
    /// The version of the oldest logged operation (`version + 1` when none is logged).
    first: u64,
    text: String,
    applied: Option<(u64, u64)>,
    ops: Vec<CommittedOp>,
    members: Vec<(String, serde_json::Value)>,
}

impl View {
    /// Whether the log holds every operation after `version`.
    fn reaches(&self, version: u64) -> bool {
        version <= self.version && version + 1 >= self.first
    }

    /// The document's length at a logged version.
    fn length_at(&self, version: u64) -> Option<u64> {
        if version == self.version {
            return Some(self.len);
        }
        self.ops
            .iter()
            .find(|c| c.version == version + 1)
            .map(|c| c.op.base_len())
    }

    /// A cursor at `version` moved to the current version, when the view reaches it.
    fn rebase(&self, version: u64, cursor: Selection) -> Option<Selection> {
        let len = self.length_at(version)?;
        let mut cursor = Selection {
            anchor: cursor.anchor.min(len),
            head: cursor.head.min(len),
        };
        for c in self.ops.iter().filter(|c| c.version > version) {
            cursor = ot::transform_selection(cursor, &c.op);
        }
        Some(cursor)
    }
}

/// Who this node is and where things go.
struct Ctx {
    prefix: String,
    node: String,
    channel: String,
    events: Weak<dyn BrokerEvents>,
    read: Script,
    commit: Script,
    snapshot: Script,
}

impl Ctx {
    fn keys(&self, doc: &DocId) -> Keys {
        let base = format!("{}:{{doc:{}}}", self.prefix, doc.as_str());
        Keys {
            meta: format!("{base}:meta"),
            log: format!("{base}:log"),
            snap: format!("{base}:snap"),
            applied: format!("{base}:applied"),
            members: format!("{base}:members"),
        }
    }

    fn member(&self, session: &str) -> String {
        format!("{}/{session}", self.node)
    }

    /// The session a member is, when it is one of this node's.
    fn local(&self, member: &str) -> Option<DocSession> {
        member
            .strip_prefix(self.node.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .map(Arc::from)
    }

    fn deliver(&self, event: DocEvent) {
        if let Some(events) = self.events.upgrade() {
            events.document(event);
        }
    }

    fn to_session(&self, session: &DocSession, doc: &DocId, message: &ServerMessage) {
        self.deliver(DocEvent::ToSession {
            session: session.clone(),
            doc: doc.clone(),
            frame: encode(message),
            closes: matches!(message, ServerMessage::DocClosed { .. }),
        });
    }

    fn refuse(
        &self,
        session: &DocSession,
        doc: &DocId,
        seq: Option<u64>,
        code: ErrorCode,
        text: String,
    ) {
        let error = ServerMessage::DocError {
            doc: doc.clone(),
            seq,
            code,
            message: text,
        };
        self.to_session(session, doc, &error);
    }

    async fn read(
        &self,
        conn: &mut Conn,
        doc: &DocId,
        after: u64,
        text: bool,
        client: &str,
    ) -> ::redis::RedisResult<View> {
        let k = self.keys(doc);
        type Raw = (u64, u64, u64, i64, String, String, Vec<String>, Vec<String>);
        let raw: Raw = self
            .read
            .key(&k.meta)
            .key(&k.log)
            .key(&k.snap)
            .key(&k.applied)
            .key(&k.members)
            .arg(after)
            .arg(if text { "1" } else { "0" })
            .arg(client)
            .invoke_async(conn)
            .await?;
        let (version, len, snap, first, text, applied, entries, members) = raw;
        let applied = applied
            .split_once(':')
            .and_then(|(s, v)| Some((s.parse().ok()?, v.parse().ok()?)));
        let ops = entries
            .iter()
            .filter_map(|e| serde_json::from_str::<CommittedOp>(e).ok())
            .collect();
        let members = members
            .chunks(2)
            .filter_map(|pair| match pair {
                [k, v] => Some((k.clone(), serde_json::from_str(v).ok()?)),
                _ => None,
            })
            .collect();
        Ok(View {
            version,
            len,
            snap,
            first: first.max(0) as u64,
            text,
            applied,
            ops,
            members,
        })
    }

    async fn publish(&self, conn: &mut Conn, message: &DocBusMessage) {
        let payload = encode_doc(message);
        let result: ::redis::RedisResult<i64> = ::redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(conn)
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "publishing a document frame failed");
        }
    }

    async fn handle(&self, conn: &mut Conn, command: DocCommand) -> ::redis::RedisResult<()> {
        match command {
            DocCommand::Open {
                session,
                doc,
                user,
                since,
            } => self.open(conn, session, doc, user, since).await,
            DocCommand::Op {
                session,
                doc,
                client,
                seq,
                base,
                op,
            } => self.commit(conn, session, doc, client, seq, base, op).await,
            DocCommand::Cursor {
                session,
                doc,
                version,
                cursor,
            } => self.cursor(conn, session, doc, version, cursor).await,
            DocCommand::Close {
                session,
                doc,
                answer,
            } => {
                let member = self.member(&session);
                let removed: i64 = ::redis::cmd("HDEL")
                    .arg(self.keys(&doc).members)
                    .arg(&member)
                    .query_async(conn)
                    .await?;
                if removed > 0 {
                    let left = ServerMessage::DocLeft {
                        doc: doc.clone(),
                        peer: PeerId(session.to_string()),
                    };
                    let message = DocBusMessage::Frame {
                        doc: doc.clone(),
                        except: Some(member),
                        frame: encode(&left),
                    };
                    self.publish(conn, &message).await;
                }
                if answer {
                    self.to_session(
                        &session,
                        &doc,
                        &ServerMessage::DocClosed { doc: doc.clone() },
                    );
                }
                Ok(())
            }
        }
    }

    async fn open(
        &self,
        conn: &mut Conn,
        session: DocSession,
        doc: DocId,
        user: Option<User>,
        since: Option<u64>,
    ) -> ::redis::RedisResult<()> {
        let member = self.member(&session);
        let record = serde_json::json!({ "user": user });
        let added: i64 = ::redis::cmd("HSET")
            .arg(self.keys(&doc).members)
            .arg(&member)
            .arg(record.to_string())
            .query_async(conn)
            .await?;
        let mut answer = None;
        if let Some(since) = since {
            let view = self.read(conn, &doc, since, false, "").await?;
            if view.reaches(since) {
                let ops = view
                    .ops
                    .iter()
                    .filter(|c| c.version > since)
                    .cloned()
                    .collect();
                answer = Some((view, None, Some(ops)));
            }
        }
        let (view, text, ops) = match answer {
            Some(answer) => answer,
            None => {
                let view = self.read(conn, &doc, 0, true, "").await?;
                let view = if view.reaches(view.snap) {
                    view
                } else {
                    self.read(conn, &doc, view.snap, true, "").await?
                };
                let Some(text) = text_of(&view) else {
                    self.refuse(
                        &session,
                        &doc,
                        None,
                        ErrorCode::Internal,
                        "The document's snapshot and log do not meet; try again".into(),
                    );
                    return Ok(());
                };
                (view, Some(text), None)
            }
        };
        let participants = view
            .members
            .iter()
            .filter(|(m, _)| *m != member)
            .map(|(m, record)| Participant {
                peer: PeerId(m.rsplit('/').next().unwrap_or(m).to_owned()),
                user: serde_json::from_value(record["user"].clone())
                    .ok()
                    .flatten(),
                cursor: serde_json::from_value::<Selection>(record["cursor"].clone())
                    .ok()
                    .and_then(|c| view.rebase(record["v"].as_u64()?, c)),
            })
            .collect();
        let recovered = since.map(|_| ops.is_some());
        let opened = ServerMessage::DocOpened {
            doc: doc.clone(),
            version: view.version,
            text,
            ops,
            recovered,
            participants,
        };
        self.deliver(DocEvent::Opened {
            session: session.clone(),
            doc: doc.clone(),
            version: view.version,
            frame: encode(&opened),
        });
        if added > 0 {
            let joined = ServerMessage::DocJoined {
                doc: doc.clone(),
                peer: PeerId(session.to_string()),
                user,
            };
            let message = DocBusMessage::Frame {
                doc,
                except: Some(member),
                frame: encode(&joined),
            };
            self.publish(conn, &message).await;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        conn: &mut Conn,
        session: DocSession,
        doc: DocId,
        client: herald_protocol::document::ClientId,
        seq: u64,
        base: u64,
        op: Op,
    ) -> ::redis::RedisResult<()> {
        let k = self.keys(&doc);
        let member = self.member(&session);
        let ack = |version| ServerMessage::DocAck {
            doc: doc.clone(),
            seq,
            version,
        };
        for _ in 0..COMMIT_ATTEMPTS {
            let view = self.read(conn, &doc, base, false, client.as_str()).await?;
            if let Some((last, at)) = view.applied {
                if seq <= last {
                    self.ack_again(conn, &doc, &member, &ack(at)).await;
                    return Ok(());
                }
            }
            if !view.reaches(base) {
                let text = if base > view.version {
                    format!(
                        "Base version {base} is ahead of the document (version {})",
                        view.version
                    )
                } else {
                    format!("Base version {base} is too old to transform from: reopen the document")
                };
                self.refuse(&session, &doc, Some(seq), ErrorCode::VersionUnknown, text);
                return Ok(());
            }
            let mut mine = op.clone();
            let mut fits = Ok(());
            for c in view.ops.iter().filter(|c| c.version > base) {
                match ot::transform(&c.op, &mine) {
                    Ok((_, t)) => mine = t,
                    Err(e) => {
                        fits = Err(e);
                        break;
                    }
                }
            }
            if fits.is_ok() && mine.base_len() != view.len {
                fits = Err(ot::OtError::LengthMismatch {
                    op: mine.base_len(),
                    doc: view.len,
                });
            }
            if let Err(e) = fits {
                let text = format!("The operation does not fit version {base}: {e}");
                self.refuse(&session, &doc, Some(seq), ErrorCode::InvalidOp, text);
                return Ok(());
            }
            let len = mine.target_len();
            if len > MAX_DOC_CHARS {
                let text =
                    format!("The document would have {len} code points; at most {MAX_DOC_CHARS}");
                self.refuse(&session, &doc, Some(seq), ErrorCode::DocTooLarge, text);
                return Ok(());
            }
            let version = view.version + 1;
            let frame = encode(&ServerMessage::DocOp {
                doc: doc.clone(),
                version,
                op: mine.clone(),
                client: client.clone(),
                seq,
            });
            let entry = CommittedOp {
                version,
                op: mine,
                client: client.clone(),
                seq,
            };
            let (outcome, at): (u8, u64) = self
                .commit
                .key(&k.meta)
                .key(&k.log)
                .key(&k.applied)
                .arg(view.version)
                .arg(client.as_str())
                .arg(seq)
                .arg(len)
                .arg(serde_json::to_string(&entry).expect("operations serialise"))
                .arg(&self.channel)
                .arg(frame.as_str())
                .arg(DOC_LOG_OPS)
                .arg(doc.as_str())
                .arg(&member)
                .invoke_async(conn)
                .await?;
            match outcome {
                1 => {
                    if at >= view.snap + SNAPSHOT_EVERY {
                        self.snapshot(conn, &doc).await?;
                    }
                    return Ok(());
                }
                2 => {
                    self.ack_again(conn, &doc, &member, &ack(at)).await;
                    return Ok(());
                }
                _ => continue,
            }
        }
        self.refuse(
            &session,
            &doc,
            Some(seq),
            ErrorCode::Internal,
            "The document is too busy; send the operation again".into(),
        );
        Ok(())
    }

    /// Acknowledges a resend through the bus, so that it reaches the author after the `doc_op`
    /// of the first commit (which its session may be about to get from another node).
    async fn ack_again(&self, conn: &mut Conn, doc: &DocId, member: &str, ack: &ServerMessage) {
        let message = DocBusMessage::To {
            doc: doc.clone(),
            member: member.to_owned(),
            frame: encode(ack),
        };
        self.publish(conn, &message).await;
    }

    async fn snapshot(&self, conn: &mut Conn, doc: &DocId) -> ::redis::RedisResult<()> {
        let head = self.read(conn, doc, u64::MAX / 2, false, "").await?;
        let view = self.read(conn, doc, head.snap, true, "").await?;
        if let Some(text) = text_of(&view) {
            let k = self.keys(doc);
            let _: i64 = self
                .snapshot
                .key(&k.meta)
                .key(&k.snap)
                .arg(view.version)
                .arg(text)
                .invoke_async(conn)
                .await?;
        }
        Ok(())
    }

    async fn cursor(
        &self,
        conn: &mut Conn,
        session: DocSession,
        doc: DocId,
        version: u64,
        cursor: Option<Selection>,
    ) -> ::redis::RedisResult<()> {
        let member = self.member(&session);
        let view = self.read(conn, &doc, version, false, "").await?;
        let Some(record) = view
            .members
            .iter()
            .find(|(m, _)| *m == member)
            .map(|(_, r)| r)
        else {
            return Ok(());
        };
        let user: Option<User> = serde_json::from_value(record["user"].clone())
            .ok()
            .flatten();
        let moved = match cursor {
            None => None,
            Some(c) => match view
                .reaches(version)
                .then(|| view.rebase(version, c))
                .flatten()
            {
                Some(c) => Some(c),
                None => {
                    let text = format!("Version {version} is unknown");
                    self.refuse(&session, &doc, None, ErrorCode::VersionUnknown, text);
                    return Ok(());
                }
            },
        };
        let record = serde_json::json!({ "user": user, "cursor": moved, "v": view.version });
        let _: i64 = ::redis::cmd("HSET")
            .arg(self.keys(&doc).members)
            .arg(&member)
            .arg(record.to_string())
            .query_async(conn)
            .await?;
        let frame = ServerMessage::DocCursor {
            doc: doc.clone(),
            peer: PeerId(session.to_string()),
            user,
            version: view.version,
            cursor: moved,
        };
        let message = DocBusMessage::Frame {
            doc,
            except: Some(member),
            frame: encode(&frame),
        };
        self.publish(conn, &message).await;
        Ok(())
    }

    /// What a node reads on the documents channel becomes its node's events.
    fn on_bus(&self, payload: &[u8]) {
        let message = match decode_doc(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable document message");
                return;
            }
        };
        match message {
            DocBusMessage::Op {
                doc,
                version,
                member,
                seq,
                frame,
            } => {
                let ack = encode(&ServerMessage::DocAck {
                    doc: doc.clone(),
                    seq,
                    version,
                });
                self.deliver(DocEvent::Committed {
                    doc,
                    version,
                    author: self.local(&member).unwrap_or_else(|| Arc::from("")),
                    ack,
                    frame,
                });
            }
            DocBusMessage::To { doc, member, frame } => {
                if let Some(session) = self.local(&member) {
                    self.deliver(DocEvent::ToSession {
                        session,
                        doc,
                        frame,
                        closes: false,
                    });
                }
            }
            DocBusMessage::Frame { doc, except, frame } => {
                self.deliver(DocEvent::Broadcast {
                    doc,
                    except: except.as_deref().and_then(|m| self.local(m)),
                    frame,
                });
            }
        }
    }
}

/// The text at the view's version: its snapshot and the logged operations after it.
fn text_of(view: &View) -> Option<String> {
    if !view.reaches(view.snap) {
        return None;
    }
    let mut text = view.text.clone();
    for c in view.ops.iter().filter(|c| c.version > view.snap) {
        text = ot::apply(&text, &c.op).ok()?;
    }
    Some(text)
}

/// A connection to one Redis or to a Redis Cluster (whose client routes each script by its
/// first key: a document's keys share the tag `{doc:D}`).
#[derive(Clone)]
enum Conn {
    Server(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ::redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a ::redis::Cmd,
    ) -> ::redis::RedisFuture<'a, ::redis::Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a ::redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> ::redis::RedisFuture<'a, Vec<::redis::Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the documents' Redis is.
#[derive(Clone)]
pub enum DocsSource {
    /// One server, or a Sentinel's primary.
    Server(super::RedisSource),
    /// The seed nodes of a Redis Cluster (`redis://` URLs).
    Cluster(Vec<String>),
}

/// The documents part of the Redis broker.
pub struct RedisDocs {
    tx: mpsc::UnboundedSender<DocCommand>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<DocCommand>>>,
    client: DocsSource,
    prefix: String,
    node: String,
}

impl RedisDocs {
    /// Documents under `prefix` in the Redis of `client`, for node `node`.
    pub fn new(client: DocsSource, prefix: &str, node: &str) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        RedisDocs {
            tx,
            rx: Mutex::new(Some(rx)),
            client,
            prefix: prefix.to_owned(),
            node: node.to_owned(),
        }
    }

    /// Starts serving commands and reading the documents channel.
    pub fn attach(&self, events: Weak<dyn BrokerEvents>) {
        let Some(rx) = self.rx.lock().take() else {
            return;
        };
        let ctx = Arc::new(Ctx {
            channel: format!("{}:docs", self.prefix),
            prefix: self.prefix.clone(),
            node: self.node.clone(),
            events,
            read: Script::new(READ),
            commit: Script::new(COMMIT),
            snapshot: Script::new(SNAPSHOT),
        });
        tokio::spawn(run(self.client.clone(), ctx, rx));
    }

    /// Queues a command; they run in order.
    pub fn submit(&self, command: DocCommand) {
        let _ = self.tx.send(command);
    }
}

fn session_of(command: &DocCommand) -> (&DocSession, &DocId, Option<u64>) {
    match command {
        DocCommand::Open { session, doc, .. }
        | DocCommand::Cursor { session, doc, .. }
        | DocCommand::Close { session, doc, .. } => (session, doc, None),
        DocCommand::Op {
            session, doc, seq, ..
        } => (session, doc, Some(*seq)),
    }
}

/// Runs one document's commands in order; reports a broken connection.
fn spawn_worker(
    ctx: Arc<Ctx>,
    mut conn: Conn,
    broken: mpsc::Sender<()>,
) -> mpsc::UnboundedSender<DocCommand> {
    let (tx, mut rx) = mpsc::unbounded_channel::<DocCommand>();
    tokio::spawn(async move {
        while let Some(command) = rx.recv().await {
            let (session, doc, seq) = session_of(&command);
            let (session, doc) = (session.clone(), doc.clone());
            if let Err(e) = ctx.handle(&mut conn, command).await {
                tracing::warn!(error = %e, %doc, "a document command failed in Redis");
                ctx.refuse(
                    &session,
                    &doc,
                    seq,
                    ErrorCode::Internal,
                    "The document store is unavailable; try again".into(),
                );
                if e.is_io_error() || e.is_connection_dropped() {
                    let _ = broken.try_send(());
                }
            }
        }
    });
    tx
}

/// Connects for commands and to the documents channel.
async fn connect(
    source: &DocsSource,
    channel: &str,
) -> ::redis::RedisResult<(Conn, futures_util::stream::BoxStream<'static, ::redis::Msg>)> {
    match source {
        DocsSource::Server(source) => {
            let client = source().await?;
            let conn = client.get_multiplexed_async_connection().await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok((Conn::Server(conn), pubsub.into_on_message().boxed()))
        }
        DocsSource::Cluster(nodes) => {
            let (tx, rx) = mpsc::unbounded_channel::<::redis::PushInfo>();
            let client = ::redis::cluster::ClusterClientBuilder::new(nodes.clone())
                .use_protocol(::redis::ProtocolVersion::RESP3)
                .push_sender(tx)
                .build()?;
            let mut conn = client.get_async_connection().await?;
            // The documents channel is a plain one: the cluster carries it to every shard.
            conn.subscribe(channel).await?;
            let messages = futures_util::stream::unfold(rx, |mut rx| async move {
                loop {
                    let push = rx.recv().await?;
                    if push.kind == ::redis::PushKind::Disconnection {
                        // Ends the reader, so the task reconnects.
                        return None;
                    }
                    if let Some(message) = ::redis::Msg::from_push_info(push) {
                        return Some((message, rx));
                    }
                }
            });
            Ok((Conn::Cluster(conn), messages.boxed()))
        }
    }
}

async fn run(source: DocsSource, ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<DocCommand>) {
    loop {
        let connected = connect(&source, &ctx.channel).await;
        match connected {
            Ok((conn, mut messages)) => {
                let reader_ctx = ctx.clone();
                let mut reader = tokio::spawn(async move {
                    while let Some(message) = messages.next().await {
                        reader_ctx.on_bus(message.get_payload_bytes());
                    }
                });
                // One worker per document: a document's commands run in order, different
                // documents' at once over the shared (multiplexed) connection.
                let (broken_tx, mut broken) = mpsc::channel::<()>(1);
                let mut workers: HashMap<DocId, mpsc::UnboundedSender<DocCommand>> = HashMap::new();
                loop {
                    tokio::select! {
                        command = rx.recv() => {
                            let Some(command) = command else {
                                reader.abort();
                                return;
                            };
                            let doc = session_of(&command).1.clone();
                            let worker = workers.entry(doc).or_insert_with(|| {
                                spawn_worker(ctx.clone(), conn.clone(), broken_tx.clone())
                            });
                            let _ = worker.send(command);
                        }
                        _ = broken.recv() => break,
                        _ = &mut reader => break,
                    }
                }
                // Workers finish what they hold (refusing it if the connection is gone) and end.
                drop(workers);
                reader.abort();
            }
            Err(e) => {
                tracing::warn!(error = %e, "documents: Redis is unreachable");
                tokio::time::sleep(Duration::from_millis(500)).await;
                while let Ok(command) = rx.try_recv() {
                    let (session, doc, seq) = session_of(&command);
                    ctx.refuse(
                        session,
                        doc,
                        seq,
                        ErrorCode::Internal,
                        "The document store is unavailable; try again".into(),
                    );
                }
            }
        }
    }
}
