//! Which bus channels a node listens to: per-room (and per-user) interest.
//!
//! A cluster broker publishes a room's traffic on the room's own channel, and a user's private
//! messages on the user's own channel, so a node listens only to the rooms and users it has a
//! local session for. [`Interest`] is the bookkeeping: every channel has the set of local
//! holders (session ids) that need it. The broker task feeds it the operations of a batch before
//! sending them, subscribes to what became needed **before** the batch runs (so the answer to a
//! join and the subscription are ordered: every message published after the join script ran
//! reaches the node, and the ones before it are in the answer), and unsubscribes from what
//! nobody needs any more **after** the batch ran (so a leave followed by a join of the same room
//! in one batch never opens a gap).
//!
//! Holders are sets, not counts, so an operation seen twice (a join replayed after a reconnect)
//! never leaves a channel subscribed forever or drops it early. Pure data, no I/O: layer 3.

use std::collections::{HashMap, HashSet};

/// Local holders per channel and what the connection is subscribed to.
#[derive(Debug, Default)]
pub struct Interest {
    holders: HashMap<String, HashSet<String>>,
    subscribed: HashSet<String>,
    /// Channels whose holders changed since the last [`Interest::to_subscribe`] or
    /// [`Interest::to_unsubscribe`].
    touched_in: HashSet<String>,
    touched_out: HashSet<String>,
}

impl Interest {
    /// `holder` (a session) needs `channel`.
    pub fn want(&mut self, channel: &str, holder: &str) {
        let set = self.holders.entry(channel.to_owned()).or_default();
        if set.insert(holder.to_owned()) && !self.subscribed.contains(channel) {
            self.touched_in.insert(channel.to_owned());
        }
    }

    /// `holder` no longer needs `channel`.
    pub fn unwant(&mut self, channel: &str, holder: &str) {
        let Some(set) = self.holders.get_mut(channel) else {
            return;
        };
        if set.remove(holder) && set.is_empty() {
            self.holders.remove(channel);
            self.touched_out.insert(channel.to_owned());
        }
    }

    /// The channels to subscribe to before the operations recorded since the last call run; they
    /// count as subscribed from now on (the caller subscribes or gives the connection up).
    pub fn to_subscribe(&mut self) -> Vec<String> {
        let mut out: Vec<String> = self
            .touched_in
            .drain()
            .filter(|c| self.holders.contains_key(c) || self.touched_out.contains(c))
            .filter(|c| !self.subscribed.contains(c))
            .collect();
        out.sort();
        self.subscribed.extend(out.iter().cloned());
        out
    }

    /// The channels nobody here needs any more, to unsubscribe from once the operations ran;
    /// they count as unsubscribed from now on.
    pub fn to_unsubscribe(&mut self) -> Vec<String> {
        let mut out: Vec<String> = self
            .touched_out
            .drain()
            .filter(|c| !self.holders.contains_key(c) && self.subscribed.contains(c))
            .collect();
        out.sort();
        for c in &out {
            self.subscribed.remove(c);
        }
        out
    }

    /// Forgets everything (a new connection subscribes from scratch).
    pub fn clear(&mut self) {
        *self = Interest::default();
    }

    /// How many channels the connection is subscribed to for local holders.
    pub fn subscribed(&self) -> usize {
        self.subscribed.len()
    }

    /// Whether `channel` is subscribed.
    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.subscribed.contains(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_holder_subscribes_and_the_last_one_unsubscribes() {
        let mut i = Interest::default();
        i.want("r1", "s1");
        i.want("r1", "s2");
        assert_eq!(i.to_subscribe(), ["r1"]);
        assert!(i.to_unsubscribe().is_empty());
        i.unwant("r1", "s1");
        assert!(i.to_subscribe().is_empty());
        assert!(i.to_unsubscribe().is_empty(), "s2 still needs it");
        i.unwant("r1", "s2");
        assert_eq!(i.to_unsubscribe(), ["r1"]);
        assert_eq!(i.subscribed(), 0);
    }

    #[test]
    fn a_leave_and_a_join_in_one_batch_keep_the_subscription() {
        let mut i = Interest::default();
        i.want("r1", "s1");
        assert_eq!(i.to_subscribe(), ["r1"]);
        // One batch: s1 leaves, s2 joins.
        i.unwant("r1", "s1");
        i.want("r1", "s2");
        assert!(i.to_subscribe().is_empty(), "already subscribed");
        assert!(i.to_unsubscribe().is_empty(), "s2 needs it");
        assert!(i.is_subscribed("r1"));
    }

    #[test]
    fn a_join_and_a_leave_in_one_batch_subscribe_for_the_batch_then_drop_it() {
        let mut i = Interest::default();
        i.want("r1", "s1");
        i.unwant("r1", "s1");
        // The join script in the batch must find the node subscribed; after it, nobody needs it.
        assert_eq!(i.to_subscribe(), ["r1"]);
        assert_eq!(i.to_unsubscribe(), ["r1"]);
        assert_eq!(i.subscribed(), 0);
    }

    /// Random batches of joins and leaves against a model: before a batch runs, every channel
    /// some operation of the batch needs is subscribed; after it, exactly the channels with a
    /// holder are.
    #[test]
    fn random_batches_keep_the_subscriptions_exact() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..500 {
            let mut interest = Interest::default();
            let mut model: HashMap<String, HashSet<String>> = HashMap::new();
            let mut subscribed: HashSet<String> = HashSet::new();
            for _ in 0..20 {
                let mut needed = HashSet::new();
                for _ in 0..next(8) {
                    let channel = format!("r{}", next(4));
                    let holder = format!("s{}", next(5));
                    if next(2) == 0 {
                        interest.want(&channel, &holder);
                        model.entry(channel.clone()).or_default().insert(holder);
                        needed.insert(channel);
                    } else {
                        interest.unwant(&channel, &holder);
                        if let Some(set) = model.get_mut(&channel) {
                            set.remove(&holder);
                            if set.is_empty() {
                                model.remove(&channel);
                            }
                        }
                    }
                }
                for c in interest.to_subscribe() {
                    assert!(subscribed.insert(c.clone()), "{c} subscribed twice");
                }
                for c in &needed {
                    assert!(
                        subscribed.contains(c),
                        "{c} not subscribed before its join ran"
                    );
                }
                for c in interest.to_unsubscribe() {
                    assert!(
                        subscribed.remove(&c),
                        "{c} unsubscribed without a subscription"
                    );
                }
                let holders: HashSet<String> = model.keys().cloned().collect();
                assert_eq!(subscribed, holders);
                assert_eq!(interest.subscribed(), subscribed.len());
            }
        }
    }

    #[test]
    fn repeated_operations_neither_leak_nor_drop_early() {
        let mut i = Interest::default();
        i.want("r1", "s1");
        i.want("r1", "s1");
        i.want("u:ann", "s1");
        assert_eq!(i.to_subscribe(), ["r1", "u:ann"]);
        i.unwant("r1", "s9");
        i.unwant("nowhere", "s1");
        assert!(i.to_unsubscribe().is_empty());
        i.unwant("r1", "s1");
        i.unwant("r1", "s1");
        assert_eq!(i.to_unsubscribe(), ["r1"]);
        assert!(i.is_subscribed("u:ann"));
        i.clear();
        assert_eq!(i.subscribed(), 0);
    }
}
