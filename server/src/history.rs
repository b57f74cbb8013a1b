//! A bounded, time-limited ring of numbered items: room history (the memory broker, the hub's
//! recent messages) and the SSE resume log all keep one.
//!
//! Layer 2: imports nothing from the crate.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One kept item and its sequence number.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    /// Its sequence number (a room offset, an SSE event id); increasing along the ring.
    pub seq: u64,
    at: Instant,
    /// The item.
    pub item: T,
}

/// Items with increasing sequence numbers, at most `size` of them and none older than `ttl`.
#[derive(Debug, Clone)]
pub struct History<T> {
    ring: VecDeque<Entry<T>>,
    size: usize,
    ttl: Duration,
}

impl<T: Clone> History<T> {
    /// An empty ring keeping at most `size` items for at most `ttl`.
    pub fn new(size: usize, ttl: Duration) -> Self {
        History {
            ring: VecDeque::new(),
            size,
            ttl,
        }
    }

    /// Drops what is past its lifetime.
    pub fn expire(&mut self) {
        let ttl = self.ttl;
        while self.ring.front().is_some_and(|e| e.at.elapsed() > ttl) {
            self.ring.pop_front();
        }
        if self.ring.is_empty() && self.ring.capacity() > 0 {
            self.ring = VecDeque::new();
        }
    }

    /// Keeps an item (dropping the oldest when full). Does nothing when the size is 0.
    pub fn push(&mut self, seq: u64, item: T) {
        if self.size == 0 {
            return;
        }
        self.expire();
        while self.ring.len() >= self.size {
            self.ring.pop_front();
        }
        self.ring.push_back(Entry {
            seq,
            at: Instant::now(),
            item,
        });
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.ring = VecDeque::new();
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// How many items are kept.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// The kept items after `seq`, oldest first (expired ones excluded).
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &Entry<T>> {
        let ttl = self.ttl;
        self.ring
            .iter()
            .filter(move |e| e.seq > seq && e.at.elapsed() <= ttl)
    }

    /// Every item after `seq` up to `last` (the latest sequence number handed out), when the
    /// ring still holds all of them; `None` when some are gone. All or nothing: a resume either
    /// gets everything it missed or is told it cannot.
    pub fn complete_after(&self, seq: u64, last: u64) -> Option<Vec<T>> {
        if seq > last {
            return None;
        }
        if seq == last {
            return Some(Vec::new());
        }
        let kept: Vec<&Entry<T>> = self.after(seq).collect();
        match kept.first() {
            Some(first) if first.seq == seq + 1 => {
                Some(kept.into_iter().map(|e| e.item.clone()).collect())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_up_to_its_size() {
        let mut h = History::new(3, Duration::from_secs(60));
        for seq in 1..=5 {
            h.push(seq, seq * 10);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.after(0).map(|e| e.item).collect::<Vec<_>>(), [30, 40, 50]);
    }

    #[test]
    fn resume_is_all_or_nothing() {
        let mut h = History::new(3, Duration::from_secs(60));
        for seq in 1..=5 {
            h.push(seq, seq);
        }
        // 3, 4 and 5 are kept: resuming after 2 gets all of them, after 1 cannot (2 is gone).
        assert_eq!(h.complete_after(2, 5), Some(vec![3, 4, 5]));
        assert_eq!(h.complete_after(4, 5), Some(vec![5]));
        assert_eq!(h.complete_after(5, 5), Some(vec![]));
        assert_eq!(h.complete_after(1, 5), None);
        // A position past the latest is not one this stream gave out.
        assert_eq!(h.complete_after(6, 5), None);
    }

    #[test]
    fn expired_items_are_not_replayed() {
        let mut h = History::new(10, Duration::ZERO);
        h.push(1, 1);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(h.complete_after(0, 1), None);
        h.expire();
        assert!(h.is_empty());
    }

    #[test]
    fn size_zero_keeps_nothing() {
        let mut h = History::new(0, Duration::from_secs(60));
        h.push(1, "a");
        assert!(h.is_empty());
        assert_eq!(h.complete_after(0, 1), None);
    }
}
