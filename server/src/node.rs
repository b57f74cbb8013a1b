//! The node: the one API every transport calls (join, leave, chat, typing, private messages,
//! notifications, updates). It authorises, sanitises, stamps ids, timestamps and offsets, encodes
//! each outgoing message once, and hands the shared bytes to the hub.
//!
//! The node knows nothing of sockets: transports give it sessions and text, and drain what it
//! queues.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime};

use herald_protocol::error::text;
use herald_protocol::sse::{event, Notification, Update};
use herald_protocol::{
    ClientMessage, Connected, ErrorCode, NotifyRequest, Ping, RoomName, ServerMessage,
    StreamPosition, UpdateRequest, User,
};
use parking_lot::Mutex;
use serde::Serialize;

use crate::broker::{Broker, Command};
use crate::config::Config;
use crate::hub::{ClusterView, HistoryLimits, Hub};
use crate::inbound;
use crate::metrics::Metrics;
use crate::sanitize::sanitize;
use crate::session::tokio_tungstenite_utf8::Utf8Bytes;
use crate::session::{Outbox, QueueLimits, Session, Transport};

/// The current time as RFC 3339 with milliseconds, like JavaScript's `toISOString()`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Unique ids: a random per-process prefix and a counter, in base 36.
struct Ids {
    prefix: String,
    next: AtomicU64,
}

impl Ids {
    fn new() -> Self {
        use rand::Rng;
        let mut rng = rand::rng();
        let prefix = (0..4)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz"[rng.random_range(0..26)]))
            .collect();
        Ids {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        let mut n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut digits = Vec::with_capacity(13);
        while n > 0 {
            digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
            n /= 36;
        }
        digits.reverse();
        let mut id = self.prefix.clone();
        id.push_str(std::str::from_utf8(&digits).expect("ascii"));
        id
    }
}

/// Encodes a WebSocket frame once; every recipient shares the bytes.
pub fn encode(message: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(message).expect("server messages always serialise"))
}

/// Encodes one SSE event block (`event:`, optional `id:`, `data:`), once for every stream.
pub fn encode_sse(name: &str, id: Option<&str>, data: &impl Serialize) -> Utf8Bytes {
    let json = serde_json::to_string(data).expect("SSE payloads always serialise");
    sse_block(name, id, &json)
}

/// One SSE event block around a payload that is already JSON.
fn sse_block(name: &str, id: Option<&str>, json: &str) -> Utf8Bytes {
    let mut out = String::with_capacity(json.len() + name.len() + 24);
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(json);
    out.push_str("\n\n");
    Utf8Bytes::from(out)
}

/// A delivered SSE event kept for streams that resume with `Last-Event-ID`.
struct SseStored {
    id: u64,
    at: Instant,
    /// The user it was for; `None` for every stream.
    user: Option<String>,
    frame: Utf8Bytes,
}

/// The SSE stream's recent events. Its lock is held while an event is queued to the streams and
/// while a new stream is opened, so a resuming stream gets the replay, then live events, with
/// nothing missed or doubled.
#[derive(Default)]
struct SseLog {
    last: u64,
    ring: VecDeque<SseStored>,
}

/// The kinds of SSE event that carry an id and can be resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseKind<'a> {
    /// A `notification` (also sent to the user's WebSockets) for one user, or for everyone.
    Notification { user: Option<&'a str> },
    /// An `update` (SSE streams only).
    Update,
}

/// The server's core: configuration, this node's hub, and metrics.
pub struct Node {
    /// Settings in force.
    pub config: Config,
    /// This node's sessions.
    pub hub: Hub,
    /// Counters and gauges.
    pub metrics: Metrics,
    ids: Ids,
    /// The token verifier; `None` when authentication is off.
    pub auth: Option<crate::auth::Auth>,
    /// Abuse limits and connection counters.
    pub limits: crate::limits::Limits,
    /// Where actions other nodes must see go.
    pub broker: Box<dyn Broker>,
    sse_log: Mutex<SseLog>,
}

impl Node {
    /// A node with the given settings.
    pub fn new(config: Config) -> Arc<Self> {
        inbound::warm_up();
        let history = HistoryLimits {
            size: config.history_size,
            ttl: config.history_ttl,
        };
        let auth = crate::auth::Auth::from_config(&config)
            .expect("the JWT key is checked before the node is built");
        let limits = crate::limits::Limits::new(&config);
        crate::auth::log_posture(&config, auth.as_ref());
        limits.log_posture(&config);
        Arc::new_cyclic(|node: &Weak<Node>| {
            let broker: Box<dyn Broker> = match &config.broker {
                Some(url) => Box::new(crate::broker::redis_broker::Redis::start(
                    &config,
                    url,
                    node.clone(),
                )),
                None => Box::new(crate::broker::Memory),
            };
            Node {
                config,
                hub: Hub::new(history),
                metrics: Metrics::new(),
                ids: Ids::new(),
                auth,
                limits,
                broker,
                sse_log: Mutex::new(SseLog::default()),
            }
        })
    }

