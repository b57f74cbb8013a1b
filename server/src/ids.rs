//! Identifiers and clocks: connection and message ids, room stream epochs, timestamps.
//!
//! Layer 1 (a leaf): imports nothing from the crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The current time as RFC 3339 with milliseconds, like JavaScript's `toISOString()`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
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

/// Unique ids: a random per-process prefix of letters and a counter, in base 36.
pub struct Ids {
    prefix: String,
    next: AtomicU64,
}

impl Default for Ids {
    fn default() -> Self {
        Self::new()
    }
}

impl Ids {
    /// A generator with a fresh random prefix.
    pub fn new() -> Self {
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

    /// The next id.
    pub fn next(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_share_a_prefix() {
        let ids = Ids::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a[..4], b[..4]);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
