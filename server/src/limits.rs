//! Abuse limits, and the admission of a new connection (WebSocket upgrade or SSE stream).
//!
//! Before a connection is upgraded or its stream opened, in this order:
//! 1. its `Origin`, when there is one and an allowlist is configured, must be on it (403
//!    `origin_not_allowed`);
//! 2. its client IP must be within the connection-attempt rate (429 `rate_limited`); loopback
//!    clients are exempt unless `rate_limit_loopback` is set; IPv6 clients are counted by /64;
//! 3. with authentication on, it must carry a valid token (401 `unauthorized`);
//! 4. the node must have room for another connection (503 `overloaded`);
//! 5. the token's user (or the SSE stream's `userId`) must hold fewer than
//!    `max_connections_per_user` connections (429 `rate_limited`). Without a token a WebSocket's
//!    user is only known at `join`, which is refused with `forbidden` past the limit.
//!
//! Once open, each WebSocket's inbound frames pass a token bucket (`message_rate` per second,
//! `message_burst` at once): a frame over it is dropped and answered with an `error` frame coded
//! `rate_limited`; a client that keeps going, three bursts' worth refused in a row, is closed
//! with 1008 "rate limited". Rooms per connection need no limit: the protocol puts a connection
//! in one room at most.
//!
//! The buckets are `governor`'s GCRA limiters: one atomic word per connection, and a sharded map
//! of client IPs that the periodic sweep trims.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use herald_protocol::ErrorCode;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use tokio::task::AbortHandle;

pub use crate::auth::Denied;
use crate::config::Config;
pub use crate::config::{default_max_connections, parse_origins};

/// The node's limits and their counters.
pub struct Limits {
    origins: Vec<String>,
    connect: Option<DefaultKeyedRateLimiter<IpAddr>>,
    rate_limit_loopback: bool,
    message: Option<(Quota, u32)>,
    max_connections: usize,
    /// Connections one user may hold (0: no limit).
    pub max_per_user: usize,
    open: Arc<AtomicUsize>,
    per_user: Arc<DashMap<String, usize>>,
}

