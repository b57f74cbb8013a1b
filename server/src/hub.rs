//! This node's sessions, indexed by id, by user and by room, and the fan-out to them.
//!
//! The hub holds no room stream of its own: the broker numbers room messages and keeps history
//! and presence. The hub queues what the broker delivers to the members here, in the broker's
//! order, and makes a join seamless: a room with a join on its way keeps what crosses the
//! broker's answer, so the joiner gets the answer, the replay, then those messages past the
//! answer's offset, and only later ones after that. Nothing missed, nothing twice.
//!
//! Each member keeps its own position (epoch, offset of the last message it got). A message
//! that does not follow it (a gap in the offsets, or another epoch: the node was cut off from
//! its broker, or the stream started over) is not delivered to it: the member waits while the
//! broker is asked for what followed its position ([`Command::CatchUp`], one per position, not
//! per member), the room keeps what crosses the answer as for a join, and the answer gives the
//! member `room_resumed` with the replay (`recovered: true`) or without (`false`), then what
//! crossed it. A client counting offsets never sees a discontinuity that a `room_resumed` did
//! not announce.
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

use crate::broker::{CatchUpAnswer, Command, JoinAnswer, PresenceChange};
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
    /// The epoch of its position.
    epoch: Arc<str>,
    /// Its position: room messages up to this offset reached it (before it became a member by
    /// the answer's offset or replay, or since); only the next one is delivered to it as is.
    floor: u64,
    /// Its stream was interrupted and a catch-up from its position is on its way: nothing is
    /// delivered to it until the answer.
    waiting: bool,
    /// Presence changes up to this sequence number are in what it was told already.
    presence_floor: u64,
    /// It takes presence as diffs.
    diff: bool,
}

#[derive(Debug, Default)]
struct RoomState {
    members: Vec<Member>,
    /// The stream position of the last message delivered here.
    epoch: Arc<str>,
    offset: u64,
    /// Messages delivered while joins were pending, for them.
    crossing: VecDeque<(u64, Utf8Bytes)>,
    /// The last presence sequence number delivered here.
    presence_seq: u64,
    /// Presence changes delivered while joins were pending: sequence, session it concerns,
    /// frame.
    crossing_presence: VecDeque<PresenceChange>,
    /// Joins and catch-ups sent to the broker and not answered yet; the room is kept meanwhile.
    pending: u32,
    /// The positions catch-ups were asked from and not answered yet.
    catching: Vec<(Arc<str>, u64)>,
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

/// What delivering a room message did.
#[derive(Debug, Default)]
pub struct Delivered {
    /// How many members it was queued to.
    pub sent: usize,
    /// Catch-ups to ask the broker for: members whose position the message does not follow.
    pub catch_up: Vec<Command>,
}

/// Whether two epochs are the same (the same allocation, usually).
fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || **a == **b
}

impl RoomState {
    /// Asks for a catch-up from each of `positions` (where members now wait) that has none on
    /// its way.
    fn ask(&mut self, room: &RoomName, positions: Vec<(Arc<str>, u64)>) -> Vec<Command> {
        let mut asked = Vec::new();
        for (epoch, after) in positions {
            if self
                .catching
                .iter()
                .any(|(e, o)| *o == after && same(e, &epoch))
            {
                continue;
            }
            self.pending += 1;
            asked.push(Command::CatchUp {
                room: room.clone(),
                epoch: epoch.to_string(),
                after,
            });
            self.catching.push((epoch, after));
        }
        asked
    }

