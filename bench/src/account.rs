//! Delivery accounting: which received frame counts as a delivery, and the loss it implies.
//!
//! Every message the generator sends carries its publisher (or poster) and a per-publisher
//! sequence number. A receiver counts a given (publisher, sequence) at most once, and a chat only
//! when its publisher sits in the receiver's own room. Anything else is reported under its own
//! name (`duplicates`, `misrouted`, `stale`) instead of being added to `delivered`, so extra frames
//! can never hide missing ones: `delivered` never exceeds `expected` for a server that only
//! forwards what it was sent, and `lost` is clamped at zero regardless.
//!
//! Nothing here touches a socket; the scenarios feed it what they parse.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::common::{r1, Metrics};

/// How a receiver classifies one message that this tool wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// First arrival of this (publisher, sequence) at this receiver: a delivery.
    New,
    /// This receiver already had this (publisher, sequence).
    Duplicate,
    /// Older than anything the tracker still remembers (see [`MAX_HOLES`]): either a duplicate or
    /// a message overtaken by more than `MAX_HOLES` later ones. Not a delivery.
    Stale,
    /// From a publisher outside the receiver's room (or one that does not exist). Not a delivery.
    Misrouted,
}

/// The most sequence gaps one tracker remembers. A gap is a sequence number skipped by a later
/// arrival; it is filled if the missing message turns up afterwards. Beyond this many open gaps
/// the oldest are forgotten (a message that arrives for one of them is `Stale`), which bounds a
/// tracker's memory at a few KiB however lossy the server is.
pub const MAX_HOLES: usize = 1024;

/// The sequence numbers one receiver has seen from one publisher.
///
/// Servers deliver a room in order, so the usual case is one comparison: `seq == next`. A skip
/// records the missing numbers as holes; a later arrival of a hole fills it.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    /// Every sequence below this has been seen or is a hole (or was forgotten below `known_from`).
    next: u64,
    /// Sequences in `known_from..next` that have not arrived, ascending.
    holes: Vec<u64>,
    /// Below this, holes have been forgotten, so an arrival cannot be told apart.
    known_from: u64,
}

impl SeqTracker {
    pub fn see(&mut self, seq: u64) -> Verdict {
        if seq >= self.next {
            // Remember at most MAX_HOLES of the skipped numbers, the newest ones.
            let first = self.next.max(seq.saturating_sub(MAX_HOLES as u64));
            if first > self.next {
                self.forget_below(first);
            }
            self.holes.extend(first..seq);
            if self.holes.len() > MAX_HOLES {
                let keep_from = self.holes[self.holes.len() - MAX_HOLES];
                self.forget_below(keep_from);
            }
            self.next = seq + 1;
            return Verdict::New;
        }
        if let Ok(at) = self.holes.binary_search(&seq) {
            self.holes.remove(at);
            return Verdict::New;
        }
        if seq < self.known_from {
            Verdict::Stale
        } else {
            Verdict::Duplicate
        }
    }

    fn forget_below(&mut self, seq: u64) {
        let cut = self.holes.partition_point(|h| *h < seq);
        self.holes.drain(..cut);
        self.known_from = self.known_from.max(seq);
    }
}

/// Where clients and publishers sit in a rooms run: client `i` is in room `i / room_size`;
/// publisher `p` is in room `p % rooms`, at member position `p / rooms`.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub clients: usize,
    pub room_size: usize,
    pub publishers: usize,
}

impl Layout {
    pub fn rooms(&self) -> usize {
        self.clients.div_ceil(self.room_size)
    }

    pub fn room_of(&self, client: usize) -> usize {
        client / self.room_size
    }

    /// Members of `room` (the last room may be smaller).
    pub fn room_len(&self, room: usize) -> usize {
        let start = room * self.room_size;
        self.room_size.min(self.clients.saturating_sub(start))
    }

    /// The publisher index of client `i`, if it publishes.
    pub fn publisher_of(&self, client: usize) -> Option<usize> {
        let rooms = self.rooms();
        let room = self.room_of(client);
        let pos = client - room * self.room_size;
        let p = pos * rooms + room;
        (p < self.publishers).then_some(p)
    }

    /// The room publisher `p` sits in, if that publisher exists.
    pub fn room_of_publisher(&self, p: usize) -> Option<usize> {
        let rooms = self.rooms();
        let (room, pos) = (p % rooms, p / rooms);
        (p < self.publishers && pos < self.room_len(room)).then_some(room)
    }
}

/// One receiving connection's view: a tracker per source it should hear from, made on first use.
#[derive(Debug, Default)]
pub struct Receiver {
    trackers: Vec<SeqTracker>,
}