impl Limits {
    /// The limits the configuration sets.
    pub fn new(config: &Config) -> Self {
        let connect = NonZeroU32::new(config.connect_rate).map(|rate| {
            let burst = NonZeroU32::new(config.connect_burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        let message = NonZeroU32::new(config.message_rate).map(|rate| {
            let burst = NonZeroU32::new(config.message_burst).unwrap_or(NonZeroU32::MIN);
            (
                Quota::per_second(rate).allow_burst(burst),
                burst.get().saturating_mul(3),
            )
        });
        Limits {
            origins: config.allowed_origins.clone(),
            connect,
            rate_limit_loopback: config.rate_limit_loopback,
            message,
            max_connections: config.max_connections,
            max_per_user: config.max_connections_per_user,
            open: Arc::new(AtomicUsize::new(0)),
            per_user: Arc::new(DashMap::new()),
        }
    }

    /// Logs how the server is exposed, once at start.
    pub fn log_posture(&self, config: &Config) {
        if self.origins.is_empty() {
            tracing::warn!(
                "no origin allowlist: pages on every origin may connect (set \
                 HERALD_ALLOWED_ORIGINS to restrict)"
            );
        } else {
            tracing::info!(origins = ?self.origins, "origin allowlist in force");
        }
        tracing::info!(
            max_connections = self.max_connections,
            max_connections_per_user = self.max_per_user,
            connect_rate_per_minute = config.connect_rate,
            connect_burst = config.connect_burst,
            rate_limit_loopback = config.rate_limit_loopback,
            message_rate_per_second = config.message_rate,
            message_burst = config.message_burst,
            "limits (0 = off)"
        );
    }

    /// Whether an origin may use the server: always when no allowlist is configured.
    pub fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        if self.origins.is_empty() {
            return true;
        }
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim().trim_end_matches('/');
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Refuses a request whose `Origin` is present and not allowed.
    pub fn check_origin(&self, origin: Option<&HeaderValue>) -> Result<(), Denied> {
        match origin {
            Some(origin) if !self.origin_allowed(origin) => Err(Denied::new(
                StatusCode::FORBIDDEN,
                ErrorCode::OriginNotAllowed,
                format!(
                    "Origin {} is not allowed",
                    origin.to_str().unwrap_or("(not text)")
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Counts one connection attempt against the client's IP.
    pub fn check_connect_rate(&self, peer: SocketAddr) -> Result<(), Denied> {
        let Some(limiter) = &self.connect else {
            return Ok(());
        };
        let ip = client_key(peer.ip());
        if ip.is_loopback() && !self.rate_limit_loopback {
            return Ok(());
        }
        limiter.check_key(&ip).map_err(|_| {
            Denied::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "Too many connection attempts from your address: retry later",
            )
        })
    }

    /// Reserves room for one connection, and one for its user when it is known.
    pub fn reserve(&self, user: Option<&str>) -> Result<Permit, Denied> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        let mut permit = Permit {
            open: self.open.clone(),
            user: None,
            expiry: None,
        };
        if before >= self.max_connections {
            return Err(Denied::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Overloaded,
                "The server is at its connection limit: retry later",
            ));
        }
        if let (Some(user), true) = (user, self.max_per_user > 0) {
            let mut count = self.per_user.entry(user.to_owned()).or_insert(0);
            if *count >= self.max_per_user {
                return Err(Denied::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    format!("User {user} already has {} connections", self.max_per_user),
                ));
            }
            *count += 1;
            permit.user = Some((self.per_user.clone(), user.to_owned()));
        }
        Ok(permit)
    }

    /// A fresh bucket for one connection's inbound messages; `None` when the check is off.
    pub fn message_limiter(&self) -> Option<MessageLimiter> {
        self.message.map(|(quota, close_after)| MessageLimiter {
            bucket: RateLimiter::direct(quota),
            refused_in_a_row: 0,
            close_after,
        })
    }

    /// Forgets client IPs whose buckets are full again (run by the periodic sweep).
    pub fn sweep(&self) {
        if let Some(limiter) = &self.connect {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Connections admitted and still open.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// The key a client IP is counted under: IPv4 as is, IPv6 by its /64 (one host usually holds
/// the whole /64), IPv4-mapped IPv6 as IPv4.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V6(v6),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// One connection's share of the node's capacity; released when the connection ends.
pub struct Permit {
    open: Arc<AtomicUsize>,
    user: Option<(Arc<DashMap<String, usize>>, String)>,
    expiry: Option<AbortHandle>,
}

impl Permit {
    /// A task to stop when the connection ends (the token-expiry timer).
    pub fn abort_on_drop(&mut self, task: AbortHandle) {
        self.expiry = Some(task);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        if let Some((map, user)) = self.user.take() {
            map.remove_if_mut(&user, |_, count| {
                *count -= 1;
                *count == 0
            });
        }
        if let Some(task) = self.expiry.take() {
            task.abort();
        }
    }
}

/// What the message bucket says about one inbound frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Allow,
    /// Drop it and answer `rate_limited`.
    Refuse,
    /// Drop it and close the connection: the client keeps flooding.
    Close,
}

/// One connection's inbound message bucket.
pub struct MessageLimiter {
    bucket: DefaultDirectRateLimiter,
    refused_in_a_row: u32,
    close_after: u32,
}

impl MessageLimiter {
    /// Takes a token for one inbound frame.
    pub fn check(&mut self) -> Verdict {
        if self.bucket.check().is_ok() {
            self.refused_in_a_row = 0;
            return Verdict::Allow;
        }
        self.refused_in_a_row += 1;
        if self.refused_in_a_row >= self.close_after {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_bucket_refuses_then_closes() {
        let config = Config {
            message_rate: 1,
            message_burst: 2,
            ..Config::default()
        };
        let limits = Limits::new(&config);
        let mut m = limits.message_limiter().unwrap();
        assert_eq!(m.check(), Verdict::Allow);
        assert_eq!(m.check(), Verdict::Allow);
        for _ in 0..5 {
            assert_eq!(m.check(), Verdict::Refuse);
        }
        assert_eq!(m.check(), Verdict::Close);
        let off = Limits::new(&Config {
            message_rate: 0,
            ..Config::default()
        });
        assert!(off.message_limiter().is_none());
    }

    #[test]
    fn permits_count_and_release() {
        let config = Config {
            max_connections: 2,
            max_connections_per_user: 1,
            ..Config::default()
        };
        let limits = Limits::new(&config);
        let a = limits.reserve(Some("ann")).unwrap();
        assert_eq!(
            limits.reserve(Some("ann")).err().unwrap().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        let b = limits.reserve(None).unwrap();
        assert_eq!(
            limits.reserve(None).err().unwrap().status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop(a);
        drop(b);
        assert_eq!(limits.open_connections(), 0);
        assert!(limits.per_user.is_empty());
        let _again = limits.reserve(Some("ann")).unwrap();
    }

    #[test]
    fn connect_rate_exempts_loopback_unless_asked() {
        let config = Config {
            connect_rate: 1,
            connect_burst: 2,
            ..Config::default()
        };
        let limits = Limits::new(&config);
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..10 {
            assert!(limits.check_connect_rate(local).is_ok());
        }
        let remote: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let sibling: SocketAddr = "[2001:db8::2]:1".parse().unwrap();
        assert!(limits.check_connect_rate(remote).is_ok());
        assert!(limits.check_connect_rate(sibling).is_ok());
        assert!(limits.check_connect_rate(remote).is_err(), "same /64");
        let strict = Limits::new(&Config {
            rate_limit_loopback: true,
            ..config
        });
        assert!(strict.check_connect_rate(local).is_ok());
        assert!(strict.check_connect_rate(local).is_ok());
        assert!(strict.check_connect_rate(local).is_err());
    }

    #[test]
    fn every_setting_reads_from_the_toml_file() {
        let dir = std::env::temp_dir().join(format!("herald-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("herald.toml");
        std::fs::write(
            &path,
            "jwt_secret = \"0123456789abcdef0123456789abcdef\"\njwt_audience = \"a,b\"\n\
             jwt_issuer = \"i\"\njwt_leeway = \"5s\"\napi_key = \"k\"\n\
             allowed_origins = [\"https://x.test\"]\nconnect_rate = 7\nconnect_burst = 3\n\
             rate_limit_loopback = true\nmessage_rate = 0\nmessage_burst = 9\n\
             max_connections = 99\nmax_connections_per_user = 4\n",
        )
        .unwrap();
        let args = crate::config::ServeArgs {
            config: Some(path.clone()),
            connect_rate: Some(8),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.jwt_secret.unwrap().expose().len(), 32);
        assert_eq!(c.jwt_audience.as_deref(), Some("a,b"));
        assert_eq!(c.jwt_leeway, std::time::Duration::from_secs(5));
        assert_eq!(c.api_key.unwrap().expose(), "k");
        assert_eq!(c.allowed_origins, vec!["https://x.test"]);
        assert_eq!((c.connect_rate, c.connect_burst), (8, 3));
        assert!(c.rate_limit_loopback);
        assert_eq!((c.message_rate, c.message_burst), (0, 9));
        assert_eq!((c.max_connections, c.max_connections_per_user), (99, 4));
        std::fs::write(
            &path,
            "jwt_secret = \"s\"\njwt_public_key = \"/nonexistent.pem\"\n",
        )
        .unwrap();
        let args = crate::config::ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        assert!(args.resolve().is_err(), "secret and public key together");
        std::fs::write(&path, "jwt_public_key = \"/nonexistent.pem\"\n").unwrap();
        let args = crate::config::ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        // The key file is read once, when the node is built.
        let config = args.resolve().unwrap();
        assert!(
            crate::auth::Auth::from_config(&config).is_err(),
            "unreadable key file"
        );
    }

    #[test]
    fn origins_match_exactly_without_case_or_trailing_slash() {
        let limits = Limits::new(&Config {
            allowed_origins: parse_origins(
                " https://App.example.com/ ,http://localhost:3000".split(','),
            ),
            ..Config::default()
        });
        let ok = |o: &'static str| limits.origin_allowed(&HeaderValue::from_static(o));
        assert!(ok("https://app.example.com"));
        assert!(ok("http://localhost:3000"));
        assert!(!ok("https://app.example.com.evil.test"));
        assert!(!ok("http://app.example.com"));
        assert!(limits.check_origin(None).is_ok());
        let open = Limits::new(&Config::default());
        assert!(open.origin_allowed(&HeaderValue::from_static("https://anything.test")));
    }
}
