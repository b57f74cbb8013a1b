//! This node's sessions, indexed by id, by user and by room, and the fan-out to them.
//!
//! The hub holds no room stream of its own: the broker numbers room messages and keeps history
//! and presence. The hub queues what the broker delivers to the members here, in the broker's
//! order, and makes a join seamless: a room with a join on its way keeps what crosses the
//! broker's answer, so the joiner gets the answer, the replay, then those messages past the
//! answer's offset, and only later ones after that. Nothing missed, nothing twice.
//!
//! Rooms live in a sharded map; each room has its own lock, held only while its members change
//! and while encoded frames are pushed onto member queues (which never blocks). No lock here is
//! held across an `.await` or a socket write, and the map's shard lock is never taken while a
//! room lock is held. Layer 3.

use std::collections::VecDeque;
use std::sync::Arc;

use dashmap::DashMap;
use herald_protocol::{RoomName, User};
use parking_lot::Mutex;

use crate::broker::{JoinAnswer, PresenceChange};
use crate::session::Session;
use crate::wire::Utf8Bytes;

/// Room messages kept while a join is on its way (the broker's answer and the messages that
/// crossed it meet here). A join that waits longer than this many messages is still correct:
/// the answer's own replay covers up to its offset, and these cover what followed.
const CROSSING: usize = 4096;

/// A member of a room: one session and the user it joined as.
#[derive(Debug, Clone)]
pub struct Member {
    /// The member's session.
    pub session: Arc<Session>,
    /// The user it joined as.
    pub user: User,
    /// Room messages up to this offset reached it before it became a member (by the answer's
    /// offset or replay); only later ones are delivered.
    floor: u64,
    /// Presence changes up to this sequence number are in what it was told already.
    presence_floor: u64,
    /// It takes presence as diffs.
    diff: bool,
}

#[derive(Debug, Default)]
struct RoomState {
    members: Vec<Member>,
    /// The stream position of the last message delivered here.
    epoch: String,
    offset: u64,
    /// Messages delivered while joins were pending, for them.
    crossing: VecDeque<(u64, Utf8Bytes)>,
    /// The last presence sequence number delivered here.
    presence_seq: u64,
    /// Presence changes delivered while joins were pending: sequence, session it concerns,
    /// frame.
    crossing_presence: VecDeque<PresenceChange>,
    /// Joins sent to the broker and not answered yet; the room is kept meanwhile.
    pending: u32,
    /// Dropped from the map; a late caller must look it up again.
    removed: bool,
}

/// One room's members here.
#[derive(Debug, Default)]
pub struct Room {
    state: Mutex<RoomState>,
}

/// This node's sessions by room, by user and by id.
#[derive(Default)]
pub struct Hub {
    /// Keyed with aHash (randomly seeded, so room names cannot be chosen to collide): a room is
    /// looked up on every delivery, and SipHash cost more than the rest of the lookup.
    rooms: DashMap<RoomName, Arc<Room>, ahash::RandomState>,
    users: DashMap<String, Vec<Arc<Session>>>,
    sessions: DashMap<Arc<str>, Arc<Session>>,
}

/// Pushes to a member unless it is `except`; returns 1 when pushed.
fn push_to(member: &Member, except: Option<&str>, frame: &Utf8Bytes) -> usize {
    if except.is_some_and(|e| *member.session.id == *e) {
        return 0;
    }
    usize::from(member.session.push(frame.clone()))
}

