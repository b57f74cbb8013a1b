//! The broker: how a node's room messages, presence, private messages and notifications reach
//! the other nodes.
//!
//! The node turns every action that other nodes must see into a [`Command`] and hands it to its
//! broker. [`Memory`] (the default) carries it out at once in this process; [`redis_broker::Redis`]
//! (`--broker redis://...`) runs it in Redis, which stamps room offsets, keeps history and
//! presence for the whole cluster and publishes the result to every node, this one included.
//! Rooms, sessions and transports never know which broker runs.

pub mod redis_broker;
mod scripts;

use std::sync::Arc;

use herald_protocol::{Notification, RoomName, StreamPosition, Update, User};

use crate::node::Node;
use crate::session::tokio_tungstenite_utf8::Utf8Bytes;
use crate::session::Session;

/// An action other nodes must see.
#[derive(Debug)]
pub enum Command {
    /// A session joins a room (presence, `room_joined` with the cluster's members, replay).
    Join {
        /// The joining session.
        session: Arc<Session>,
        /// The room.
        room: RoomName,
        /// The user it joins as.
        user: User,
        /// Where to resume from.
        since: Option<StreamPosition>,
    },
    /// A session left a room here already; tell the members.
    Left {
        /// The session that left.
        session: Arc<Session>,
        /// The room.
        room: RoomName,
        /// The user it was in the room as.
        user: User,
        /// The room's members on this node.
        others: Vec<Arc<Session>>,
    },
    /// A chat message for a room, encoded up to its offset: the frame is `prefix`, the offset
    /// the room's stream gives it, then `}`.
    Chat {
        /// The room.
        room: RoomName,
        /// The encoded frame without its offset and closing brace.
        prefix: String,
    },
    /// A typing indicator, for every member but the sender.
    Typing {
        /// The sender.
        session: Arc<Session>,
        /// The room.
        room: RoomName,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
    /// A private message to every WebSocket of a user; the sender hears `user_not_found` when
    /// there is none.
    Private {
        /// The sender.
        from: Arc<Session>,
        /// The recipient's user id.
        target: String,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
    /// A notification to one user's connections, or everyone's.
    Notify(Notification),
    /// A resource update to every SSE stream.
    Update(Update),
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
    /// Carries out a command (at once, or once the cluster has ordered it).
    fn submit(&self, node: &Node, command: Command);
    /// A user can now be reached through this session (for private messages from other nodes).
    fn user_online(&self, user_id: &str, session: &Arc<Session>);
    /// The session no longer answers for the user.
    fn user_offline(&self, user_id: &str, session: &Arc<Session>);
    /// Reachability, for `/healthz`.
    fn health(&self) -> Health;
    /// Called once when the server stops, after its connections closed: leave the cluster
    /// cleanly. Resolves when done.
    fn shutdown(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        None
    }
}

/// The default broker: one node, everything in this process.
pub struct Memory;

impl Broker for Memory {
    fn submit(&self, node: &Node, command: Command) {
        node.apply_local(command, false);
    }

    fn user_online(&self, _user_id: &str, _session: &Arc<Session>) {}

    fn user_offline(&self, _user_id: &str, _session: &Arc<Session>) {}

    fn health(&self) -> Health {
        Health::Standalone
    }
}