impl Receiver {
    /// Classifies a message from source `slot` (a dense index among the sources this receiver
    /// should hear from) with sequence `seq`.
    pub fn see(&mut self, slot: usize, seq: u64) -> Verdict {
        if slot >= self.trackers.len() {
            self.trackers.resize_with(slot + 1, SeqTracker::default);
        }
        self.trackers[slot].see(seq)
    }

    /// Classifies a chat from `publisher` received by a member of `room`.
    pub fn see_chat(
        &mut self,
        layout: &Layout,
        room: usize,
        publisher: usize,
        seq: u64,
    ) -> Verdict {
        if layout.room_of_publisher(publisher) != Some(room) {
            return Verdict::Misrouted;
        }
        // Publishers of one room are `room + k * rooms`: k is a dense index within the room.
        self.see(publisher / layout.rooms(), seq)
    }
}

/// The delivery figures of a run, from its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub misrouted: u64,
    pub stale: u64,
}

impl Counts {
    pub fn of(m: &Metrics) -> Counts {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            sent: get(&m.sent),
            expected: get(&m.expected),
            delivered: get(&m.delivered),
            duplicates: get(&m.duplicates),
            misrouted: get(&m.misrouted),
            stale: get(&m.stale),
        }
    }

    /// Expected deliveries that never arrived (by the end of the drain). Never negative.
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }

    /// `lost` in percent of `expected`; `None` when nothing was expected.
    pub fn loss_pct(&self) -> Option<f64> {
        (self.expected > 0).then(|| self.lost() as f64 * 100.0 / self.expected as f64)
    }

    /// The counting part of a run's `results`, over a window of `secs` seconds.
    pub fn json(&self, secs: f64) -> Value {
        json!({
            "sent": self.sent,
            "sends_per_sec": r1(self.sent as f64 / secs),
            "expected_deliveries": self.expected,
            "delivered": self.delivered,
            "deliveries_per_sec": r1(self.delivered as f64 / secs),
            "lost": self.lost(),
            "loss_pct": self.loss_pct(),
            "duplicates": self.duplicates,
            "misrouted": self.misrouted,
            "stale": self.stale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::now_ns;

    #[test]
    fn in_order_gaps_duplicates_and_late_arrivals() {
        let mut t = SeqTracker::default();
        assert_eq!(t.see(0), Verdict::New);
        assert_eq!(t.see(1), Verdict::New);
        assert_eq!(t.see(1), Verdict::Duplicate);
        assert_eq!(t.see(0), Verdict::Duplicate);
        // 2 and 3 skipped, then 3 turns up late: a delivery once, a duplicate after.
        assert_eq!(t.see(4), Verdict::New);
        assert_eq!(t.see(3), Verdict::New);
        assert_eq!(t.see(3), Verdict::Duplicate);
        assert_eq!(t.see(4), Verdict::Duplicate);
        assert_eq!(t.see(5), Verdict::New);
        assert_eq!(t.see(2), Verdict::New);
        assert_eq!(t.see(2), Verdict::Duplicate);
        assert!(t.holes.is_empty());
    }

    #[test]
    fn a_huge_gap_keeps_only_the_newest_holes() {
        let mut t = SeqTracker::default();
        assert_eq!(t.see(0), Verdict::New);
        let far = 10 * MAX_HOLES as u64;
        assert_eq!(t.see(far), Verdict::New);
        assert_eq!(t.holes.len(), MAX_HOLES);
        // The newest missing numbers are still known; the oldest are forgotten.
        assert_eq!(t.see(far - 1), Verdict::New);
        assert_eq!(t.see(far - MAX_HOLES as u64), Verdict::New);
        assert_eq!(t.see(far - MAX_HOLES as u64 - 1), Verdict::Stale);
        assert_eq!(t.see(1), Verdict::Stale);
        assert_eq!(t.see(far), Verdict::Duplicate);
        // Many small gaps: the oldest holes go first, and memory stays bounded.
        let mut t = SeqTracker::default();
        for k in 0..(3 * MAX_HOLES as u64) {
            assert_eq!(t.see(2 * k + 1), Verdict::New);
        }
        assert_eq!(t.holes.len(), MAX_HOLES);
        assert_eq!(t.see(0), Verdict::Stale);
        assert_eq!(t.see(6 * MAX_HOLES as u64 - 2), Verdict::New);
    }

    #[test]
    fn the_layout_places_publishers_in_rooms() {
        let l = Layout {
            clients: 250,
            room_size: 100,
            publishers: 5,
        };
        assert_eq!(l.rooms(), 3);
        assert_eq!(l.room_len(2), 50);
        // Publishers 0, 1, 2 are the first members of rooms 0, 1, 2; 3 and 4 the second of 0, 1.
        assert_eq!(l.publisher_of(0), Some(0));
        assert_eq!(l.publisher_of(100), Some(1));
        assert_eq!(l.publisher_of(200), Some(2));
        assert_eq!(l.publisher_of(1), Some(3));
        assert_eq!(l.publisher_of(101), Some(4));
        assert_eq!(l.publisher_of(201), None);
        for p in 0..5 {
            let client = (0..250).find(|i| l.publisher_of(*i) == Some(p)).unwrap();
            assert_eq!(l.room_of_publisher(p), Some(l.room_of(client)));
        }
        assert_eq!(l.room_of_publisher(5), None);
    }

    /// A fake server's output fed through the same path as the WebSocket client: two rooms of
    /// three, one publisher each, ten chats each. The server duplicates some chats, sends some
    /// into the wrong room and drops others; raw counting would have reported more deliveries
    /// than expected (negative loss).
    #[test]
    fn duplicates_and_misrouted_chats_cannot_hide_loss() {
        let layout = Layout {
            clients: 6,
            room_size: 3,
            publishers: 2,
        };
        let m = Metrics::new();
        let t0 = now_ns();
        m.window_start.store(t0, Ordering::Relaxed);
        m.window_end.store(u64::MAX - 1, Ordering::Relaxed);
        let ts = t0 + 1;
        for _publisher in 0..2 {
            for _seq in 0..10 {
                m.on_send(ts, 3);
            }
        }
        let mut receivers: Vec<Receiver> = (0..6).map(|_| Receiver::default()).collect();
        let mut raw = 0u64;
        let mut deliver = |client: usize, publisher: usize, seq: u64| {
            raw += 1;
            let v = receivers[client].see_chat(&layout, layout.room_of(client), publisher, seq);
            m.on_delivery(ts, client, v);
        };
        for client in 0..6 {
            let room = layout.room_of(client);
            let publisher = room; // publisher p is in room p here
            for seq in 0..10 {
                // Client 0 misses seq 7; client 4 misses 2 and 3.
                if (client == 0 && seq == 7) || (client == 4 && (seq == 2 || seq == 3)) {
                    continue;
                }
                deliver(client, publisher, seq);
                // Every chat of room 1 reaches client 3 twice.
                if client == 3 {
                    deliver(client, publisher, seq);
                }
            }
            // Room 0's chats also leak into room 1 (and vice versa for client 2).
            if room == 1 {
                for seq in 0..10 {
                    deliver(client, 0, seq);
                }
            }
            if client == 2 {
                deliver(client, 1, 0);
            }
            // A publisher that does not exist is misrouted too.
            deliver(client, 7, 0);
        }
        let c = Counts::of(&m);
        assert_eq!(c.sent, 20);
        assert_eq!(c.expected, 60);
        assert_eq!(c.delivered, 57);
        assert_eq!(c.duplicates, 10);
        assert_eq!(c.misrouted, 30 + 1 + 6);
        assert_eq!(c.stale, 0);
        assert_eq!(c.lost(), 3);
        assert_eq!(c.loss_pct(), Some(5.0));
        assert!(raw > c.expected, "raw counting would show negative loss");
        assert_eq!(m.histogram().len(), 57, "latency only for deliveries");
        let j = c.json(1.0);
        assert_eq!(j["lost"], 3);
        assert_eq!(j["duplicates"], 10);
        assert_eq!(j["misrouted"], 37);
    }

    #[test]
    fn loss_is_never_negative() {
        let c = Counts {
            sent: 1,
            expected: 2,
            delivered: 5,
            duplicates: 0,
            misrouted: 0,
            stale: 0,
        };
        assert_eq!(c.lost(), 0);
        assert_eq!(c.loss_pct(), Some(0.0));
        let none = Counts { expected: 0, ..c };
        assert_eq!(none.loss_pct(), None);
    }

    #[test]
    fn frames_outside_the_window_are_not_counted() {
        let m = Metrics::new();
        m.window_start.store(100, Ordering::Relaxed);
        m.window_end.store(200, Ordering::Relaxed);
        m.on_send(50, 3);
        m.on_send(150, 3);
        m.on_delivery(50, 0, Verdict::New);
        m.on_delivery(50, 0, Verdict::Duplicate);
        m.on_delivery(150, 0, Verdict::New);
        m.on_delivery(150, 0, Verdict::Misrouted);
        let c = Counts::of(&m);
        assert_eq!((c.sent, c.expected, c.delivered), (1, 3, 1));
        assert_eq!((c.duplicates, c.misrouted), (0, 1));
        assert_eq!(c.lost(), 2);
    }
}
