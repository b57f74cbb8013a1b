//! This node's sessions, indexed by room and by user.
//!
//! Rooms live in a sharded map; each room has its own lock, held only while its member list,
//! offset or history change and while encoded frames are pushed onto member queues (which never
//! blocks). No lock here is held across an `.await` or a socket write.
//!
//! Each room also keeps its message stream: an epoch, the last offset, and a bounded history,
//! so that a client that reconnects can be given exactly what it missed, or told it cannot.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use herald_protocol::{RoomName, StreamPosition, User};
use parking_lot::Mutex;

use crate::session::{tokio_tungstenite_utf8::Utf8Bytes, Session};

/// A member of a room: one session and the user it joined as.
#[derive(Debug, Clone)]
pub struct Member {
    /// The member's session.
    pub session: Arc<Session>,
    /// The user it joined as.
    pub user: User,
    /// Room messages up to this offset were sent to it before it joined (by `room_joined`'s
    /// offset or the replay); only later ones are delivered.
    pub floor: u64,
}

#[derive(Debug)]
struct Stored {
    offset: u64,
    at: Instant,
    frame: Utf8Bytes,
}

#[derive(Debug)]
struct RoomState {
    members: Vec<Member>,
    epoch: String,
    offset: u64,
    history: VecDeque<Stored>,
    emptied_at: Option<Instant>,
    /// Set when the room was dropped from the map; a late joiner must look it up again.
    removed: bool,
    /// Joins sent to the cluster broker and not answered yet; the room is kept meanwhile.
    pending: u32,
    /// The stream is this node's own while the cluster broker is unreachable.
    detached: bool,
}

/// One room.
#[derive(Debug)]
pub struct Room {
    state: Mutex<RoomState>,
}

/// What `join` found in the room.
#[derive(Debug)]
pub struct Joined {
    /// Every member now, the joiner included, in join order.
    pub users: Vec<User>,
    /// The other members' sessions, to tell them.
    pub others: Vec<Arc<Session>>,
    /// The room stream's epoch.
    pub epoch: String,
    /// The room stream's latest offset.
    pub offset: u64,
    /// Whether a requested resume was complete (None when none was asked).
    pub recovered: Option<bool>,
}

/// What `leave` found in the room.
#[derive(Debug)]
pub struct Left {
    /// The user the session was in the room as.
    pub user: User,
    /// The members still there.
    pub others: Vec<Arc<Session>>,
}

/// What the cluster broker answered to a join.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// The room stream's epoch.
    pub epoch: String,
    /// The room stream's latest offset when the join ran.
    pub offset: u64,
    /// The missed messages to replay (empty unless the resume was complete).
    pub replay: Vec<Utf8Bytes>,
}

/// Settings for room history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Messages kept per room.
    pub size: usize,
    /// How long a message is kept.
    pub ttl: Duration,
}

/// This node's sessions by room, by user and by id.
pub struct Hub {
    rooms: DashMap<RoomName, Arc<Room>>,
    users: DashMap<String, Vec<Arc<Session>>>,
    sessions: DashMap<Arc<str>, Arc<Session>>,
    history: HistoryLimits,
}

/// A random string of `len` lowercase letters and digits.
pub fn random_token(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[rng.random_range(0..36)]))
        .collect()
}

/// A new room stream epoch.
pub fn new_epoch() -> String {
    random_token(8)
}

impl Hub {
    /// An empty hub.
    pub fn new(history: HistoryLimits) -> Self {
        Hub {
            rooms: DashMap::new(),
            users: DashMap::new(),
            sessions: DashMap::new(),
            history,
        }
    }

    /// Registers a new session.
    pub fn add_session(&self, session: &Arc<Session>) {
        self.sessions.insert(session.id.clone(), session.clone());
    }

