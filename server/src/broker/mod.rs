//! The broker seam: how what one node does reaches every node's clients.
//!
//! The node turns every action other nodes must see into a [`Command`] of plain data (ids,
//! names, encoded frames; never a session) and hands it to its [`Broker`]. The broker orders it
//! (room offsets, event ids), keeps room history and presence, and delivers the outcome back
//! through [`BrokerEvents`], which the node implements. A broker never calls the node directly
//! and knows nothing of capabilities or transports.
//!
//! - [`memory::Memory`] (the default): one process; offsets, history and presence in memory.
//! - [`redis::Redis`] (`--broker redis://`): a cluster of nodes sharing one Redis; it falls back
//!   to a [`memory::Memory`] of its own while Redis is unreachable.
//!
//! Adding a broker (NATS, PostgreSQL) means implementing [`Broker`] against these two traits;
//! `node.rs` does not change. Layer 3 (the traits) and 4 (the implementations).

pub mod bus;
pub mod cluster_scripts;
pub mod documents;
pub mod interest;
pub mod memory;
pub mod memory_docs;
pub mod redis;
pub mod redis_cluster;
pub mod redis_docs;
pub mod redis_streams;
pub mod relay;
mod scripts;
pub mod sentinel;
pub mod topics;

use herald_protocol::{Notification, RoomName, StreamPosition, Update, User};

use crate::wire::{Transport, Utf8Bytes};

/// Where a Redis connection goes, asked at every (re)connection: the same server every time
/// (`redis://`), or the primary a set of sentinels names now (`redis+sentinel://`). The Redis
/// broker's parts with connections of their own (documents, the polling relay) use it, so they
/// follow a failover as the broker does.
pub type RedisSource = std::sync::Arc<
    dyn Fn() -> futures_util::future::BoxFuture<'static, ::redis::RedisResult<::redis::Client>>
        + Send
        + Sync,
>;

/// A connection's id, as the node knows it (`clientId` on the wire).
pub type SessionId = std::sync::Arc<str>;

