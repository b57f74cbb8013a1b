//! The in-memory broker: one process, and the fallback of a cluster node whose Redis is away.
//!
//! It is the authority for each room's stream (epoch, offsets, history) and presence (members in
//! join order, a presence sequence), and the SSE event ids. Every command on a room runs under
//! that room's lock, and its outcome is delivered to the node's [`BrokerEvents`] under the same
//! lock, so every member sees one order. Layer 4.

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use herald_protocol::{RoomName, StreamPosition, User};
use parking_lot::Mutex;

use super::{
    presence_frames, Broker, BrokerEvents, CatchUpAnswer, Command, Health, JoinAnswer, LocalState,
    PresenceChange, SessionId,
};
use crate::history::History;
use crate::ids::new_epoch;
use crate::wire::{with_offset, Transport, Utf8Bytes};

/// How long history lives and how much of it a room keeps.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Messages kept per room.
    pub size: usize,
    /// How long a message is kept.
    pub ttl: Duration,
}

struct RoomStream {
    epoch: String,
    offset: u64,
    history: History<Utf8Bytes>,
    /// Members in join order: session and user.
    members: Vec<(SessionId, User)>,
    presence_seq: u64,
    emptied_at: Option<Instant>,
    /// Dropped from the map; a command that raced the removal looks the room up again.
    removed: bool,
}

/// The in-memory broker.
pub struct Memory {
    events: OnceLock<Weak<dyn BrokerEvents>>,
    /// Keyed with aHash, as the hub's rooms are (randomly seeded; cheaper than SipHash).
    rooms: DashMap<RoomName, Arc<Mutex<RoomStream>>, ahash::RandomState>,
    limits: HistoryLimits,
    full_list_max: usize,
    /// Capability `documents`.
    docs: crate::broker::memory_docs::MemoryDocs,
}