    /// Forgets a session everywhere but in its room (the node leaves the room first).
    pub fn remove_session(&self, session: &Arc<Session>) {
        self.sessions.remove(&session.id);
        if let Some(id) = session.user_id() {
            self.unindex_user(&id, session);
        }
    }

    /// Every session on this node.
    pub fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions.iter().map(|e| e.value().clone()).collect()
    }

    /// Calls `f` on every session, without collecting them.
    pub fn for_each_session(&self, mut f: impl FnMut(&Arc<Session>)) {
        for entry in self.sessions.iter() {
            f(entry.value());
        }
    }

    /// How many sessions this node holds.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// How many rooms exist (with members or with history).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Makes a session reachable by a user id.
    pub fn index_user(&self, user_id: &str, session: &Arc<Session>) {
        let mut entry = self.users.entry(user_id.to_owned()).or_default();
        if !entry.iter().any(|s| Arc::ptr_eq(s, session)) {
            entry.push(session.clone());
        }
    }

    /// Removes a session from a user id's sessions.
    pub fn unindex_user(&self, user_id: &str, session: &Arc<Session>) {
        self.users.remove_if_mut(user_id, |_, sessions| {
            sessions.retain(|s| !Arc::ptr_eq(s, session));
            sessions.is_empty()
        });
    }

    /// Every session of a user on this node.
    pub fn user_sessions(&self, user_id: &str) -> Vec<Arc<Session>> {
        self.users
            .get(user_id)
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    fn room(&self, name: &RoomName) -> Arc<Room> {
        if let Some(room) = self.rooms.get(name) {
            return room.clone();
        }
        self.rooms
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(Room {
                    state: Mutex::new(RoomState {
                        members: Vec::new(),
                        epoch: new_epoch(),
                        offset: 0,
                        history: VecDeque::new(),
                        emptied_at: None,
                        removed: false,
                        pending: 0,
                        detached: false,
                    }),
                })
            })
            .clone()
    }

    /// Adds a session to a room. When `since` is given and the room's history holds every
    /// message after it, those messages are queued to the joiner first, under the room's lock,
    /// so nothing is missed or duplicated before live messages. `before_replay` is queued to the
    /// joiner first (the `room_joined` frame), built from what the join found.
    pub fn join(
        &self,
        name: &RoomName,
        session: &Arc<Session>,
        user: User,
        since: Option<&StreamPosition>,
        before_replay: impl FnOnce(&Joined) -> Utf8Bytes,
    ) -> Joined {
        loop {
            let room = self.room(name);
            let mut state = room.state.lock();
            // A room removed between lookup and lock is stale: look it up again. (The map's
            // shard lock is never taken while a room lock is held, so this cannot deadlock.)
            if state.removed {
                continue;
            }
            self.expire(&mut state);
            let others: Vec<Arc<Session>> =
                state.members.iter().map(|m| m.session.clone()).collect();
            let floor = state.offset;
            state.members.push(Member {
                session: session.clone(),
                user,
                floor,
            });
            state.emptied_at = None;
            let replay: Option<Vec<Utf8Bytes>> =
                since.map(|pos| resume(&state, pos)).unwrap_or(None);
            let joined = Joined {
                users: state.members.iter().map(|m| m.user.clone()).collect(),
                others,
                epoch: state.epoch.clone(),
                offset: state.offset,
                recovered: since.map(|_| replay.is_some()),
            };
            session.push(before_replay(&joined));
            for frame in replay.into_iter().flatten() {
                session.push(frame);
            }
            return joined;
        }
    }

    /// Removes a session from a room; `None` when it was not a member.
    pub fn leave(&self, name: &RoomName, session: &Arc<Session>) -> Option<Left> {
        let room = self.rooms.get(name)?.clone();
        let mut state = room.state.lock();
        let index = state
            .members
            .iter()
            .position(|m| Arc::ptr_eq(&m.session, session))?;
        let member = state.members.remove(index);
        if state.members.is_empty() {
            state.emptied_at = Some(Instant::now());
            if state.history.is_empty() {
                drop(state);
                self.remove_if_idle(name, &room);
            }
            return Some(Left {
                user: member.user,
                others: Vec::new(),
            });
        }
        Some(Left {
            user: member.user,
            others: state.members.iter().map(|m| m.session.clone()).collect(),
        })
    }

    /// Every member's user, in join order.
    pub fn users(&self, name: &RoomName) -> Vec<User> {
        self.rooms
            .get(name)
            .map(|room| {
                room.state
                    .lock()
                    .members
                    .iter()
                    .map(|m| m.user.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stamps the next offset, encodes the message with it, keeps it in history and queues it to
    /// every member, all under the room's lock so every member sees the room's messages in the
    /// same order. Returns the number of members it was queued to.
    ///
    /// `detached` is for a cluster node whose broker is unreachable: the room's stream here
    /// starts a new epoch the first time, so its local offsets can never be mistaken for the
    /// broker's (a client resuming across the outage gets `recovered: false`, never a wrong
    /// replay), and the broker's next message starts yet another.
    pub fn publish(
        &self,
        name: &RoomName,
        detached: bool,
        encode: impl FnOnce(u64) -> Utf8Bytes,
    ) -> usize {
        let room = self.room(name);
        let mut state = room.state.lock();
        if detached && !state.detached {
            state.detached = true;
            state.epoch = new_epoch();
            state.offset = 0;
            state.history.clear();
        }
        state.offset += 1;
        let offset = state.offset;
        let frame = encode(offset);
        if self.history.size > 0 {
            self.expire(&mut state);
            if state.history.len() == self.history.size {
                state.history.pop_front();
            }
            state.history.push_back(Stored {
                offset,
                at: Instant::now(),
                frame: frame.clone(),
            });
        }
        for member in &state.members {
            member.session.push(frame.clone());
        }
        state.members.len()
    }

    /// Queues a frame to every member except `except` (without an offset: not part of history).
    pub fn broadcast_volatile(
        &self,
        name: &RoomName,
        frame: &Utf8Bytes,
        except: Option<&Arc<Session>>,
    ) -> usize {
        let Some(room) = self.rooms.get(name).map(|r| r.clone()) else {
            return 0;
        };
        let state = room.state.lock();
        let mut sent = 0;
        for member in &state.members {
            if except.is_some_and(|e| Arc::ptr_eq(e, &member.session)) {
                continue;
            }
            member.session.push(frame.clone());
            sent += 1;
        }
        sent
    }

    /// Cluster mode: makes sure the room exists here before its join is sent to the broker, so
    /// that every message published after the broker ran the join lands in this node's recent
    /// history (`deliver`) and can be handed to the joiner when the answer comes back.
    pub fn prepare_join(&self, name: &RoomName) {
        loop {
            let room = self.room(name);
            let mut state = room.state.lock();
            if !state.removed {
                state.pending += 1;
                return;
            }
        }
    }

    /// Cluster mode: a join marked by `prepare_join` is carried out here after all.
    pub fn cancel_pending(&self, name: &RoomName) {
        if let Some(room) = self.rooms.get(name).map(|r| r.clone()) {
            let mut state = room.state.lock();
            state.pending = state.pending.saturating_sub(1);
        }
    }

    /// Cluster mode: completes a join with what the broker answered. Queues `room_joined` and
    /// the replay, then the messages this node already received after the broker's offset, and
    /// adds the member so that only later messages reach it: nothing missed, nothing twice.
    /// Returns false (and adds nothing) when the session left or closed meanwhile.
    pub fn complete_join(
        &self,
        name: &RoomName,
        session: &Arc<Session>,
        user: User,
        view: &ClusterView,
        room_joined: Utf8Bytes,
        still_wanted: impl FnOnce() -> bool,
    ) -> bool {
        let room = self.room(name);
        let mut state = room.state.lock();
        state.pending = state.pending.saturating_sub(1);
        if !still_wanted() {
            return false;
        }
        if state.epoch != view.epoch {
            state.detached = false;
            state.epoch = view.epoch.clone();
            state.history.clear();
            state.offset = view.offset;
        }
        session.push(room_joined);
        for frame in &view.replay {
            session.push(frame.clone());
        }
        for stored in state.history.iter().filter(|m| m.offset > view.offset) {
            session.push(stored.frame.clone());
        }
        let floor = state.offset.max(view.offset);
        state.members.push(Member {
            session: session.clone(),
            user,
            floor,
        });
        state.emptied_at = None;
        true
    }

    /// Cluster mode: a room message the broker stamped, delivered to this node's members that
    /// have not seen it, in offset order, and kept in the recent history. Returns the number of
    /// members it was queued to.
    pub fn deliver(&self, name: &RoomName, epoch: &str, offset: u64, frame: Utf8Bytes) -> usize {
        let Some(room) = self.rooms.get(name).map(|r| r.clone()) else {
            return 0;
        };
        let mut state = room.state.lock();
        if state.epoch != epoch {
            state.epoch = epoch.to_owned();
            state.history.clear();
            state.detached = false;
        } else if offset <= state.offset {
            return 0;
        }
        state.offset = offset;
        // Recent history is what lets a join complete without a gap, so keep some even when
        // history is configured off.
        let keep = self.history.size.max(64);
        self.expire(&mut state);
        if state.history.len() >= keep {
            state.history.pop_front();
        }
        state.history.push_back(Stored {
            offset,
            at: Instant::now(),
            frame: frame.clone(),
        });
        let mut sent = 0;
        for member in &state.members {
            if member.floor < offset {
                member.session.push(frame.clone());
                sent += 1;
            }
        }
        sent
    }

    /// Every room here with the members it has, for re-announcing them to the broker.
    pub fn snapshot(&self) -> Vec<(RoomName, Vec<Member>)> {
        self.rooms
            .iter()
            .map(|e| (e.key().clone(), e.value().state.lock().members.clone()))
            .filter(|(_, members)| !members.is_empty())
            .collect()
    }

    /// A session on this node by id.
    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.get(id).map(|s| s.clone())
    }

    fn expire(&self, state: &mut RoomState) {
        let ttl = self.history.ttl;
        while state.history.front().is_some_and(|m| m.at.elapsed() > ttl) {
            state.history.pop_front();
        }
    }

    fn remove_if_idle(&self, name: &RoomName, room: &Arc<Room>) {
        self.rooms.remove_if(name, |_, r| {
            if !Arc::ptr_eq(r, room) {
                return false;
            }
            let mut state = r.state.lock();
            state.removed =
                state.members.is_empty() && state.history.is_empty() && state.pending == 0;
            state.removed
        });
    }

    /// Drops rooms that have had no members for longer than the history lifetime.
    pub fn sweep(&self) {
        let ttl = self.history.ttl;
        self.rooms.retain(|_, room| {
            let mut state = room.state.lock();
            self.expire(&mut state);
            let idle = state.emptied_at.is_some_and(|t| t.elapsed() > ttl);
            state.removed = state.members.is_empty()
                && state.pending == 0
                && (idle || state.history.is_empty());
            !state.removed
        });
    }
}

/// The frames after `pos` when the history holds all of them; `None` when it cannot.
fn resume(state: &RoomState, pos: &StreamPosition) -> Option<Vec<Utf8Bytes>> {
    if pos.epoch != state.epoch || pos.offset > state.offset {
        return None;
    }
    if pos.offset == state.offset {
        return Some(Vec::new());
    }
    let first = state.history.front()?.offset;
    if first > pos.offset + 1 {
        return None;
    }
    Some(
        state
            .history
            .iter()
            .filter(|m| m.offset > pos.offset)
            .map(|m| m.frame.clone())
            .collect(),
    )
}
