//! The node: the public API that capabilities and transports use, and the broker's events.
//!
//! It opens and closes sessions, dispatches each inbound frame to the capability that handles
//! its type, applies the join policy, and offers what capabilities build on: room membership
//! (join with resume, leave, presence), publishing to a room's stream, volatile frames, private
//! delivery to a user, resumable events for SSE streams. What other nodes must see goes to the
//! broker as a [`Command`]; what the broker delivers comes back through [`BrokerEvents`], which
//! the node implements by queueing encoded frames through the hub. Layer 5: it imports the
//! layers below and never a capability, a transport or a broker implementation.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use herald_protocol::error::text;
use herald_protocol::sse::event;
use herald_protocol::{
    ClientMessage, Connected, ErrorCode, Ping, RoomName, ServerMessage, StreamPosition, User,
};
use parking_lot::Mutex;
use serde::Serialize;

use crate::auth::Auth;
use crate::broker::{
    BackendRequest, Broker, BrokerEvents, CatchUpAnswer, Command, Event, JoinAnswer, LocalState,
    PresenceChange, SessionId,
};
use crate::config::Config;
use crate::history::History;
use crate::hub::Hub;
use crate::ids::{now_rfc3339, Ids};
use crate::inbound::{self, Refusal};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::session::{Outbox, QueueLimits, Session};
use crate::wire::{
    encode, encode_sse, notification_frame, offset_prefix, sse_block, Transport, Utf8Bytes,
};

/// A module that handles some client message types, using the node's public API.
pub trait Capability: Send + Sync {
    /// Its name (as announced to clients).
    fn name(&self) -> &'static str;
    /// The client message types (`type` values) it handles.
    fn handles(&self) -> &'static [&'static str];
    /// The protocol capabilities it gives clients (announced in `welcome`).
    fn announces(&self) -> &'static [&'static str] {
        &[]
    }
    /// Acts on one message of a type it handles.
    fn handle(&self, node: &Node, session: &Arc<Session>, message: ClientMessage);
    /// Acts on a request a backend made through the broker's channel, if it is one of its.
    fn backend(&self, _node: &Node, _request: &BackendRequest) -> bool {
        false
    }
    /// Answers a session with the room's members, which it asked for through
    /// [`Node::request_roster`]; returns whether it took the answer.
    fn roster(
        &self,
        _node: &Node,
        _session: &Arc<Session>,
        _room: &RoomName,
        _members: &[(SessionId, User)],
    ) -> bool {
        false
    }
    /// Takes an outcome about a shared document (capability `documents`); returns whether it
    /// took it.
    fn document(&self, _node: &Node, _event: &crate::broker::documents::DocEvent) -> bool {
        false
    }
    /// A session is closing: forget what the capability holds for it.
    fn closed(&self, _node: &Node, _session: &Arc<Session>) {}
    /// Applies data this capability submitted with [`Node::submit_ordered`] (on any node), in
    /// the cluster's one order.
    fn ordered(&self, _node: &Node, _body: &str) {}
    /// Itself as `Any`, for the HTTP endpoints of a capability that has some (see
    /// [`Node::capability`]); `None` for the others.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// A delivered SSE event kept for streams that resume with `Last-Event-ID`.
#[derive(Clone)]
struct SseStored {
    /// The user it was for; `None` for every stream.
    user: Option<String>,
    frame: Utf8Bytes,
}

/// The SSE streams' recent events. Its lock is held while an event is queued to the streams and
/// while a new stream is opened, so a resuming stream gets the replay, then live events, with
/// nothing missed or doubled.
struct SseLog {
    last: u64,
    ring: History<SseStored>,
}