impl Memory {
    /// A broker with the configuration's history and full-list settings.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Memory::new(
            HistoryLimits {
                size: config.history_size,
                ttl: config.history_ttl,
            },
            config.presence_full_list_max,
        )
    }

    /// A broker keeping room history within `limits`, whose presence changes carry whole
    /// member lists in rooms of at most `full_list_max` members.
    pub fn new(limits: HistoryLimits, full_list_max: usize) -> Self {
        Memory {
            events: OnceLock::new(),
            rooms: DashMap::default(),
            limits,
            full_list_max,
            docs: crate::broker::memory_docs::MemoryDocs::new(),
        }
    }

    fn events(&self) -> Option<Arc<dyn BrokerEvents>> {
        self.events.get()?.upgrade()
    }

    fn new_room(&self) -> Arc<Mutex<RoomStream>> {
        Arc::new(Mutex::new(RoomStream {
            epoch: new_epoch(),
            offset: 0,
            history: History::new(self.limits.size, self.limits.ttl),
            members: Vec::new(),
            presence_seq: 0,
            emptied_at: None,
            removed: false,
        }))
    }

    /// Runs `f` on the room's stream under its lock (creating the room when `create`).
    fn with_room<R>(
        &self,
        name: &RoomName,
        create: bool,
        f: impl FnOnce(&mut RoomStream) -> R,
    ) -> Option<R> {
        loop {
            let room = match self.rooms.get(name) {
                Some(room) => room.clone(),
                None if create => self
                    .rooms
                    .entry(name.clone())
                    .or_insert_with(|| self.new_room())
                    .clone(),
                None => return None,
            };
            let mut state = room.lock();
            // A room removed between lookup and lock is stale. (The map's shard lock is never
            // taken while a room lock is held, so this cannot deadlock.)
            if state.removed {
                continue;
            }
            let result = f(&mut state);
            let idle = state.members.is_empty() && state.history.is_empty();
            drop(state);
            if idle {
                self.remove_if_idle(name, &room);
            }
            return Some(result);
        }
    }

    fn remove_if_idle(&self, name: &RoomName, room: &Arc<Mutex<RoomStream>>) {
        self.rooms.remove_if(name, |_, r| {
            if !Arc::ptr_eq(r, room) {
                return false;
            }
            let mut state = r.lock();
            state.removed = state.members.is_empty() && state.history.is_empty();
            state.removed
        });
    }

    /// Forgets every room (a cluster node going back to its broker, or leaving it): streams
    /// started afterwards get new epochs, so their offsets are never mistaken for others'.
    pub fn reset(&self) {
        self.rooms.retain(|_, room| {
            room.lock().removed = true;
            false
        });
    }

    /// Forgets every room, then takes this node's members as the rooms' presence (a cluster
    /// node that lost its broker serves its own members alone).
    pub fn seed(&self, state: &LocalState) {
        self.reset();
        for (room, session, user) in &state.members {
            self.with_room(room, true, |s| {
                s.members.push((session.clone(), user.clone()));
            });
        }
    }

    fn join(
        &self,
        events: &dyn BrokerEvents,
        session: SessionId,
        room: RoomName,
        user: User,
        since: Option<StreamPosition>,
    ) {
        let name = room.clone();
        self.with_room(&name, true, |s| {
            s.history.expire();
            match s.members.iter_mut().find(|(id, _)| *id == session) {
                Some((_, existing)) => *existing = user.clone(),
                None => s.members.push((session.clone(), user.clone())),
            }
            s.emptied_at = None;
            s.presence_seq += 1;
            let users: Vec<User> = s.members.iter().map(|(_, u)| u.clone()).collect();
            let replay = since.as_ref().and_then(|pos| {
                (pos.epoch == s.epoch)
                    .then(|| s.history.complete_after(pos.offset, s.offset))
                    .flatten()
            });
            let (full, diff) =
                presence_frames(&room, &user, Some(&users), users.len(), self.full_list_max);
            events.joined(JoinAnswer {
                session: session.clone(),
                room: room.clone(),
                user,
                users,
                epoch: s.epoch.clone(),
                offset: s.offset,
                recovered: since.as_ref().map(|_| replay.is_some()),
                replay: replay.unwrap_or_default(),
                presence_seq: s.presence_seq,
            });
            events.presence(PresenceChange {
                room,
                seq: s.presence_seq,
                except: Some(session),
                full,
                diff,
            });
        });
    }

    fn leave(&self, events: &dyn BrokerEvents, session: SessionId, room: RoomName, user: User) {
        let name = room.clone();
        self.with_room(&name, false, |s| {
            let Some(index) = s.members.iter().position(|(id, _)| *id == session) else {
                return;
            };
            s.members.remove(index);
            if s.members.is_empty() {
                s.emptied_at = Some(Instant::now());
            }
            s.presence_seq += 1;
            let (full, diff) =
                presence_frames(&room, &user, None, s.members.len(), self.full_list_max);
            events.presence(PresenceChange {
                seq: s.presence_seq,
                except: Some(session),
                full,
                diff,
                room,
            });
        });
    }

    /// Delivers under the room's lock when the target is a member, so a frame never overtakes
    /// the target's leave (or the sender's, for its own later frames).
    fn direct(
        &self,
        events: &dyn BrokerEvents,
        from: &str,
        room: &RoomName,
        target: &str,
        frame: &Utf8Bytes,
    ) {
        let delivered = self
            .with_room(room, false, |s| {
                s.members.iter().any(|(id, _)| **id == *target)
                    && events.direct(room, target, frame)
            })
            .unwrap_or(false);
        if !delivered {
            events.peer_unreachable(from, room, target);
        }
    }

    /// Answers where the room's stream is and, when `after` in `epoch` is still in history,
    /// everything after it (a room this broker does not hold starts a new stream).
    fn catch_up(&self, events: &dyn BrokerEvents, room: RoomName, epoch: String, after: u64) {
        let name = room.clone();
        self.with_room(&name, true, |s| {
            s.history.expire();
            let replay = (epoch == s.epoch)
                .then(|| s.history.complete_after(after, s.offset))
                .flatten();
            events.caught_up(CatchUpAnswer {
                room,
                asked: (epoch, after),
                epoch: s.epoch.clone(),
                offset: s.offset,
                recovered: replay.is_some(),
                replay: replay.unwrap_or_default(),
            });
        });
    }

    fn publish(&self, events: &dyn BrokerEvents, room: RoomName, prefix: &str) {
        self.with_room(&room, true, |s| {
            s.offset += 1;
            let frame = with_offset(prefix, s.offset);
            s.history.push(s.offset, frame.clone());
            events.room_message(&room, &s.epoch, s.offset, frame);
        });
    }
}

