//! The node: the one API every transport calls (join, leave, chat, typing, private messages,
//! notifications, updates). It authorises, sanitises, stamps ids, timestamps and offsets, encodes
//! each outgoing message once, and hands the shared bytes to the hub.
//!
//! The node knows nothing of sockets: transports give it sessions and text, and drain what it
//! queues.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use herald_protocol::error::text;
use herald_protocol::sse::{event, Notification, Update};
use herald_protocol::{
    ClientMessage, Connected, ErrorCode, NotifyRequest, Ping, RoomName, ServerMessage,
    StreamPosition, UpdateRequest, User,
};
use serde::Serialize;

use crate::config::Config;
use crate::hub::{HistoryLimits, Hub};
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
    out.push_str(&json);
    out.push_str("\n\n");
    Utf8Bytes::from(out)
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
        Arc::new(Node {
            config,
            hub: Hub::new(history),
            metrics: Metrics::new(),
            ids: Ids::new(),
            auth,
            limits,
        })
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
        self.hub.index_user(&id, session);
    }

    /// Sends the first WebSocket frame.
    pub fn welcome(&self, session: &Arc<Session>) {
        self.send(
            session,
            &ServerMessage::Welcome {
                client_id: session.id.to_string(),
            },
        );
    }

    /// Sends the first SSE event.
    pub fn sse_connected(&self, session: &Arc<Session>) {
        let data = Connected::Connected {
            timestamp: now_rfc3339(),
        };
        session.push(encode_sse(event::CONNECT, None, &data));
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
                self.hub.unindex_user(&old, session);
            }
            self.hub.index_user(user.id(), session);
        }
        let joined = self
            .hub
            .join(&room, session, user.clone(), since.as_ref(), |joined| {
                encode(&ServerMessage::RoomJoined {
                    room: room.clone(),
                    users: joined.users.clone(),
                    epoch: joined.epoch.clone(),
                    offset: joined.offset,
                    recovered: joined.recovered,
                })
            });
        if !joined.others.is_empty() {
            let frame = encode(&ServerMessage::UserJoined {
                user,
                users: joined.users,
                room,
            });
            self.fan_out(&joined.others, &frame);
        }
    }

    /// Takes the session out of its room; returns false when it was in none.
    fn leave_room(&self, session: &Arc<Session>, answer: bool) -> bool {
        let Some(room) = session.state.lock().room.take() else {
            return false;
        };
        let Some(left) = self.hub.leave(&room, session) else {
            return false;
        };
        if answer {
            self.send(session, &ServerMessage::RoomLeft { room: room.clone() });
        }
        if !left.others.is_empty() {
            let frame = encode(&ServerMessage::UserLeft {
                user: left.user,
                room,
            });
            self.fan_out(&left.others, &frame);
        }
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
        let clean = sanitize(body);
        let id = self.ids.next();
        let timestamp = now_rfc3339();
        let sent = self.hub.publish(&room, |offset| {
            encode(&ServerMessage::Chat {
                id,
                user,
                text: clean,
                timestamp,
                room: room.clone(),
                offset,
            })
        });
        self.metrics.frames_out.inc_by(sent as u64);
        self.metrics.broadcasts.inc();
    }

    fn typing(&self, session: &Arc<Session>, is_typing: bool) {
        let Some((room, user)) = self.room_and_user(session) else {
            return self.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM);
        };
        let frame = encode(&ServerMessage::Typing {
            user,
            is_typing,
            room: room.clone(),
        });
        let sent = self.hub.broadcast_volatile(&room, &frame, Some(session));
        self.metrics.frames_out.inc_by(sent as u64);
    }

    fn private(&self, session: &Arc<Session>, target: &str, body: &str) {
        let Some(from) = session.state.lock().user.clone() else {
            return self.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM);
        };
        let targets: Vec<Arc<Session>> = self
            .hub
            .user_sessions(target)
            .into_iter()
            .filter(|s| s.transport == Transport::WebSocket)
            .collect();
        if targets.is_empty() {
            return self.refuse(
                session,
                ErrorCode::UserNotFound,
                format!("User {target} is not connected"),
            );
        }
        let frame = encode(&ServerMessage::PrivateMessage {
            id: self.ids.next(),
            from,
            text: sanitize(body),
            timestamp: now_rfc3339(),
        });
        self.fan_out(&targets, &frame);
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
        let sessions = match &notification.user_id {
            Some(user) => self.hub.user_sessions(user),
            None => self.hub.all_sessions(),
        };
        let mut ws_frame = None;
        let mut sse_frame = None;
        let mut sent = 0u64;
        for session in &sessions {
            let frame = match session.transport {
                Transport::WebSocket => ws_frame.get_or_insert_with(|| {
                    encode(&ServerMessage::Notification {
                        content: notification.clone(),
                    })
                }),
                Transport::Sse => sse_frame
                    .get_or_insert_with(|| encode_sse(event::NOTIFICATION, None, &notification)),
            };
            sent += u64::from(session.push(frame.clone()));
        }
        self.metrics.frames_out.inc_by(sent);
        self.metrics.broadcasts.inc();
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
        self.broadcast_sse(event::UPDATE, &update);
        update
    }

    /// Sends one event to every SSE stream (updates, demo feeds).
    pub fn broadcast_sse(&self, name: &str, data: &impl Serialize) {
        let frame = encode_sse(name, None, data);
        let streams: Vec<Arc<Session>> = self
            .hub
            .all_sessions()
            .into_iter()
            .filter(|s| s.transport == Transport::Sse)
            .collect();
        self.fan_out(&streams, &frame);
    }
}