/// The server's core: configuration, this node's hub, its broker, and its capabilities.
pub struct Node {
    /// Settings in force.
    pub config: Config,
    /// This node's sessions.
    pub hub: Hub,
    /// Counters and gauges.
    pub metrics: Metrics,
    ids: Ids,
    /// The token verifier; `None` when authentication is off.
    pub auth: Option<Auth>,
    /// Abuse limits and connection counters.
    pub limits: Limits,
    /// Where actions other nodes must see go.
    pub broker: Box<dyn Broker>,
    capabilities: Vec<Box<dyn Capability>>,
    /// Client message type → index in `capabilities` (looked up on every inbound frame: aHash,
    /// not SipHash).
    handlers: HashMap<&'static str, usize, ahash::RandomState>,
    /// The protocol capabilities `welcome` announces.
    announced: Vec<String>,
    sse_log: Mutex<SseLog>,
    /// Sockets a transport still holds (a WebSocket finishing its close after its session
    /// ended): shutdown waits for them, so every close frame is written before the process
    /// exits.
    sockets: Arc<std::sync::atomic::AtomicUsize>,
    /// This node, for work it hands to a task of its own.
    me: Weak<Node>,
}

/// Counts a socket as open until dropped ([`Node::hold_socket`]).
pub struct SocketHold(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for SocketHold {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Node {
    /// A node with its settings, token verifier, broker and capabilities; the broker is
    /// attached to the node's events before anything is submitted.
    pub fn new(
        config: Config,
        auth: Option<Auth>,
        broker: Box<dyn Broker>,
        capabilities: Vec<Box<dyn Capability>>,
    ) -> Arc<Self> {
        inbound::warm_up();
        let limits = Limits::new(&config);
        let mut handlers = HashMap::default();
        for (index, capability) in capabilities.iter().enumerate() {
            for kind in capability.handles() {
                let previous = handlers.insert(*kind, index);
                assert!(previous.is_none(), "two capabilities handle `{kind}`");
            }
        }
        let mut announced: Vec<String> = capabilities
            .iter()
            .flat_map(|c| c.announces())
            .map(|name| (*name).to_owned())
            .collect();
        if auth.is_some() {
            announced.push(herald_protocol::capability::name::AUTH.to_owned());
        }
        if config.long_polling {
            announced.push(herald_protocol::capability::name::LONG_POLLING.to_owned());
        }
        let sse_log = SseLog {
            last: 0,
            ring: History::new(config.history_size, config.history_ttl),
        };
        let node = Arc::new_cyclic(|me| Node {
            config,
            hub: Hub::new(),
            metrics: Metrics::new(),
            ids: Ids::new(),
            auth,
            limits,
            broker,
            capabilities,
            handlers,
            announced,
            sse_log: Mutex::new(sse_log),
            sockets: Arc::default(),
            me: me.clone(),
        });
        let events: Weak<dyn BrokerEvents> = Arc::downgrade(&node) as Weak<dyn BrokerEvents>;
        node.broker.attach(events);
        node
    }

    /// Holds a socket open in the node's count until the returned value is dropped.
    pub fn hold_socket(&self) -> SocketHold {
        self.sockets
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        SocketHold(self.sockets.clone())
    }

    /// Sockets transports still hold.
    pub fn open_sockets(&self) -> usize {
        self.sockets.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The capability of type `T`, when this node runs it (for its HTTP endpoints).
    /// This node, owned (for a task of its own); `None` while it is being dropped.
    pub fn owned(&self) -> Option<Arc<Node>> {
        self.me.upgrade()
    }

    pub fn capability<T: 'static>(&self) -> Option<&T> {
        self.capabilities
            .iter()
            .find_map(|c| c.as_any().and_then(|any| any.downcast_ref::<T>()))
    }

    /// The names of the capabilities this node runs.
    pub fn capability_names(&self) -> Vec<&'static str> {
        self.capabilities.iter().map(|c| c.name()).collect()
    }

    /// The Prometheus text exposition, with the broker's counts.
    pub fn render_metrics(&self) -> String {
        let stats = self.broker.stats();
        self.metrics.set_broker(crate::metrics::BrokerCounts {
            queued: stats.queued,
            shed: stats.shed,
            unreadable: stats.unreadable,
            restarts: stats.restarts,
            received: stats.received,
            channels: stats.channels,
        });
        self.metrics.render()
    }

    /// A new unique id (messages, notifications).
    pub fn next_id(&self) -> String {
        self.ids.next()
    }

    // --- sessions -------------------------------------------------------------------------

    /// Opens a session for a new connection and registers it.
    pub fn open(&self, transport: Transport) -> (Arc<Session>, Outbox) {
        let id: Arc<str> = self.ids.next().into();
        let (session, outbox) = Session::new(
            id,
            transport,
            QueueLimits {
                soft: self.config.outbound_queue_bytes,
                hard: self.config.outbound_queue_bytes.saturating_mul(16),
                grace: self.config.slow_consumer_grace,
            },
        );
        self.hub.add_session(&session);
        self.metrics.opened(transport);
        (session, outbox)
    }

    /// Ties a session to a user id (SSE `?userId=`, or a token's subject).
    pub fn identify(&self, session: &Arc<Session>, user: User) {
        let id = user.id().to_owned();
        session.state.lock().user = Some(user);
        self.index_user(&id, session);
    }

    fn index_user(&self, user_id: &str, session: &Arc<Session>) {
        self.hub.index_user(user_id, session);
        self.broker
            .user_online(user_id, &session.id, session.transport);
    }

    fn unindex_user(&self, user_id: &str, session: &Arc<Session>) {
        self.hub.unindex_user(user_id, session);
        self.broker.user_offline(user_id, &session.id);
    }

    /// Opens an SSE stream: registers the session, lets `prepare` tie it to its user, and queues
    /// the `connect` event and, when `last_event_id` is given and this node still holds every
    /// event after it, those events (the ones for every stream or for this user), all before
    /// any live event.
    pub fn open_sse(
        &self,
        last_event_id: Option<u64>,
        prepare: impl FnOnce(&Arc<Session>),
    ) -> (Arc<Session>, Outbox) {
        let log = self.sse_log.lock();
        let (session, outbox) = self.open(Transport::Sse);
        prepare(&session);
        let data = Connected::Connected {
            timestamp: now_rfc3339(),
        };
        session.push(encode_sse(event::CONNECT, None, &data));
        if let Some(last) = last_event_id {
            let user = session.user_id();
            for stored in log.ring.complete_after(last, log.last).unwrap_or_default() {
                if stored.user.is_none() || stored.user == user {
                    session.push(stored.frame);
                }
            }
        }
        drop(log);
        (session, outbox)
    }

    /// Sends the first WebSocket frame.
    pub fn welcome(&self, session: &Arc<Session>) {
        self.send(
            session,
            &ServerMessage::Welcome {
                client_id: session.id.to_string(),
                protocol: herald_protocol::PROTOCOL_VERSION.to_owned(),
                capabilities: self.announced.clone(),
            },
        );
    }

    /// An SSE keep-alive event.
    pub fn sse_ping(&self) -> Utf8Bytes {
        encode_sse(
            event::PING,
            None,
            &Ping {
                timestamp: now_rfc3339(),
            },
        )
    }

    /// Ends a session: it leaves its room (the others are told) and is forgotten.
    pub fn close(&self, session: &Arc<Session>) {
        for capability in &self.capabilities {
            capability.closed(self, session);
        }
        self.leave_room(session, false);
        if let Some(id) = session.user_id() {
            self.broker.user_offline(&id, &session.id);
        }
        self.hub.remove_session(session);
        self.metrics.closed(session.transport);
    }

    // --- frames in and out ----------------------------------------------------------------

    /// Queues one message to one session.
    pub fn send(&self, session: &Session, message: &ServerMessage) {
        if session.push(encode(message)) {
            self.metrics.frames_out.inc();
        }
    }

    /// Answers a session with an `error` frame.
    pub fn refuse(&self, session: &Session, code: ErrorCode, message: impl Into<String>) {
        self.metrics.error(code);
        self.send(session, &ServerMessage::error(code, message));
    }

    /// Refuses an inbound frame the transport could not hand over as text (binary, over the
    /// message rate): counts it and answers with an `error` frame.
    pub fn refuse_frame(&self, session: &Session, code: ErrorCode, message: &str) {
        self.metrics.frames_in.inc();
        self.refuse(session, code, message);
    }

    /// Handles one inbound text frame: parse, validate, act, or answer with an error.
    pub fn on_text(&self, session: &Arc<Session>, frame: &str) {
        self.metrics.frames_in.inc();
        match inbound::parse(frame) {
            Ok(message) => self.handle(session, message),
            Err(refusal) => self.refuse(session, refusal.code, refusal.message),
        }
    }

    /// Hands one client message to the capability that handles its type.
    pub fn handle(&self, session: &Arc<Session>, message: ClientMessage) {
        match self.handlers.get(message.kind()) {
            Some(&index) => self.capabilities[index].handle(self, session, message),
            None => self.refuse(session, ErrorCode::UnknownType, text::UNKNOWN_TYPE),
        }
    }

    // --- rooms ----------------------------------------------------------------------------

    /// The join policy: with a token, its identity replaces the user the frame sent and its
    /// `rooms` claim decides; without one the frame's user stands, within the per-user
    /// connection limit. A refusal leaves the session where it was.
    pub fn join_policy(
        &self,
        session: &Arc<Session>,
        room: &RoomName,
        sent: User,
    ) -> Result<User, Refusal> {
        if let Some(identity) = session.identity.get() {
            if !identity.may_join(room.as_str()) {
                return Err(Refusal {
                    code: ErrorCode::Forbidden,
                    message: format!("You may not join room {room}"),
                });
            }
            // The per-user limit was applied when the token's connection was admitted.
            return Ok(identity.user.clone());
        }
        let max = self.config.max_connections_per_user;
        if max > 0 && session.user_id().as_deref() != Some(sent.id()) {
            let others = self
                .hub
                .user_sessions(sent.id())
                .iter()
                .filter(|s| !Arc::ptr_eq(s, session))
                .count();
            if others >= max {
                return Err(Refusal {
                    code: ErrorCode::Forbidden,
                    message: format!("User {} already has {max} connections", sent.id()),
                });
            }
        }
        Ok(sent)
    }

    /// Puts a session in a room as `user` (after [`Node::join_policy`]), leaving the room it
    /// was in. The broker answers with `room_joined` (the members, the stream position, and
    /// with `since` the missed messages or `recovered: false`) and tells the other members.
    pub fn join_room(
        &self,
        session: &Arc<Session>,
        room: RoomName,
        user: User,
        since: Option<StreamPosition>,
        presence_diff: bool,
    ) {
        self.leave_room(session, true);
        let old_id = {
            let mut state = session.state.lock();
            let old = state.user.replace(user.clone());
            state.room = Some(room.clone());
            state.presence_diff = presence_diff;
            old.map(|u| u.id().to_owned())
        };
        if old_id.as_deref() != Some(user.id()) {
            if let Some(old) = old_id {
                self.unindex_user(&old, session);
            }
            self.index_user(user.id(), session);
        }
        // Messages published once the broker has run the join must find the room here.
        self.hub.prepare_join(&room);
        self.broker.submit(Command::Join {
            session: session.id.clone(),
            room,
            user,
            since,
        });
    }

    /// Takes the session out of its room, answering `room_left` when `answer`; returns false
    /// when it was in none.
    pub fn leave_room(&self, session: &Arc<Session>, answer: bool) -> bool {
        let (room, user) = {
            let mut state = session.state.lock();
            let Some(room) = state.room.take() else {
                return false;
            };
            (room, state.user.clone())
        };
        // Not a member here yet when its join is still on its way; the broker runs the leave
        // after the join all the same.
        let user = self.hub.leave(&room, session).or(user);
        let Some(user) = user else { return false };
        if answer {
            self.send(session, &ServerMessage::RoomLeft { room: room.clone() });
        }
        self.broker.submit(Command::Leave {
            session: session.id.clone(),
            room,
            user,
        });
        true
    }

    /// The room a session is in and the user it is there as.
    pub fn room_of(&self, session: &Session) -> Option<(RoomName, User)> {
        let state = session.state.lock();
        Some((state.room.clone()?, state.user.clone()?))
    }

    /// Asks for the whole member list of the session's room, across the cluster; the session
    /// gets `presence_state`.
    pub fn request_members(&self, session: &Session, room: RoomName) {
        self.broker.submit(Command::Members {
            session: session.id.clone(),
            room,
        });
    }

    /// Publishes a message into a room's stream. `message` must end with an `offset` field
    /// (set to 0): the broker gives it the room's next offset and keeps it in history. `from`,
    /// the member it comes from, gets an error if the cluster cannot take it.
    pub fn publish_to_room(&self, room: RoomName, message: &ServerMessage, from: Option<&Session>) {
        self.broker.submit(Command::Publish {
            room,
            prefix: offset_prefix(message),
            from: from.map(|s| s.id.clone()),
        });
    }

    /// Sends a frame to a room's members on every node, except the session `except`; not part
    /// of the room's stream.
    pub fn publish_volatile(
        &self,
        room: RoomName,
        except: Option<&Session>,
        message: &ServerMessage,
    ) {
        self.broker.submit(Command::Volatile {
            room,
            except: except.map(|s| s.id.clone()),
            frame: encode(message),
        });
    }

    /// Sends a message to every WebSocket of a user on every node; `from` hears
    /// `user_not_found` when there is none.
    pub fn send_to_user(&self, from: &Session, target: &str, message: &ServerMessage) {
        self.broker.submit(Command::Private {
            from: from.id.clone(),
            target: target.to_owned(),
            frame: encode(message),
        });
    }

    /// Sends one frame to one member of `room` by its session id, on whichever node holds it;
    /// `from` hears `peer_not_found` when the target is not a member of the room. Frames from one
    /// session to one target keep their order, across nodes too.
    pub fn send_to_member(
        &self,
        from: &Session,
        room: RoomName,
        target: &str,
        message: &ServerMessage,
    ) {
        self.broker.submit(Command::Direct {
            from: from.id.clone(),
            room,
            target: target.into(),
            frame: encode(message),
        });
    }

    /// Asks the broker for the members of `room` (session ids and users, on every node) on
    /// behalf of `session`; the capability that takes [`Capability::roster`] answers it.
    pub fn request_roster(&self, session: &Session, room: RoomName) {
        self.broker.submit(Command::Roster {
            session: session.id.clone(),
            room,
        });
    }

    /// Capability `documents`: hands a document command to the broker; outcomes come back
    /// through [`Capability::document`].
    pub fn submit_document(&self, command: crate::broker::documents::DocCommand) {
        self.broker.submit(Command::Doc(command));
    }

    /// Whether this node computes what the cluster needs computed once (the broker's topic
    /// leader; a node alone always does).
    pub fn leads(&self) -> bool {
        self.broker.leads()
    }

    /// Hands data a capability needs applied on every node, in one cluster-wide order, to the
    /// broker; the capability named `capability` gets it on every node in
    /// [`Capability::ordered`].
    pub fn submit_ordered(&self, capability: &str, body: String) {
        self.broker.submit(Command::Ordered {
            capability: capability.to_owned(),
            body,
        });
    }

    /// Publishes a resumable event to the SSE streams (and a notification to its user's, or
    /// everyone's, WebSockets) on every node.
    pub fn publish_event(&self, event: Event) {
        self.broker.submit(Command::Event(event));
    }

    /// Waits (up to 5 s) until the broker has carried out everything submitted before, such as
    /// [`Node::publish_event`]: publishing endpoints answer after it, so one backend's
    /// sequential publishes keep their order on every node.
    pub async fn settled(&self) {
        if let Some(done) = self.broker.settled() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), done).await;
        }
    }

    /// Sends one event without an id to every SSE stream on this node (the demo feeds).
    pub fn broadcast_sse(&self, name: &str, data: &impl Serialize) {
        let frame = encode_sse(name, None, data);
        let streams = self.sessions_of(None, Some(Transport::Sse));
        self.fan_out(&streams, &frame);
    }

    fn sessions_of(&self, user: Option<&str>, transport: Option<Transport>) -> Vec<Arc<Session>> {
        let mut sessions = match user {
            Some(user) => self.hub.user_sessions(user),
            None => self.hub.all_sessions(),
        };
        if let Some(transport) = transport {
            sessions.retain(|s| s.transport == transport);
        }
        sessions
    }

    fn fan_out(&self, sessions: &[Arc<Session>], frame: &Utf8Bytes) -> usize {
        let sent = sessions
            .iter()
            .map(|s| usize::from(s.push(frame.clone())))
            .sum();
        self.count_out(sent);
        sent
    }

    fn count_out(&self, sent: usize) {
        self.metrics.frames_out.inc_by(sent as u64);
        if sent > 1 {
            self.metrics.broadcasts.inc();
        }
    }
}