/// An action other nodes must see.
#[derive(Debug, Clone)]
pub enum Command {
    /// A session joins a room: presence, the answer with the cluster's members, the replay.
    Join {
        /// The joining session.
        session: SessionId,
        /// The room.
        room: RoomName,
        /// The user it joins as.
        user: User,
        /// Where to resume from.
        since: Option<StreamPosition>,
    },
    /// A session left a room (it is out of the room on its node already).
    Leave {
        /// The session that left.
        session: SessionId,
        /// The room.
        room: RoomName,
        /// The user it was in the room as.
        user: User,
    },
    /// A session asks for a room's whole member list (answered with
    /// [`BrokerEvents::members`]).
    Members {
        /// The asking session.
        session: SessionId,
        /// The room.
        room: RoomName,
    },
    /// A message for a room's stream, encoded up to its offset ([`crate::wire::offset_prefix`]):
    /// the broker numbers it, keeps it in history and delivers it to every member.
    Publish {
        /// The room.
        room: RoomName,
        /// The encoded frame without its offset and closing brace.
        prefix: String,
        /// The session whose message it is (none for a backend's): told with
        /// [`BrokerEvents::not_published`] when the cluster could not take it.
        from: Option<SessionId>,
    },
    /// A frame for a room's members that is not part of its stream (typing), except one.
    Volatile {
        /// The room.
        room: RoomName,
        /// The sender, who does not get it.
        except: Option<SessionId>,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
    /// A private message to every WebSocket of a user; the sender hears
    /// [`BrokerEvents::undeliverable`] when there is none.
    Private {
        /// The sender.
        from: SessionId,
        /// The recipient's user id.
        target: String,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
    /// A resumable event for SSE streams (and, for notifications, WebSockets).
    Event(Event),
    /// One frame for one session, on whichever node holds it, when that session is a member of
    /// `room`; the sender hears [`BrokerEvents::peer_unreachable`] when it is not. Frames from
    /// one sender to one target arrive in the order they were submitted.
    Direct {
        /// The sending session.
        from: SessionId,
        /// The room both must be in.
        room: RoomName,
        /// The receiving session.
        target: SessionId,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
    /// The members of a room (on every node) with their session ids, for one session; the
    /// answer is [`BrokerEvents::roster`].
    Roster {
        /// The session asking.
        session: SessionId,
        /// The room.
        room: RoomName,
    },
    /// Capability `documents`: open, edit, point at or close a shared document; the outcome
    /// comes back through [`BrokerEvents::document`].
    Doc(crate::broker::documents::DocCommand),
    /// This node's members of a room were interrupted at `epoch`/`after` (a gap in the offsets
    /// or another epoch reached the node): the room's stream position now and, when `after` is
    /// still in its history, every message after it; answered with
    /// [`BrokerEvents::caught_up`].
    CatchUp {
        /// The room.
        room: RoomName,
        /// The epoch of the members' last position (as clients see it).
        epoch: String,
        /// The offset of the last message they got.
        after: u64,
    },
    /// Data a capability applies on every node in one cluster-wide order (a data stream's
    /// points): delivered to every node, this one included, through [`BrokerEvents::ordered`].
    Ordered {
        /// The capability it is for (its name).
        capability: String,
        /// Its body, opaque to the broker (one line of JSON).
        body: String,
    },
}

/// An event that SSE streams receive with an id, so they can resume.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Event {
    /// A notification for one user, or for everyone.
    Notification(Notification),
    /// A resource update for every SSE stream.
    Update(Update),
}

/// What a broker answers to a join.
#[derive(Debug, Clone)]
pub struct JoinAnswer {
    /// The joining session.
    pub session: SessionId,
    /// The room.
    pub room: RoomName,
    /// The user it joined as.
    pub user: User,
    /// Every member of the room now (on every node), the joiner included, in join order.
    pub users: Vec<User>,
    /// The room stream's epoch.
    pub epoch: String,
    /// The room stream's latest offset when the join ran.
    pub offset: u64,
    /// `Some` when the join asked to resume: whether every missed message follows.
    pub recovered: Option<bool>,
    /// The missed messages, in order (empty unless `recovered` is `Some(true)`).
    pub replay: Vec<Utf8Bytes>,
    /// The room's presence sequence when the join ran: presence changes numbered after it
    /// reach the joiner, earlier ones are in `users`.
    pub presence_seq: u64,
}

/// What a broker answers to [`Command::CatchUp`].
#[derive(Debug, Clone)]
pub struct CatchUpAnswer {
    /// The room.
    pub room: RoomName,
    /// The position asked from: epoch and offset, as in the command.
    pub asked: (String, u64),
    /// The room stream's epoch now.
    pub epoch: String,
    /// The room stream's latest offset when the catch-up ran.
    pub offset: u64,
    /// Whether `replay` holds every message after the asked position (same epoch, still in
    /// history).
    pub recovered: bool,
    /// The missed messages, in order, up to `offset` (empty unless `recovered`).
    pub replay: Vec<Utf8Bytes>,
}

/// A change of a room's membership, numbered in the room's presence sequence.
#[derive(Debug, Clone)]
pub struct PresenceChange {
    /// The room.
    pub room: RoomName,
    /// The presence sequence number (increasing per room; 0 when the broker has none).
    pub seq: u64,
    /// The session it concerns, which does not receive the frames.
    pub except: Option<SessionId>,
    /// The encoded `user_joined` (with the whole member list) or `user_left` frame, for members
    /// that take full lists; `None` when the room is over the full-list size, where those
    /// members are not told (see PROTOCOL.md, capability `presence-diff`).
    pub full: Option<Utf8Bytes>,
    /// The encoded `presence_diff` frame, for members that asked for diffs.
    pub diff: Utf8Bytes,
}

/// The frames of a membership change: `full` when the room, after it, has at most `full_max`
/// members.
pub fn presence_frames(
    room: &RoomName,
    user: &User,
    joined: Option<&[User]>,
    members: usize,
    full_max: usize,
) -> (Option<Utf8Bytes>, Utf8Bytes) {
    use herald_protocol::ServerMessage;
    let small = members <= full_max;
    let (full, diff) = match joined {
        Some(users) => (
            small.then(|| {
                crate::wire::encode(&ServerMessage::UserJoined {
                    user: user.clone(),
                    users: users.to_vec(),
                    room: Some(room.clone()),
                })
            }),
            ServerMessage::PresenceDiff {
                room: room.clone(),
                joins: vec![user.clone()],
                leaves: Vec::new(),
            },
        ),
        None => (
            small.then(|| {
                crate::wire::encode(&ServerMessage::UserLeft {
                    user: user.clone(),
                    room: Some(room.clone()),
                })
            }),
            ServerMessage::PresenceDiff {
                room: room.clone(),
                joins: Vec::new(),
                leaves: vec![user.clone()],
            },
        ),
    };
    (full, crate::wire::encode(&diff))
}

/// Why a room message was not published ([`BrokerEvents::not_published`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpublished {
    /// The node had lost the cluster's broker: a room message is never numbered by one node
    /// alone (its members would get it and the other nodes' never would, a silent gap).
    Unreachable,
    /// The node lost the broker while the message was on its way: it may have been published.
    MaybeLost,
    /// The broker's queue was full.
    QueueFull,
}

/// This node's members and users, for a broker that re-registers them (after a reconnect).
#[derive(Debug, Clone, Default)]
pub struct LocalState {
    /// Every room member here: room, session, user.
    pub members: Vec<(RoomName, SessionId, User)>,
    /// Every identified session here: user id, session, transport.
    pub users: Vec<(String, SessionId, Transport)>,
}

/// A request a backend made through a broker's own channel (the Redis backend topics).
#[derive(Debug, Clone)]
pub enum BackendRequest {
    /// A chat message into a room, as `user` (the system user when none).
    Chat {
        /// The room.
        room: RoomName,
        /// The sender.
        user: Option<User>,
        /// The text.
        text: String,
    },
    /// A notification.
    Notify(herald_protocol::NotifyRequest),
    /// Points for a data stream (capability `streams`).
    StreamPoints(herald_protocol::stream::TopicPoints),
}

/// How a broker delivers back to its node. The node implements it; a broker holds it as
/// `Weak<dyn BrokerEvents>` and calls it in the order it ordered the commands.
pub trait BrokerEvents: Send + Sync {
    /// A join ran: answer the joiner and start its deliveries, nothing missed or doubled.
    fn joined(&self, answer: JoinAnswer);
    /// A room message with its stream position, for the room's members here.
    fn room_message(&self, room: &RoomName, epoch: &str, offset: u64, frame: Utf8Bytes);
    /// A membership change for the room's members here.
    fn presence(&self, change: PresenceChange);
    /// A room's whole member list, for the session that asked.
    fn members(&self, session: &str, room: &RoomName, users: Vec<User>);
    /// A frame for the room's members here, except `except`.
    fn room_volatile(&self, room: &RoomName, except: Option<&str>, frame: &Utf8Bytes);
    /// A private message for a user's WebSockets here; returns how many got it.
    fn private(&self, target: &str, frame: &Utf8Bytes) -> usize;
    /// Nobody could receive `from`'s private message to `target`.
    fn undeliverable(&self, from: &str, target: &str);
    /// `from`'s message for `room` was not published (or may not have been), for `why`.
    fn not_published(&self, _from: &str, _room: &RoomName, _why: Unpublished) {}
    /// A frame for one session here, if it is (still) a member of `room`; returns whether it
    /// was queued.
    fn direct(&self, room: &RoomName, target: &str, frame: &Utf8Bytes) -> bool;
    /// `from`'s direct frame could not reach `target`: it is not a member of `room`.
    fn peer_unreachable(&self, from: &str, room: &RoomName, target: &str);
    /// The members of `room` (session id and user, in join order), for `session` here.
    fn roster(&self, session: &str, room: &RoomName, members: Vec<(SessionId, User)>);
    /// A resumable event; `id` is the cluster's, or `None` to take this node's next one.
    fn event(&self, id: Option<u64>, event: &Event);
    /// A backend asked for something through the broker's channel.
    fn backend(&self, request: BackendRequest);
    /// This node's members and users now.
    fn local_state(&self) -> LocalState;
    /// Data submitted with [`Command::Ordered`] on some node, in the cluster's one order.
    fn ordered(&self, _capability: &str, _body: &str) {}
    /// The broker's presence numbering starts over (it lost its state, or another broker took
    /// over): every member here takes the next changes.
    fn reset(&self);
    /// Capability `documents`: an outcome about a document, in the document's order.
    fn document(&self, _event: crate::broker::documents::DocEvent) {}
    /// The answer to a [`Command::CatchUp`].
    fn caught_up(&self, _answer: CatchUpAnswer) {}
    /// The broker is connected to the cluster again after serving this node alone: whatever
    /// the cluster numbered meanwhile never reached this node, so every room here catches up
    /// (called once commands go to the cluster again).
    fn reconnected(&self) {}
}

/// A broker's own counters, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrokerStats {
    /// Commands waiting to be sent.
    pub queued: u64,
    /// Messages refused because the queue was full.
    pub shed: u64,
    /// Bus messages dropped as unreadable.
    pub unreadable: u64,
    /// Times the broker's task died and was restarted.
    pub restarts: u64,
    /// Bus messages received (a node listens only to its rooms' and users' channels).
    pub received: u64,
    /// Bus channels subscribed for this node's rooms and users.
    pub channels: u64,
}