    /// Whether this node shares its rooms with other nodes.
    pub fn clustered(&self) -> bool {
        self.config.broker.is_some()
    }

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
        self.broker.user_online(user_id, session);
    }

    fn unindex_user(&self, user_id: &str, session: &Arc<Session>) {
        self.hub.unindex_user(user_id, session);
        self.broker.user_offline(user_id, session);
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
            let ttl = self.config.history_ttl;
            let kept: Vec<&SseStored> = log
                .ring
                .iter()
                .filter(|e| e.id > last && e.at.elapsed() <= ttl)
                .collect();
            let complete = last >= log.last || kept.first().is_some_and(|e| e.id <= last + 1);
            if complete {
                for stored in kept {
                    if stored.user.is_none() || stored.user.as_deref() == user.as_deref() {
                        session.push(stored.frame.clone());
                    }
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
                capabilities: herald_protocol::capability::herald_capabilities(self.auth.is_some()),
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
        self.leave_room(session, false);
        if let Some(id) = session.user_id() {
            self.broker.user_offline(&id, session);
        }
        self.hub.remove_session(session);
        self.metrics.closed(session.transport);
    }

    fn send(&self, session: &Session, message: &ServerMessage) {
        if session.push(encode(message)) {
            self.metrics.frames_out.inc();
        }
    }

    fn refuse(&self, session: &Session, code: ErrorCode, message: impl Into<String>) {
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

    /// Acts on one client message.
    pub fn handle(&self, session: &Arc<Session>, message: ClientMessage) {
        match message {
            ClientMessage::Join { room, user, since } => self.join(session, room, user, since),
            ClientMessage::Leave {} => {
                if !self.leave_room(session, true) {
                    self.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM);
                }
            }
            ClientMessage::Chat { text: body } => self.chat(session, &body),
            ClientMessage::Typing { is_typing } => self.typing(session, is_typing),
            ClientMessage::PrivateMessage { target, text: body } => {
                self.private(session, &target, &body)
            }
            ClientMessage::Ping {} => self.send(session, &ServerMessage::Pong {}),
        }
    }

    fn join(
        &self,
        session: &Arc<Session>,
        room: RoomName,
        user: User,
        since: Option<StreamPosition>,
    ) {
        // With a token the user is the token's, and its `rooms` claim decides.
        let user = match crate::auth::join_user(self, session, &room, user) {
            Ok(user) => user,
            Err(refusal) => return self.refuse(session, refusal.code, refusal.message),
        };
        self.leave_room(session, true);
        let old_id = {
            let mut state = session.state.lock();
            let old = state.user.replace(user.clone());
            state.room = Some(room.clone());
            old.map(|u| u.id().to_owned())
        };
        if old_id.as_deref() != Some(user.id()) {
            if let Some(old) = old_id {
                self.unindex_user(&old, session);
            }
            self.index_user(user.id(), session);
        }
        if self.clustered() {
            // Messages published once the broker has run the join must find the room here.
            self.hub.prepare_join(&room);
        }
        self.broker.submit(
            self,
            Command::Join {
                session: session.clone(),
                room,
                user,
                since,
            },
        );
    }

    /// Takes the session out of its room; returns false when it was in none.
    fn leave_room(&self, session: &Arc<Session>, answer: bool) -> bool {
        let (room, user) = {
            let mut state = session.state.lock();
            let Some(room) = state.room.take() else {
                return false;
            };
            (room, state.user.clone())
        };
        let (user, others) = match (self.hub.leave(&room, session), user) {
            (Some(left), _) => (left.user, left.others),
            // In a cluster the join may still be on its way: the broker runs the leave after it.
            (None, Some(user)) if self.clustered() => (user, Vec::new()),
            (None, _) => return false,
        };
        if answer {
            self.send(session, &ServerMessage::RoomLeft { room: room.clone() });
        }
        self.broker.submit(
            self,
            Command::Left {
                session: session.clone(),
                room,
                user,
                others,
            },
        );
        true
    }

    fn fan_out(&self, sessions: &[Arc<Session>], frame: &Utf8Bytes) {
        let mut sent = 0;
        for session in sessions {
            sent += u64::from(session.push(frame.clone()));
        }
        self.metrics.frames_out.inc_by(sent);
        if sessions.len() > 1 {
            self.metrics.broadcasts.inc();
        }
    }

    fn room_and_user(&self, session: &Session) -> Option<(RoomName, User)> {
        let state = session.state.lock();
        Some((state.room.clone()?, state.user.clone()?))
    }

    fn chat(&self, session: &Arc<Session>, body: &str) {
        let Some((room, user)) = self.room_and_user(session) else {
            return self.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM);
        };
        self.publish_chat(room, user, body);
    }

    /// Stamps and sends a chat message to a room (from a member, or from a backend through the
    /// `room.messages` topic).
    pub fn publish_chat(&self, room: RoomName, user: User, body: &str) {
        let prefix = chat_prefix(ServerMessage::Chat {
            id: self.ids.next(),
            user,
            text: sanitize(body),
            timestamp: now_rfc3339(),
            room: room.clone(),
            offset: Some(0),
        });
        self.broker.submit(self, Command::Chat { room, prefix });
    }

    fn typing(&self, session: &Arc<Session>, is_typing: bool) {
        let Some((room, user)) = self.room_and_user(session) else {
            return self.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM);
        };
        let frame = encode(&ServerMessage::Typing {
            user,
            is_typing,
            room: Some(room.clone()),
        });
        self.broker.submit(
            self,
            Command::Typing {
                session: session.clone(),
                room,
                frame,
            },
        );
    }

    fn private(&self, session: &Arc<Session>, target: &str, body: &str) {
        let Some(from) = session.state.lock().user.clone() else {
            return self.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM);
        };
        let frame = encode(&ServerMessage::PrivateMessage {
            id: self.ids.next(),
            from,
            text: sanitize(body),
            timestamp: now_rfc3339(),
        });
        self.broker.submit(
            self,
            Command::Private {
                from: session.clone(),
                target: target.to_owned(),
                frame,
            },
        );
    }

    /// Tells the sender of a private message that nobody received it.
    pub fn refuse_private(&self, from: &Session, target: &str) {
        self.refuse(
            from,
            ErrorCode::UserNotFound,
            format!("User {target} is not connected"),
        );
    }

    /// Delivers a notification to every connection of its user, or to everyone.
    pub fn notify(&self, request: NotifyRequest) -> Notification {
        let notification = Notification {
            id: self.ids.next(),
            user_id: request.user_id,
            message: request.message,
            kind: request.kind.unwrap_or_else(|| "info".to_owned()),
            timestamp: now_rfc3339(),
        };
        self.broker
            .submit(self, Command::Notify(notification.clone()));
        notification
    }

    /// Delivers a resource update to every SSE stream.
    pub fn update(&self, request: UpdateRequest) -> Update {
        let update = Update {
            resource: request.resource,
            action: request.action,
            data: request.data,
            timestamp: now_rfc3339(),
        };
        self.broker.submit(self, Command::Update(update.clone()));
        update
    }

    /// Sends one event without an id to every SSE stream (the demo feeds).
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

    /// Carries out a command on this node alone: the whole job with the in-memory broker, and
    /// the fallback of a cluster node whose broker is unreachable (`detached`).
    pub fn apply_local(&self, command: Command, detached: bool) {
        match command {
            Command::Join {
                session,
                room,
                user,
                since,
            } => {
                if detached {
                    // The pending mark of `prepare_join` is not needed any more.
                    self.hub.cancel_pending(&room);
                }
                self.local_join(&session, room, user, since);
            }
            Command::Left {
                room, user, others, ..
            } => {
                if !others.is_empty() {
                    let frame = encode(&ServerMessage::UserLeft {
                        user,
                        room: Some(room),
                    });
                    self.fan_out(&others, &frame);
                }
            }
            Command::Chat { room, prefix } => {
                let sent = self
                    .hub
                    .publish(&room, detached, |offset| with_offset(&prefix, offset));
                self.metrics.frames_out.inc_by(sent as u64);
                self.metrics.broadcasts.inc();
            }
            Command::Typing {
                session,
                room,
                frame,
            } => {
                let sent = self.hub.broadcast_volatile(&room, &frame, Some(&session));
                self.metrics.frames_out.inc_by(sent as u64);
            }
            Command::Private {
                from,
                target,
                frame,
            } => {
                if self.deliver_private(&target, &frame) == 0 {
                    self.refuse_private(&from, &target);
                }
            }
            Command::Notify(notification) => {
                let payload = serde_json::to_string(&notification).expect("serialises");
                let user = notification.user_id.as_deref();
                self.deliver_sse(None, SseKind::Notification { user }, &payload);
            }
            Command::Update(update) => {
                let payload = serde_json::to_string(&update).expect("serialises");
                self.deliver_sse(None, SseKind::Update, &payload);
            }
        }
    }

    fn local_join(
        &self,
        session: &Arc<Session>,
        room: RoomName,
        user: User,
        since: Option<StreamPosition>,
    ) {
        // The session may have left (or joined elsewhere) while the command waited.
        if session.state.lock().room.as_ref() != Some(&room) {
            return;
        }
        let joined = self
            .hub
            .join(&room, session, user.clone(), since.as_ref(), |joined| {
                encode(&ServerMessage::RoomJoined {
                    room: room.clone(),
                    users: joined.users.clone(),
                    epoch: Some(joined.epoch.clone()),
                    offset: Some(joined.offset),
                    recovered: joined.recovered,
                })
            });
        if !joined.others.is_empty() {
            let frame = encode(&ServerMessage::UserJoined {
                user,
                users: joined.users,
                room: Some(room),
            });
            self.fan_out(&joined.others, &frame);
        }
    }

    /// Cluster: the broker ran a join; answer the joiner and start its deliveries.
    pub fn complete_join(
        &self,
        session: &Arc<Session>,
        room: &RoomName,
        user: User,
        users: Vec<User>,
        view: &ClusterView,
        recovered: Option<bool>,
    ) {
        let frame = encode(&ServerMessage::RoomJoined {
            room: room.clone(),
            users,
            epoch: Some(view.epoch.clone()),
            offset: Some(view.offset),
            recovered,
        });
        let added = self
            .hub
            .complete_join(room, session, user, view, frame, || {
                !session.is_closing() && session.state.lock().room.as_ref() == Some(room)
            });
        if added {
            self.metrics.frames_out.inc_by(1 + view.replay.len() as u64);
        }
    }

    /// Cluster: a room message stamped by the broker.
    pub fn deliver_room(&self, room: &RoomName, epoch: &str, offset: u64, frame: Utf8Bytes) {
        let sent = self.hub.deliver(room, epoch, offset, frame);
        self.metrics.frames_out.inc_by(sent as u64);
        if sent > 0 {
            self.metrics.broadcasts.inc();
        }
    }

    /// Cluster: a frame for a room's members here, but not `except` (a session id).
    pub fn deliver_volatile(&self, room: &RoomName, except: Option<&str>, frame: &Utf8Bytes) {
        let except = except.and_then(|id| self.hub.session(id));
        let sent = self.hub.broadcast_volatile(room, frame, except.as_ref());
        self.metrics.frames_out.inc_by(sent as u64);
    }

    /// A private message to every WebSocket of a user on this node; returns how many.
    pub fn deliver_private(&self, target: &str, frame: &Utf8Bytes) -> usize {
        let targets = self.sessions_of(Some(target), Some(Transport::WebSocket));
        self.fan_out(&targets, frame);
        targets.len()
    }

    /// Delivers a notification or an update on this node: to the SSE streams (with the event id,
    /// kept for `Last-Event-ID`), and a notification also to the WebSockets. `id` is the
    /// cluster's; `None` takes this node's next one.
    pub fn deliver_sse(&self, id: Option<u64>, kind: SseKind, payload: &str) {
        let (name, user) = match kind {
            SseKind::Notification { user } => (event::NOTIFICATION, user),
            SseKind::Update => (event::UPDATE, None),
        };
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
        let frame = sse_block(name, Some(&id.to_string()), payload);
        let ttl = self.config.history_ttl;
        while log.ring.front().is_some_and(|e| e.at.elapsed() > ttl)
            || log.ring.len() >= self.config.history_size.max(1)
        {
            log.ring.pop_front();
        }
        if self.config.history_size > 0 {
            log.ring.push_back(SseStored {
                id,
                at: Instant::now(),
                user: user.map(str::to_owned),
                frame: frame.clone(),
            });
        }
        let transport = match kind {
            SseKind::Notification { .. } => None,
            SseKind::Update => Some(Transport::Sse),
        };
        let sessions = self.sessions_of(user, transport);
        let mut ws_frame = None;
        let mut sent = 0u64;
        for session in &sessions {
            let frame = match session.transport {
                Transport::Sse => &frame,
                Transport::WebSocket => ws_frame.get_or_insert_with(|| {
                    let mut out = String::with_capacity(payload.len() + 36);
                    out.push_str(r#"{"type":"notification","content":"#);
                    out.push_str(payload);
                    out.push('}');
                    Utf8Bytes::from(out)
                }),
            };
            sent += u64::from(session.push(frame.clone()));
        }
        drop(log);
        self.metrics.frames_out.inc_by(sent);
        self.metrics.broadcasts.inc();
    }
}

/// Encodes a chat frame up to its offset (the last field): `{"type":"chat",...,"offset":`.
fn chat_prefix(message: ServerMessage) -> String {
    let mut json = serde_json::to_string(&message).expect("server messages always serialise");
    debug_assert!(json.ends_with(r#","offset":0}"#));
    json.truncate(json.len() - 2);
    json
}

/// Completes a frame from [`chat_prefix`] with its offset.
pub fn with_offset(prefix: &str, offset: u64) -> Utf8Bytes {
    use std::fmt::Write;
    let mut out = String::with_capacity(prefix.len() + 21);
    out.push_str(prefix);
    let _ = write!(out, "{offset}}}");
    Utf8Bytes::from(out)
}