impl Node {
    /// Asks the broker for catch-ups the hub needs, from a task of their own: a broker may be
    /// delivering under a lock of the room they concern (the memory broker does).
    fn catch_up(&self, commands: Vec<Command>) {
        if commands.is_empty() {
            return;
        }
        let me = self.me.clone();
        tokio::spawn(async move {
            if let Some(node) = me.upgrade() {
                for command in commands {
                    node.broker.submit(command);
                }
            }
        });
    }
}

impl BrokerEvents for Node {
    fn joined(&self, answer: JoinAnswer) {
        let Some(session) = self.hub.session(&answer.session) else {
            // The session closed meanwhile: release the room's pending mark.
            self.hub.abandon_join(&answer.room);
            return;
        };
        let frame = encode(&ServerMessage::RoomJoined {
            room: answer.room.clone(),
            users: answer.users.clone(),
            epoch: Some(answer.epoch.clone()),
            offset: Some(answer.offset),
            recovered: answer.recovered,
        });
        let added = self.hub.complete_join(&session, &answer, frame, || {
            !session.is_closing() && session.state.lock().room.as_ref() == Some(&answer.room)
        });
        if added {
            self.metrics
                .frames_out
                .inc_by(1 + answer.replay.len() as u64);
        }
    }

    fn room_message(&self, room: &RoomName, epoch: &str, offset: u64, frame: Utf8Bytes) {
        let delivered = self.hub.deliver(room, epoch, offset, frame);
        self.metrics.frames_out.inc_by(delivered.sent as u64);
        self.metrics.broadcasts.inc();
        self.catch_up(delivered.catch_up);
    }