/// The frame of a presence change this member takes, if any.
fn presence_frame(change: &PresenceChange, diff: bool) -> Option<&Utf8Bytes> {
    if diff {
        Some(&change.diff)
    } else {
        change.full.as_ref()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
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

    /// How many rooms have members (or joins on their way) here.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// A session on this node by id.
    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.get(id).map(|s| s.clone())
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

    /// Runs `f` under the room's lock, creating the room when missing.
    fn with_room<R>(&self, name: &RoomName, f: impl FnOnce(&mut RoomState) -> R) -> R {
        loop {
            let room = match self.rooms.get(name) {
                Some(room) => room.clone(),
                None => self.rooms.entry(name.clone()).or_default().clone(),
            };
            let mut state = room.state.lock();
            if state.removed {
                continue;
            }
            return f(&mut state);
        }
    }

    /// Runs `f` under the room's lock when the room exists here.
    fn existing<R>(&self, name: &RoomName, f: impl FnOnce(&mut RoomState) -> R) -> Option<R> {
        let room = self.rooms.get(name)?.clone();
        let mut state = room.state.lock();
        (!state.removed).then(|| f(&mut state))
    }

    /// Drops the room when nothing is left in it.
    fn remove_if_idle(&self, name: &RoomName) {
        self.rooms.remove_if(name, |_, room| {
            let mut state = room.state.lock();
            state.removed = state.members.is_empty() && state.pending == 0;
            state.removed
        });
    }

    /// Marks a join on its way to the broker: from now until its answer, what the room
    /// receives is kept for the joiner.
    pub fn prepare_join(&self, name: &RoomName) {
        self.with_room(name, |state| state.pending += 1);
    }

    /// Completes a join with the broker's answer: queues `room_joined` and the replay, then
    /// what this node received after the answer's position, and adds the member so that only
    /// later messages reach it. Returns false (and adds nothing) when `still_wanted` says the
    /// session left or closed meanwhile.
    pub fn complete_join(
        &self,
        session: &Arc<Session>,
        answer: &JoinAnswer,
        room_joined: Utf8Bytes,
        still_wanted: impl FnOnce() -> bool,
    ) -> bool {
        let added = self.with_room(&answer.room, |state| {
            state.pending = state.pending.saturating_sub(1);
            let wanted = still_wanted();
            if wanted {
                if state.epoch != answer.epoch {
                    state.epoch = answer.epoch.clone();
                    state.offset = answer.offset;
                    state.crossing.clear();
                }
                session.push(room_joined);
                for frame in &answer.replay {
                    session.push(frame.clone());
                }
                for (_, frame) in state.crossing.iter().filter(|(o, _)| *o > answer.offset) {
                    session.push(frame.clone());
                }
                let diff = session.state.lock().presence_diff;
                for change in state.crossing_presence.iter().filter(|c| {
                    c.seq > answer.presence_seq && c.except.as_deref() != Some(&*session.id)
                }) {
                    if let Some(frame) = presence_frame(change, diff) {
                        session.push(frame.clone());
                    }
                }
                state.members.push(Member {
                    session: session.clone(),
                    user: answer.user.clone(),
                    floor: state.offset.max(answer.offset),
                    presence_floor: state.presence_seq.max(answer.presence_seq),
                    diff,
                });
            }
            if state.pending == 0 {
                state.crossing = VecDeque::new();
                state.crossing_presence = VecDeque::new();
            }
            wanted
        });
        if !added {
            self.remove_if_idle(&answer.room);
        }
        added
    }

    /// A join marked by [`Hub::prepare_join`] will not complete (its session closed).
    pub fn abandon_join(&self, name: &RoomName) {
        self.existing(name, |state| {
            state.pending = state.pending.saturating_sub(1);
            if state.pending == 0 {
                state.crossing = VecDeque::new();
                state.crossing_presence = VecDeque::new();
            }
        });
        self.remove_if_idle(name);
    }

    /// Removes a session from a room; the user it was there as, or `None` when it was not a
    /// member here.
    pub fn leave(&self, name: &RoomName, session: &Arc<Session>) -> Option<User> {
        let left = self.existing(name, |state| {
            let index = state
                .members
                .iter()
                .position(|m| Arc::ptr_eq(&m.session, session))?;
            Some(state.members.remove(index).user)
        })??;
        self.remove_if_idle(name);
        Some(left)
    }

    /// A room message the broker numbered, queued to the members here that have not had it, in
    /// offset order. Returns how many it was queued to.
    pub fn deliver(&self, name: &RoomName, epoch: &str, offset: u64, frame: Utf8Bytes) -> usize {
        self.existing(name, |state| {
            if state.epoch != epoch {
                // A new stream (the room was recreated, or the broker changed): its offsets
                // start over, for every member.
                state.epoch = epoch.to_owned();
                state.crossing.clear();
                for member in &mut state.members {
                    member.floor = 0;
                }
            } else if offset <= state.offset {
                return 0;
            }
            state.offset = offset;
            if state.pending > 0 {
                if state.crossing.len() >= CROSSING {
                    state.crossing.pop_front();
                }
                state.crossing.push_back((offset, frame.clone()));
            }
            let mut sent = 0;
            for member in &state.members {
                if member.floor < offset {
                    sent += usize::from(member.session.push(frame.clone()));
                }
            }
            sent
        })
        .unwrap_or(0)
    }

    /// A membership change, queued to the members here that were not told of it yet (all but
    /// the session it concerns). Returns how many it was queued to.
    pub fn presence(&self, change: &PresenceChange) -> usize {
        self.existing(&change.room, |state| {
            state.presence_seq = state.presence_seq.max(change.seq);
            if state.pending > 0 {
                if state.crossing_presence.len() >= CROSSING {
                    state.crossing_presence.pop_front();
                }
                state.crossing_presence.push_back(change.clone());
            }
            let except = change.except.as_deref();
            state
                .members
                .iter()
                .filter(|m| change.seq == 0 || m.presence_floor < change.seq)
                .filter_map(|m| Some(push_to(m, except, presence_frame(change, m.diff)?)))
                .sum()
        })
        .unwrap_or(0)
    }

    /// The broker's presence numbering starts over (it lost its state, or another broker took
    /// over): every member here takes the next changes.
    pub fn reset_presence(&self) {
        for room in self.rooms.iter() {
            let mut state = room.state.lock();
            state.presence_seq = 0;
            for member in &mut state.members {
                member.presence_floor = 0;
            }
        }
    }

    /// Queues a frame to every member here except the session `except` (not part of the
    /// room's stream). Returns how many it was queued to.
    pub fn broadcast_volatile(
        &self,
        name: &RoomName,
        frame: &Utf8Bytes,
        except: Option<&str>,
    ) -> usize {
        self.existing(name, |state| {
            state
                .members
                .iter()
                .map(|m| push_to(m, except, frame))
                .sum()
        })
        .unwrap_or(0)
    }

    /// Every room here with its members, for re-announcing them to the broker.
    pub fn snapshot(&self) -> Vec<(RoomName, Vec<Member>)> {
        self.rooms
            .iter()
            .map(|e| (e.key().clone(), e.value().state.lock().members.clone()))
            .filter(|(_, members)| !members.is_empty())
            .collect()
    }

    /// Drops rooms with no member and no join on its way.
    pub fn sweep(&self) {
        self.rooms.retain(|_, room| {
            let mut state = room.state.lock();
            state.removed = state.members.is_empty() && state.pending == 0;
            !state.removed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Outbound, Outbox, QueueLimits};
    use crate::wire::Transport;
    use std::time::Duration;

    fn session(id: &str) -> (Arc<Session>, Outbox) {
        Session::new(
            id.into(),
            Transport::WebSocket,
            QueueLimits {
                soft: 1 << 20,
                hard: 1 << 24,
                grace: Duration::from_secs(10),
            },
        )
    }

    fn drain(outbox: &mut Outbox) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(item) = outbox.try_recv() {
            if let Outbound::Frame(f) = item {
                out.push(f.as_str().to_owned());
            }
        }
        out
    }

    fn answer(id: &str, offset: u64, replay: &[&str], presence_seq: u64) -> JoinAnswer {
        JoinAnswer {
            session: id.into(),
            room: "r".into(),
            user: User::from(id),
            users: vec![User::from(id)],
            epoch: "e1".into(),
            offset,
            recovered: None,
            replay: replay
                .iter()
                .map(|s| Utf8Bytes::from(s.to_string()))
                .collect(),
            presence_seq,
        }
    }

    fn frame(s: &str) -> Utf8Bytes {
        Utf8Bytes::from(s.to_owned())
    }

    fn join(hub: &Hub, s: &Arc<Session>, a: &JoinAnswer) {
        hub.prepare_join(&a.room);
        assert!(hub.complete_join(s, a, frame("joined"), || true));
    }

    type Connected = (Arc<Session>, Outbox);

    /// A hub with members a and b in room r.
    fn two_members() -> (Hub, Connected, Connected) {
        let hub = Hub::new();
        let (a, ao) = session("a");
        let (b, bo) = session("b");
        join(&hub, &a, &answer("a", 0, &[], 1));
        join(&hub, &b, &answer("b", 0, &[], 2));
        (hub, (a, ao), (b, bo))
    }

    #[test]
    fn members_get_room_messages_in_order_once() {
        let (hub, (_a, mut ao), (_b, mut bo)) = two_members();
        let room = RoomName::from("r");
        assert_eq!(hub.deliver(&room, "e1", 1, frame("m1")), 2);
        assert_eq!(hub.deliver(&room, "e1", 2, frame("m2")), 2);
        // A repeat of an offset already delivered is dropped.
        assert_eq!(hub.deliver(&room, "e1", 2, frame("m2")), 0);
        assert_eq!(drain(&mut ao), ["joined", "m1", "m2"]);
        assert_eq!(drain(&mut bo), ["joined", "m1", "m2"]);
    }

    #[test]
    fn messages_crossing_a_join_answer_reach_the_joiner_once() {
        let hub = Hub::new();
        let room = RoomName::from("r");
        let (a, mut ao) = session("a");
        hub.prepare_join(&room);
        // The broker ran the join at offset 5 (replaying 4 and 5), then 6 and 7 were published
        // and arrived here before the answer did.
        hub.deliver(&room, "e1", 6, frame("m6"));
        hub.deliver(&room, "e1", 7, frame("m7"));
        assert!(hub.complete_join(
            &a,
            &answer("a", 5, &["m4", "m5"], 1),
            frame("joined"),
            || true
        ));
        hub.deliver(&room, "e1", 7, frame("m7"));
        hub.deliver(&room, "e1", 8, frame("m8"));
        assert_eq!(drain(&mut ao), ["joined", "m4", "m5", "m6", "m7", "m8"]);
    }

    #[test]
    fn presence_crossing_a_join_answer_reaches_the_joiner_once() {
        let hub = Hub::new();
        let room = RoomName::from("r");
        let (a, mut ao) = session("a");
        let (b, mut bo) = session("b");
        join(&hub, &a, &answer("a", 0, &[], 1));
        hub.prepare_join(&room);
        // b's join ran as presence change 2; c's (3) arrives before b's answer, then b's own.
        let change = |seq, except: &str, text: &str| PresenceChange {
            room: room.clone(),
            seq,
            except: Some(except.into()),
            full: Some(frame(text)),
            diff: frame(&format!("diff: {text}")),
        };
        hub.presence(&change(3, "c", "c joined"));
        assert!(hub.complete_join(&b, &answer("b", 0, &[], 2), frame("joined"), || true));
        hub.presence(&change(2, "b", "b joined"));
        hub.presence(&change(4, "a", "a left"));
        assert_eq!(drain(&mut ao), ["joined", "c joined", "b joined"]);
        assert_eq!(drain(&mut bo), ["joined", "c joined", "a left"]);
    }

    #[test]
    fn a_join_whose_session_left_meanwhile_adds_nothing() {
        let hub = Hub::new();
        let (a, mut ao) = session("a");
        hub.prepare_join(&RoomName::from("r"));
        assert!(!hub.complete_join(&a, &answer("a", 0, &[], 1), frame("joined"), || false));
        assert_eq!(
            hub.room_count(),
            0,
            "an empty room with no join pending is dropped"
        );
        assert!(drain(&mut ao).is_empty());
    }

    #[test]
    fn volatile_frames_skip_the_sender_and_leavers() {
        let (hub, (a, mut ao), (b, mut bo)) = two_members();
        let room = RoomName::from("r");
        assert_eq!(
            hub.broadcast_volatile(&room, &frame("typing"), Some("a")),
            1
        );
        assert_eq!(hub.leave(&room, &b), Some(User::from("b")));
        assert_eq!(hub.leave(&room, &b), None);
        assert_eq!(hub.broadcast_volatile(&room, &frame("x"), None), 1);
        assert_eq!(drain(&mut ao), ["joined", "x"]);
        assert_eq!(drain(&mut bo), ["joined", "typing"]);
        hub.leave(&room, &a);
        assert_eq!(hub.room_count(), 0);
    }

    #[test]
    fn a_new_epoch_resets_the_room_position() {
        let hub = Hub::new();
        let (a, mut ao) = session("a");
        join(&hub, &a, &answer("a", 10, &[], 1));
        let room = RoomName::from("r");
        hub.deliver(&room, "e1", 11, frame("m11"));
        // The broker's stream started over (a new epoch): offset 1 is new, not a repeat.
        hub.deliver(&room, "e2", 1, frame("n1"));
        assert_eq!(drain(&mut ao), ["joined", "m11", "n1"]);
    }
}