impl Broker for Memory {
    fn attach(&self, events: Weak<dyn BrokerEvents>) {
        let _ = self.events.set(events);
    }

    fn submit(&self, command: Command) {
        let Some(events) = self.events() else { return };
        let events = &*events;
        match command {
            Command::Join {
                session,
                room,
                user,
                since,
            } => self.join(events, session, room, user, since),
            Command::Leave {
                session,
                room,
                user,
            } => self.leave(events, session, room, user),
            Command::Publish { room, prefix, .. } => self.publish(events, room, &prefix),
            Command::Members { session, room } => {
                let users = self
                    .with_room(&room, false, |s| {
                        s.members.iter().map(|(_, u)| u.clone()).collect()
                    })
                    .unwrap_or_default();
                events.members(&session, &room, users);
            }
            Command::Volatile {
                room,
                except,
                frame,
            } => events.room_volatile(&room, except.as_deref(), &frame),
            Command::Private {
                from,
                target,
                frame,
            } => {
                if events.private(&target, &frame) == 0 {
                    events.undeliverable(&from, &target);
                }
            }
            Command::Event(event) => events.event(None, &event),
            Command::Ordered { capability, body } => events.ordered(&capability, &body),
            Command::Direct {
                from,
                room,
                target,
                frame,
            } => self.direct(events, &from, &room, &target, &frame),
            Command::Roster { session, room } => {
                let members = self
                    .with_room(&room, false, |s| s.members.clone())
                    .unwrap_or_default();
                events.roster(&session, &room, members);
            }
            Command::Doc(command) => self.docs.submit(events, command),
            Command::CatchUp { room, epoch, after } => self.catch_up(events, room, epoch, after),
        }
    }

    fn user_online(&self, _user_id: &str, _session: &str, _transport: Transport) {}

    fn user_offline(&self, _user_id: &str, _session: &str) {}

    fn health(&self) -> Health {
        Health::Standalone
    }