    fn caught_up(&self, answer: CatchUpAnswer) {
        let (queued, again) = self
            .hub
            .complete_catch_up(&answer, |epoch, offset, recovered| {
                encode(&ServerMessage::RoomResumed {
                    room: answer.room.clone(),
                    epoch: epoch.to_owned(),
                    offset,
                    recovered,
                })
            });
        self.metrics.frames_out.inc_by(queued as u64);
        self.catch_up(again);
    }

    fn reconnected(&self) {
        let asked = self.hub.interrupt_all();
        if !asked.is_empty() {
            tracing::info!(
                rooms = asked.len(),
                "back in the cluster: catching this node's rooms up"
            );
        }
        self.catch_up(asked);
    }

    fn presence(&self, change: PresenceChange) {
        let sent = self.hub.presence(&change);
        self.count_out(sent);
    }

    fn members(&self, session: &str, room: &RoomName, users: Vec<User>) {
        if let Some(session) = self.hub.session(session) {
            let room = room.clone();
            self.send(&session, &ServerMessage::PresenceState { room, users });
        }
    }

    fn room_volatile(&self, room: &RoomName, except: Option<&str>, frame: &Utf8Bytes) {
        let sent = self.hub.broadcast_volatile(room, frame, except);
        self.metrics.frames_out.inc_by(sent as u64);
    }