/// Whether the broker can reach the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// One node, nothing to reach.
    Standalone,
    /// Connected: the cluster behaves as one server.
    Up,
    /// Unreachable: this node serves its own connections alone and keeps trying.
    Degraded,
}

/// Where a node sends what other nodes must see.
pub trait Broker: Send + Sync {
    /// Connects the broker to its node's events; called once, before any command.
    fn attach(&self, events: std::sync::Weak<dyn BrokerEvents>);
    /// Carries out a command (at once, or once the cluster has ordered it).
    fn submit(&self, command: Command);
    /// A user can now be reached through this session (for private messages from other nodes).
    fn user_online(&self, user_id: &str, session: &str, transport: Transport);
    /// The session no longer answers for the user.
    fn user_offline(&self, user_id: &str, session: &str);
    /// Reachability, for `/healthz`.
    fn health(&self) -> Health;
    /// Whether this node is the one that computes what the cluster needs computed once (a data
    /// stream's windows): the topic leader; a node alone always is.
    fn leads(&self) -> bool {
        true
    }
    /// Periodic housekeeping (the node's sweep): drop what has expired.
    fn sweep(&self) {}
    /// Its counters.
    fn stats(&self) -> BrokerStats {
        BrokerStats::default()
    }
    /// Called once when the server stops, after its connections closed: leave the cluster
    /// cleanly. Resolves when done.
    fn shutdown(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        None
    }
    /// Resolves once every command submitted before this call has been carried out (ordered by
    /// the cluster, its ids given): an HTTP publish answers after it, so a backend's sequential
    /// publishes keep their order whichever nodes they land on. `None` when `submit` carries
    /// commands out before it returns (the memory broker).
    fn settled(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        None
    }
}