    fn sweep(&self) {
        if let Some(events) = self.events() {
            self.docs.sweep(&*events);
        }
        let ttl = self.limits.ttl;
        self.rooms.retain(|_, room| {
            let mut state = room.lock();
            state.history.expire();
            let idle = state.emptied_at.is_some_and(|t| t.elapsed() > ttl);
            state.removed = state.members.is_empty() && (idle || state.history.is_empty());
            !state.removed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{BackendRequest, Event};

    /// Records what the broker delivers, as the node would see it.
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<String>>,
        answers: Mutex<Vec<JoinAnswer>>,
        online: Mutex<Vec<String>>,
    }

    impl BrokerEvents for Recorder {
        fn joined(&self, answer: JoinAnswer) {
            self.log
                .lock()
                .push(format!("joined {} {}", answer.session, answer.room));
            self.answers.lock().push(answer);
        }
        fn room_message(&self, room: &RoomName, epoch: &str, offset: u64, frame: Utf8Bytes) {
            let _ = epoch;
            self.log
                .lock()
                .push(format!("message {room} {offset} {}", frame.as_str()));
        }
        fn presence(&self, change: PresenceChange) {
            self.log.lock().push(format!(
                "presence {} {} {}",
                change.seq,
                change.except.as_deref().unwrap_or("-"),
                change.full.as_ref().map_or("-", |f| f.as_str())
            ));
        }
        fn members(&self, session: &str, room: &RoomName, users: Vec<User>) {
            self.log
                .lock()
                .push(format!("members {session} {room} {}", users.len()));
        }
        fn room_volatile(&self, room: &RoomName, except: Option<&str>, frame: &Utf8Bytes) {
            self.log.lock().push(format!(
                "volatile {room} {} {}",
                except.unwrap_or("-"),
                frame.as_str()
            ));
        }
        fn private(&self, target: &str, _frame: &Utf8Bytes) -> usize {
            usize::from(self.online.lock().iter().any(|u| u == target))
        }
        fn undeliverable(&self, from: &str, target: &str) {
            self.log
                .lock()
                .push(format!("undeliverable {from} {target}"));
        }
        fn event(&self, id: Option<u64>, event: &Event) {
            self.log.lock().push(format!("event {id:?} {event:?}"));
        }
        fn direct(&self, room: &RoomName, target: &str, frame: &Utf8Bytes) -> bool {
            self.log
                .lock()
                .push(format!("direct {room} {target} {}", frame.as_str()));
            true
        }
        fn peer_unreachable(&self, from: &str, room: &RoomName, target: &str) {
            self.log
                .lock()
                .push(format!("unreachable {from} {room} {target}"));
        }
        fn roster(&self, session: &str, room: &RoomName, members: Vec<(SessionId, User)>) {
            let ids: Vec<&str> = members.iter().map(|(id, _)| &**id).collect();
            self.log
                .lock()
                .push(format!("roster {session} {room} {}", ids.join(",")));
        }
        fn backend(&self, _request: BackendRequest) {}
        fn local_state(&self) -> LocalState {
            LocalState::default()
        }
        fn reset(&self) {}
        fn caught_up(&self, answer: CatchUpAnswer) {
            let replay: Vec<&str> = answer.replay.iter().map(|f| f.as_str()).collect();
            self.log.lock().push(format!(
                "caught up {} {} {} {} [{}]",
                answer.room,
                answer.asked.1,
                answer.offset,
                answer.recovered,
                replay.join(",")
            ));
        }
    }

    fn broker(size: usize) -> (Memory, Arc<Recorder>) {
        let memory = Memory::new(
            HistoryLimits {
                size,
                ttl: Duration::from_secs(60),
            },
            2,
        );
        let recorder = Arc::new(Recorder::default());
        let events: Arc<dyn BrokerEvents> = recorder.clone();
        memory.attach(Arc::downgrade(&events));
        (memory, recorder)
    }

    fn join(m: &Memory, session: &str, room: &str, since: Option<(&str, u64)>) {
        m.submit(Command::Join {
            session: session.into(),
            room: room.into(),
            user: User::from(session),
            since: since.map(|(epoch, offset)| StreamPosition {
                epoch: epoch.into(),
                offset,
            }),
        });
    }

    fn publish(m: &Memory, room: &str, text: &str) {
        m.submit(Command::Publish {
            room: room.into(),
            prefix: format!(r#"{{"t":"{text}","offset":"#),
            from: None,
        });
    }

    #[test]
    fn offsets_count_up_per_room_in_one_order() {
        let (m, r) = broker(10);
        publish(&m, "a", "1");
        publish(&m, "b", "x");
        publish(&m, "a", "2");
        let log = r.log.lock().clone();
        assert_eq!(
            log,
            [
                r#"message a 1 {"t":"1","offset":1}"#,
                r#"message b 1 {"t":"x","offset":1}"#,
                r#"message a 2 {"t":"2","offset":2}"#,
            ]
        );
    }

    #[test]
    fn presence_lists_members_in_join_order_and_numbers_changes() {
        let (m, r) = broker(10);
        join(&m, "ann", "a", None);
        join(&m, "bob", "a", None);
        let answers = r.answers.lock().clone();
        assert_eq!(answers[1].users, [User::from("ann"), User::from("bob")]);
        assert_eq!((answers[0].presence_seq, answers[1].presence_seq), (1, 2));
        m.submit(Command::Leave {
            session: "ann".into(),
            room: "a".into(),
            user: User::from("ann"),
        });
        let log = r.log.lock().clone();
        assert_eq!(
            log.last().unwrap(),
            r#"presence 3 ann {"type":"user_left","user":"ann","room":"a"}"#
        );
        assert!(log.contains(
            &r#"presence 2 bob {"type":"user_joined","user":"bob","users":["ann","bob"],"room":"a"}"#
                .to_owned()
        ));
        // Leaving twice (or a room never joined) announces nothing.
        let before = r.log.lock().len();
        m.submit(Command::Leave {
            session: "ann".into(),
            room: "a".into(),
            user: User::from("ann"),
        });
        assert_eq!(r.log.lock().len(), before);
    }

    #[test]
    fn rooms_over_the_full_list_size_announce_diffs_only() {
        // The test broker's full-list size is 2.
        let (m, r) = broker(10);
        join(&m, "ann", "a", None);
        join(&m, "bob", "a", None);
        join(&m, "cat", "a", None);
        m.submit(Command::Leave {
            session: "cat".into(),
            room: "a".into(),
            user: User::from("cat"),
        });
        let presence: Vec<String> = r
            .log
            .lock()
            .iter()
            .filter(|l| l.starts_with("presence"))
            .cloned()
            .collect();
        assert!(presence[1].contains("user_joined"), "{presence:?}");
        // cat made three: no whole list, and its leave leaves two (a list again).
        assert_eq!(presence[2], "presence 3 cat -");
        assert!(presence[3].contains("user_left"), "{presence:?}");
        // Whole lists are still given to the joiner and on request.
        assert_eq!(r.answers.lock()[2].users.len(), 3);
        m.submit(Command::Members {
            session: "ann".into(),
            room: "a".into(),
        });
        assert_eq!(r.log.lock().last().unwrap(), "members ann a 2");
    }

    #[test]
    fn resume_replays_everything_missed_or_nothing() {
        let (m, r) = broker(3);
        join(&m, "ann", "a", None);
        let epoch = r.answers.lock()[0].epoch.clone();
        for i in 1..=5 {
            publish(&m, "a", &i.to_string());
        }
        // History holds 3, 4, 5: resuming from 2 is complete.
        join(&m, "bob", "a", Some((&epoch, 2)));
        // From 1 it is not: 2 is gone, so nothing is replayed.
        join(&m, "cat", "a", Some((&epoch, 1)));
        // Another epoch's position cannot be resumed.
        join(&m, "dan", "a", Some(("other", 4)));
        // Up to date: complete, nothing to replay.
        join(&m, "eve", "a", Some((&epoch, 5)));
        let answers = r.answers.lock().clone();
        let replayed = |a: &JoinAnswer| {
            a.replay
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(answers[1].recovered, Some(true));
        assert_eq!(
            replayed(&answers[1]),
            [
                r#"{"t":"3","offset":3}"#,
                r#"{"t":"4","offset":4}"#,
                r#"{"t":"5","offset":5}"#
            ]
        );
        assert_eq!(answers[2].recovered, Some(false));
        assert!(answers[2].replay.is_empty());
        assert_eq!(answers[3].recovered, Some(false));
        assert_eq!(answers[4].recovered, Some(true));
        assert!(answers[4].replay.is_empty());
        assert_eq!(answers[0].recovered, None);
        assert_eq!(answers[4].offset, 5);
    }

    #[test]
    fn a_catch_up_replays_what_history_holds_or_nothing() {
        let (m, rec) = broker(3);
        join(&m, "s1", "r", None);
        for text in ["a", "b", "c", "d"] {
            publish(&m, "r", text);
        }
        let epoch = rec.answers.lock()[0].epoch.clone();
        rec.log.lock().clear();
        let catch_up = |epoch: &str, after| {
            m.submit(Command::CatchUp {
                room: "r".into(),
                epoch: epoch.to_owned(),
                after,
            })
        };
        catch_up(&epoch, 2);
        catch_up(&epoch, 4);
        // Offset 1 is out of the history of 3; another epoch has nothing to replay.
        catch_up(&epoch, 0);
        catch_up("other", 2);
        let log = rec.log.lock().clone();
        assert_eq!(log.len(), 4);
        assert_eq!(
            log[0],
            r#"caught up r 2 4 true [{"t":"c","offset":3},{"t":"d","offset":4}]"#
        );
        assert_eq!(log[1], "caught up r 4 4 true []");
        assert_eq!(log[2], "caught up r 0 4 false []");
        assert_eq!(log[3], "caught up r 2 4 false []");
    }

    #[test]
    fn an_idle_room_is_dropped_and_starts_a_new_epoch() {
        let (m, r) = broker(0);
        join(&m, "ann", "a", None);
        m.submit(Command::Leave {
            session: "ann".into(),
            room: "a".into(),
            user: User::from("ann"),
        });
        assert!(
            m.rooms.is_empty(),
            "no members and no history: nothing is kept"
        );
        join(&m, "ann", "a", None);
        let answers = r.answers.lock().clone();
        assert_ne!(answers[0].epoch, answers[1].epoch);
    }

    #[test]
    fn private_messages_to_nobody_are_reported_to_the_sender() {
        let (m, r) = broker(10);
        r.online.lock().push("bob".into());
        for target in ["bob", "zed"] {
            m.submit(Command::Private {
                from: "ann".into(),
                target: target.into(),
                frame: Utf8Bytes::from_static("{}"),
            });
        }
        assert_eq!(r.log.lock().clone(), ["undeliverable ann zed"]);
    }

    fn direct(m: &Memory, from: &str, room: &str, target: &str, frame: &str) {
        m.submit(Command::Direct {
            from: from.into(),
            room: room.into(),
            target: target.into(),
            frame: Utf8Bytes::from(frame.to_owned()),
        });
    }

    #[test]
    fn direct_frames_reach_members_of_the_room_only_in_order() {
        let (m, r) = broker(10);
        join(&m, "ann", "a", None);
        join(&m, "bob", "a", None);
        join(&m, "cat", "b", None);
        r.log.lock().clear();
        direct(&m, "ann", "a", "bob", "1");
        direct(&m, "ann", "a", "bob", "2");
        // Another room's member, a session nobody knows, a room nobody is in.
        direct(&m, "ann", "a", "cat", "3");
        direct(&m, "ann", "a", "zed", "4");
        direct(&m, "ann", "empty", "bob", "5");
        m.submit(Command::Leave {
            session: "bob".into(),
            room: "a".into(),
            user: User::from("bob"),
        });
        direct(&m, "ann", "a", "bob", "6");
        let log: Vec<String> = r
            .log
            .lock()
            .iter()
            .filter(|l| !l.starts_with("presence"))
            .cloned()
            .collect();
        assert_eq!(
            log,
            [
                "direct a bob 1",
                "direct a bob 2",
                "unreachable ann a cat",
                "unreachable ann a zed",
                "unreachable ann empty bob",
                "unreachable ann a bob",
            ]
        );
    }

    #[test]
    fn a_roster_lists_the_members_with_their_sessions_in_join_order() {
        let (m, r) = broker(10);
        join(&m, "bob", "a", None);
        join(&m, "ann", "a", None);
        join(&m, "cat", "b", None);
        r.log.lock().clear();
        m.submit(Command::Roster {
            session: "ann".into(),
            room: "a".into(),
        });
        m.submit(Command::Roster {
            session: "ann".into(),
            room: "nobody".into(),
        });
        assert_eq!(
            r.log.lock().clone(),
            ["roster ann a bob,ann", "roster ann nobody "]
        );
    }

    #[test]
    fn seeding_takes_local_members_as_presence_under_new_epochs() {
        let (m, r) = broker(10);
        join(&m, "ann", "a", None);
        let old = r.answers.lock()[0].epoch.clone();
        m.seed(&LocalState {
            members: vec![("a".into(), "ann".into(), User::from("ann"))],
            users: Vec::new(),
        });
        join(&m, "bob", "a", None);
        let answers = r.answers.lock().clone();
        assert_ne!(answers[1].epoch, old);
        assert_eq!(answers[1].users, [User::from("ann"), User::from("bob")]);
    }
}