    fn private(&self, target: &str, frame: &Utf8Bytes) -> usize {
        let mut targets = self.sessions_of(Some(target), None);
        targets.retain(|s| s.transport.speaks_frames());
        self.fan_out(&targets, frame);
        targets.len()
    }

    fn undeliverable(&self, from: &str, target: &str) {
        if let Some(session) = self.hub.session(from) {
            self.refuse(
                &session,
                ErrorCode::UserNotFound,
                format!("User {target} is not connected"),
            );
        }
    }

    fn not_published(&self, from: &str, room: &RoomName, why: crate::broker::Unpublished) {
        use crate::broker::Unpublished;
        if let Some(session) = self.hub.session(from) {
            let message = match why {
                Unpublished::Unreachable => format!("This server cannot reach the cluster: your message to {room} was not sent; send it again later"),
                Unpublished::MaybeLost => format!("This server lost the cluster while sending your message to {room}: it may not have been sent"),
                Unpublished::QueueFull => format!("This server is overloaded: your message to {room} was not sent; send it again later"),
            };
            self.refuse(&session, ErrorCode::Overloaded, message);
        }
    }

    fn direct(&self, room: &RoomName, target: &str, frame: &Utf8Bytes) -> bool {
        let Some(session) = self.hub.session(target) else {
            return false;
        };
        if session.is_closing() || session.state.lock().room.as_ref() != Some(room) {
            return false;
        }
        let sent = session.push(frame.clone());
        self.count_out(usize::from(sent));
        sent
    }