    /// Makes every member wait, asking for catch-ups from their positions. Catch-ups already on
    /// their way are asked again: the connection that carried them may be gone with their
    /// answers (an answer that still comes completes the new one, and the later one is
    /// ignored).
    fn interrupt(&mut self, room: &RoomName) -> Vec<Command> {
        self.pending = self.pending.saturating_sub(self.catching.len() as u32);
        self.catching.clear();
        let mut positions = Vec::new();
        for member in &mut self.members {
            member.waiting = true;
            positions.push((member.epoch.clone(), member.floor));
        }
        self.ask(room, positions)
    }
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
                if *state.epoch != *answer.epoch {
                    // Members still at a position of the other stream are caught up when the
                    // next message reaches them.
                    state.epoch = Arc::from(answer.epoch.as_str());
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
                    epoch: state.epoch.clone(),
                    waiting: false,
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

    /// A room message the broker numbered, queued to the members here whose position it
    /// follows, in offset order. Members it does not follow (a gap, another epoch) wait for a
    /// catch-up, which the caller asks the broker for.
    pub fn deliver(
        &self,
        name: &RoomName,
        epoch: &str,
        offset: u64,
        frame: Utf8Bytes,
    ) -> Delivered {
        self.existing(name, |state| {
            if *state.epoch != *epoch {
                // A new stream (the room was recreated, the broker changed or failed over): its
                // offsets start over. Members at a position of the old one are caught up.
                state.epoch = Arc::from(epoch);
                state.crossing.clear();
            } else if offset <= state.offset {
                return Delivered::default();
            }
            state.offset = offset;
            let mut sent = 0;
            let mut interrupted = Vec::new();
            for member in state.members.iter_mut().filter(|m| !m.waiting) {
                if same(&member.epoch, &state.epoch) {
                    if offset <= member.floor {
                        continue;
                    }
                    if offset == member.floor + 1 {
                        member.epoch = state.epoch.clone();
                        member.floor = offset;
                        sent += usize::from(member.session.push(frame.clone()));
                        continue;
                    }
                }
                member.waiting = true;
                interrupted.push((member.epoch.clone(), member.floor));
            }
            let catch_up = if interrupted.is_empty() {
                Vec::new()
            } else {
                state.ask(name, interrupted)
            };
            // Kept for joins and catch-ups on their way (this one's included).
            if state.pending > 0 {
                if state.crossing.len() >= CROSSING {
                    state.crossing.pop_front();
                }
                state.crossing.push_back((offset, frame));
            }
            Delivered { sent, catch_up }
        })
        .unwrap_or_default()
    }

    /// Every member here waits for a catch-up from its position: the node was cut off from the
    /// cluster, which numbered messages meanwhile. Returns the catch-ups to ask the broker for.
    pub fn interrupt_all(&self) -> Vec<Command> {
        let names: Vec<RoomName> = self.rooms.iter().map(|e| e.key().clone()).collect();
        names
            .iter()
            .flat_map(|name| self.existing(name, |state| state.interrupt(name)))
            .flatten()
            .collect()
    }

    /// Completes a catch-up with the broker's answer: each member waiting at the asked position
    /// gets `room_resumed` (`resumed(epoch, offset, recovered)`), the replay when recovered,
    /// then what this node received after that, in order, and takes live messages again.
    /// Returns how many frames were queued and the catch-ups to ask for again (what crossed
    /// the answer has a gap of its own).
    pub fn complete_catch_up(
        &self,
        answer: &CatchUpAnswer,
        resumed: impl FnOnce(&str, u64, bool) -> Utf8Bytes,
    ) -> (usize, Vec<Command>) {
        let name = &answer.room;
        let outcome = self.existing(name, |state| {
            let (asked_epoch, asked_after) = (&answer.asked.0, answer.asked.1);
            let Some(index) = state
                .catching
                .iter()
                .position(|(e, o)| *o == asked_after && **e == **asked_epoch)
            else {
                return (0, Vec::new());
            };
            state.catching.swap_remove(index);
            state.pending = state.pending.saturating_sub(1);
            if *state.epoch != *answer.epoch {
                // Nothing of the answer's stream reached this node since it was asked (or the
                // stream changed again): the members take the answer's position, and a message
                // of another stream is caught up again.
                state.epoch = Arc::from(answer.epoch.as_str());
                state.offset = answer.offset;
                state.crossing.clear();
            }
            // What the members have of the answer's stream (nothing, when it is another one).
            let had = if *answer.epoch == **asked_epoch {
                asked_after
            } else {
                0
            };
            // The members' position: the answer's, or, with nothing replayed, just before the
            // first message that crossed the answer and that they lack, when that reaches back
            // to the answer (those messages are theirs; the ones before it are lost).
            let mut position = answer.offset.max(had);
            if !answer.recovered {
                let first = state.crossing.iter().map(|(o, _)| *o).find(|o| *o > had);
                if let Some(first) = first.filter(|f| *f <= answer.offset + 1) {
                    position = first - 1;
                }
            }
            let mut frames = vec![resumed(&answer.epoch, position, answer.recovered)];
            if answer.recovered {
                frames.extend(answer.replay.iter().cloned());
            }
            let mut last = position;
            for (offset, frame) in &state.crossing {
                if *offset <= last {
                    continue;
                }
                if *offset != last + 1 {
                    break;
                }
                frames.push(frame.clone());
                last = *offset;
            }
            // What crossed the answer stops short of the latest message here: ask again from
            // where the members are now.
            let short = state.offset > last;
            let epoch = state.epoch.clone();
            let mut queued = 0;
            let mut again = Vec::new();
            for member in state
                .members
                .iter_mut()
                .filter(|m| m.waiting && m.floor == asked_after && *m.epoch == **asked_epoch)
            {
                for frame in &frames {
                    queued += usize::from(member.session.push(frame.clone()));
                }
                member.epoch = epoch.clone();
                member.floor = last;
                member.waiting = short;
                if short && again.is_empty() {
                    again.push((epoch.clone(), last));
                }
            }
            let again = state.ask(name, again);
            if state.pending == 0 {
                state.crossing = VecDeque::new();
                state.crossing_presence = VecDeque::new();
            }
            (queued, again)
        });
        self.remove_if_idle(name);
        outcome.unwrap_or_default()
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
        assert_eq!(hub.deliver(&room, "e1", 1, frame("m1")).sent, 2);
        assert_eq!(hub.deliver(&room, "e1", 2, frame("m2")).sent, 2);
        // A repeat of an offset already delivered is dropped.
        assert_eq!(hub.deliver(&room, "e1", 2, frame("m2")).sent, 0);
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

    /// The catch-ups a delivery asked for, as (epoch, after).
    fn asked(commands: &[Command]) -> Vec<(String, u64)> {
        commands
            .iter()
            .map(|c| match c {
                Command::CatchUp { epoch, after, .. } => (epoch.clone(), *after),
                other => panic!("not a catch-up: {other:?}"),
            })
            .collect()
    }

    fn caught_up(
        asked: (&str, u64),
        epoch: &str,
        offset: u64,
        recovered: bool,
        replay: &[&str],
    ) -> CatchUpAnswer {
        CatchUpAnswer {
            room: "r".into(),
            asked: (asked.0.to_owned(), asked.1),
            epoch: epoch.into(),
            offset,
            recovered,
            replay: replay.iter().map(|s| frame(s)).collect(),
        }
    }

    fn resumed(epoch: &str, offset: u64, recovered: bool) -> Utf8Bytes {
        frame(&format!("resumed {epoch} {offset} {recovered}"))
    }

    #[test]
    fn a_new_epoch_makes_members_catch_up_before_its_messages() {
        let hub = Hub::new();
        let (a, mut ao) = session("a");
        join(&hub, &a, &answer("a", 10, &[], 1));
        let room = RoomName::from("r");
        hub.deliver(&room, "e1", 11, frame("m11"));
        // The broker's stream started over (a new epoch): offset 1 is not delivered as if it
        // followed 11; the member waits for a catch-up from where it is.
        let d = hub.deliver(&room, "e2", 1, frame("n1"));
        assert_eq!(d.sent, 0);
        assert_eq!(asked(&d.catch_up), [("e1".to_owned(), 11)]);
        let d = hub.deliver(&room, "e2", 2, frame("n2"));
        assert!(d.catch_up.is_empty(), "one catch-up per position");
        let (queued, again) =
            hub.complete_catch_up(&caught_up(("e1", 11), "e2", 2, false, &[]), resumed);
        assert!(again.is_empty());
        assert_eq!(queued, 3);
        hub.deliver(&room, "e2", 3, frame("n3"));
        // What crossed the answer reaches back to its position: the member's position is just
        // before it, and nothing of the new stream is lost.
        assert_eq!(
            drain(&mut ao),
            ["joined", "m11", "resumed e2 0 false", "n1", "n2", "n3"]
        );
    }

    #[test]
    fn a_gap_is_filled_by_the_catch_up_replay_then_what_crossed_it_once() {
        let (hub, (_a, mut ao), (_b, mut bo)) = two_members();
        let room = RoomName::from("r");
        hub.deliver(&room, "e1", 1, frame("m1"));
        // 2..4 never reached this node (it was cut off); 5 and 6 arrive live.
        let d = hub.deliver(&room, "e1", 5, frame("m5"));
        assert_eq!(d.sent, 0);
        assert_eq!(asked(&d.catch_up), [("e1".to_owned(), 1)], "one for both");
        hub.deliver(&room, "e1", 6, frame("m6"));
        // The broker ran the catch-up when the stream was at 5; 6 crossed its answer.
        let (_, again) = hub.complete_catch_up(
            &caught_up(("e1", 1), "e1", 5, true, &["m2", "m3", "m4", "m5"]),
            resumed,
        );
        assert!(again.is_empty());
        // Repeats of what the replay and the crossing brought are dropped; 7 is live.
        hub.deliver(&room, "e1", 6, frame("m6"));
        hub.deliver(&room, "e1", 7, frame("m7"));
        let expected = [
            "joined",
            "m1",
            "resumed e1 5 true",
            "m2",
            "m3",
            "m4",
            "m5",
            "m6",
            "m7",
        ];
        assert_eq!(drain(&mut ao), expected);
        assert_eq!(drain(&mut bo), expected);
        // A second answer for the same position (none is on its way) changes nothing.
        let (queued, _) = hub.complete_catch_up(&caught_up(("e1", 1), "e1", 7, true, &[]), resumed);
        assert_eq!(queued, 0);
    }

    #[test]
    fn a_catch_up_answered_before_the_live_messages_arrive_takes_them_after() {
        let (hub, (_a, mut ao), _b) = two_members();
        let room = RoomName::from("r");
        // The node reconnected: every member waits for a catch-up from where it is.
        assert_eq!(asked(&hub.interrupt_all()), [("e1".to_owned(), 0)]);
        // Reconnected again before the answer: asked again (the first may be lost), once.
        assert_eq!(asked(&hub.interrupt_all()), [("e1".to_owned(), 0)]);
        // The stream is at 3 (all replayed); 2 and 3 are still in flight to this node.
        let answer = caught_up(("e1", 0), "e1", 3, true, &["m1", "m2", "m3"]);
        hub.complete_catch_up(&answer, resumed);
        // The other answer to the same position finds nobody waiting.
        assert_eq!(hub.complete_catch_up(&answer, resumed).0, 0);
        for (o, f) in [(2, "m2"), (3, "m3"), (4, "m4")] {
            assert!(hub.deliver(&room, "e1", o, frame(f)).catch_up.is_empty());
        }
        assert_eq!(
            drain(&mut ao),
            ["joined", "resumed e1 3 true", "m1", "m2", "m3", "m4"]
        );
    }

    #[test]
    fn a_catch_up_whose_crossing_has_a_gap_asks_again() {
        let (hub, (_a, mut ao), _b) = two_members();
        let room = RoomName::from("r");
        let d = hub.deliver(&room, "e1", 3, frame("m3"));
        assert_eq!(asked(&d.catch_up), [("e1".to_owned(), 0)]);
        hub.deliver(&room, "e1", 4, frame("m4"));
        // Cut off again: 5 is missing from what crossed.
        hub.deliver(&room, "e1", 6, frame("m6"));
        let (_, again) = hub.complete_catch_up(
            &caught_up(("e1", 0), "e1", 3, true, &["m1", "m2", "m3"]),
            resumed,
        );
        assert_eq!(asked(&again), [("e1".to_owned(), 4)]);
        assert!(hub.deliver(&room, "e1", 7, frame("m7")).catch_up.is_empty());
        hub.complete_catch_up(
            &caught_up(("e1", 4), "e1", 7, true, &["m5", "m6", "m7"]),
            resumed,
        );
        assert_eq!(
            drain(&mut ao),
            [
                "joined",
                "resumed e1 3 true",
                "m1",
                "m2",
                "m3",
                "m4",
                "resumed e1 7 true",
                "m5",
                "m6",
                "m7"
            ]
        );
    }

    #[test]
    fn messages_lost_to_trimmed_history_are_announced_and_none_comes_twice() {
        let hub = Hub::new();
        let room = RoomName::from("r");
        let (a, mut ao) = session("a");
        join(&hub, &a, &answer("a", 3, &[], 1));
        // A join on its way keeps 4 and 5 (which a got) as crossing; then 6 and 7 never arrive.
        hub.prepare_join(&room);
        hub.deliver(&room, "e1", 4, frame("m4"));
        hub.deliver(&room, "e1", 5, frame("m5"));
        let d = hub.deliver(&room, "e1", 8, frame("m8"));
        assert_eq!(asked(&d.catch_up), [("e1".to_owned(), 5)]);
        // History no longer holds 6: nothing replayed. a lost 6 and 7, and gets 8 once.
        let (_, again) = hub.complete_catch_up(&caught_up(("e1", 5), "e1", 8, false, &[]), resumed);
        assert!(again.is_empty());
        hub.deliver(&room, "e1", 9, frame("m9"));
        assert_eq!(
            drain(&mut ao),
            ["joined", "m4", "m5", "resumed e1 7 false", "m8", "m9"]
        );
    }

    #[test]
    fn a_member_that_left_while_waiting_is_not_resumed_and_the_room_goes() {
        let hub = Hub::new();
        let (a, mut ao) = session("a");
        join(&hub, &a, &answer("a", 0, &[], 1));
        let room = RoomName::from("r");
        hub.deliver(&room, "e1", 2, frame("m2"));
        hub.leave(&room, &a);
        assert_eq!(hub.room_count(), 1, "kept until the catch-up is answered");
        let (queued, _) =
            hub.complete_catch_up(&caught_up(("e1", 0), "e1", 2, false, &[]), resumed);
        assert_eq!(queued, 0);
        assert_eq!(hub.room_count(), 0);
        assert_eq!(drain(&mut ao), ["joined"]);
    }
}