    fn peer_unreachable(&self, from: &str, room: &RoomName, target: &str) {
        if let Some(session) = self.hub.session(from) {
            self.refuse(
                &session,
                ErrorCode::PeerNotFound,
                format!("Peer {target} is not in room {room}"),
            );
        }
    }

    fn roster(&self, session: &str, room: &RoomName, members: Vec<(SessionId, User)>) {
        let Some(session) = self.hub.session(session) else {
            return;
        };
        for capability in &self.capabilities {
            if capability.roster(self, &session, room, &members) {
                return;
            }
        }
        tracing::warn!(%room, "no capability takes a roster");
    }

    fn event(&self, id: Option<u64>, event: &Event) {
        let (name, user, payload, ws) = match event {
            Event::Notification(n) => (
                event::NOTIFICATION,
                n.user_id.as_deref(),
                serde_json::to_string(n),
                true,
            ),
            Event::Update(u) => (event::UPDATE, None, serde_json::to_string(u), false),
        };
        let payload = payload.expect("SSE payloads always serialise");
        let mut log = self.sse_log.lock();
        let id = match id {
            Some(id) => {
                if id <= log.last {
                    // The broker's counter went back (its data was lost): start over.
                    log.ring.clear();
                }
                id
            }
            None => log.last + 1,
        };
        log.last = id;
        let frame = sse_block(name, Some(id), &payload);
        log.ring.push(
            id,
            SseStored {
                user: user.map(str::to_owned),
                frame: frame.clone(),
            },
        );
        let transport = (!ws).then_some(Transport::Sse);
        let sessions = self.sessions_of(user, transport);
        let mut ws_frame = None;
        let mut sent = 0;
        for session in &sessions {
            let frame = match (session.transport, event) {
                (Transport::WebSocket | Transport::Polling, Event::Notification(n)) => {
                    ws_frame.get_or_insert_with(|| notification_frame(n))
                }
                _ => &frame,
            };
            sent += usize::from(session.push(frame.clone()));
        }
        drop(log);
        self.metrics.frames_out.inc_by(sent as u64);
        self.metrics.broadcasts.inc();
    }

    fn backend(&self, request: BackendRequest) {
        for capability in &self.capabilities {
            if capability.backend(self, &request) {
                return;
            }
        }
        tracing::warn!(?request, "no capability takes this backend request");
    }

    fn reset(&self) {
        self.hub.reset_presence();
    }

    fn document(&self, event: crate::broker::documents::DocEvent) {
        for capability in &self.capabilities {
            if capability.document(self, &event) {
                return;
            }
        }
    }

    fn ordered(&self, capability: &str, body: &str) {
        match self.capabilities.iter().find(|c| c.name() == capability) {
            Some(c) => c.ordered(self, body),
            None => tracing::warn!(capability, "ordered data for a capability this node lacks"),
        }
    }

    fn local_state(&self) -> LocalState {
        let members = self
            .hub
            .snapshot()
            .into_iter()
            .flat_map(|(room, members)| {
                members
                    .into_iter()
                    .map(move |m| (room.clone(), m.session.id.clone(), m.user))
            })
            .collect();
        let users = self
            .hub
            .all_sessions()
            .into_iter()
            .filter_map(|s| Some((s.user_id()?, s.id.clone(), s.transport)))
            .collect();
        LocalState { members, users }
    }
}
