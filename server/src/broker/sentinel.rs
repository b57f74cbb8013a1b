//! Finding the Redis primary through Redis Sentinel:
//! `--broker redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/NAME`.
//!
//! Every time the Redis broker (re)connects it asks the sentinels, in turn, which server is the
//! primary named `NAME`, and connects only to a server that says it is a primary (`ROLE`), so
//! after a failover it follows the promoted replica instead of retrying a dead address. The
//! credentials, if any, are the primary's; the sentinels are asked without them. Layer 4.

use std::time::Duration;

use ::redis::{AsyncConnectionConfig, Value};

/// The URL scheme.
pub const SCHEME: &str = "redis+sentinel://";

/// The sentinels of one primary.
#[derive(Debug, Clone)]
pub struct Sentinels {
    sentinels: Vec<::redis::Client>,
    name: String,
    /// `USER:PASSWORD@`, or empty.
    auth: String,
}

/// The default Sentinel port.
const SENTINEL_PORT: u16 = 26379;

/// Reads a `redis+sentinel://` URL without connecting.
pub fn parse(url: &str) -> anyhow::Result<Sentinels> {
    let rest = url
        .strip_prefix(SCHEME)
        .ok_or_else(|| anyhow::anyhow!("a Sentinel URL starts with {SCHEME}"))?;
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (format!("{auth}@"), rest),
        None => (String::new(), rest),
    };
    let (hosts, name) = rest.split_once('/').ok_or_else(|| {
        anyhow::anyhow!("a Sentinel URL names its primary: {SCHEME}HOST:PORT/NAME")
    })?;
    anyhow::ensure!(
        !name.is_empty() && !name.contains(['/', ' ']),
        "the primary's name after the sentinels must be one word"
    );
    let mut sentinels = Vec::new();
    for host in hosts.split(',') {
        let (h, port) = match host.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| anyhow::anyhow!("sentinel {host:?}: the port is not a number"))?,
            ),
            None => (host, SENTINEL_PORT),
        };
        anyhow::ensure!(!h.is_empty(), "a sentinel has no host");
        sentinels.push(::redis::Client::open(format!("redis://{h}:{port}"))?);
    }
    // The primary's URL must be valid with these credentials.
    ::redis::Client::open(format!("redis://{auth}127.0.0.1:6379"))?;
    Ok(Sentinels {
        sentinels,
        name: name.to_owned(),
        auth,
    })
}

fn timeouts() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
}

impl Sentinels {
    /// The primary now: the first sentinel that names one which confirms it is a primary.
    pub async fn primary(&self) -> ::redis::RedisResult<::redis::Client> {
        let mut last = None;
        for sentinel in &self.sentinels {
            match self.ask(sentinel).await {
                Ok(client) => return Ok(client),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            ::redis::RedisError::from((::redis::ErrorKind::EmptySentinelList, "no sentinels"))
        }))
    }

    async fn ask(&self, sentinel: &::redis::Client) -> ::redis::RedisResult<::redis::Client> {
        let mut conn = sentinel
            .get_multiplexed_async_connection_with_config(&timeouts())
            .await?;
        let addr: Option<(String, u16)> = ::redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.name)
            .query_async(&mut conn)
            .await?;
        let (host, port) = addr.ok_or_else(|| {
            ::redis::RedisError::from((
                ::redis::ErrorKind::MasterNameNotFoundBySentinel,
                "the sentinel does not know this primary",
            ))
        })?;
        let client = ::redis::Client::open(format!("redis://{}{host}:{port}", self.auth))?;
        // A sentinel can name the old primary for a moment during a failover: ask the server.
        let mut primary = client
            .get_multiplexed_async_connection_with_config(&timeouts())
            .await?;
        let role: Vec<Value> = ::redis::cmd("ROLE").query_async(&mut primary).await?;
        match role.first() {
            Some(Value::BulkString(r)) if r.as_slice() == b"master" => Ok(client),
            _ => Err(::redis::RedisError::from((
                ::redis::ErrorKind::Io,
                "the server the sentinel names is not a primary (yet)",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_hosts_and_a_primary() {
        let s = parse("redis+sentinel://a:1,b:2,c/main").unwrap();
        assert_eq!(s.sentinels.len(), 3);
        assert_eq!(s.name, "main");
        assert_eq!(s.auth, "");
        let s = parse("redis+sentinel://:secret@a:1/main").unwrap();
        assert_eq!(s.auth, ":secret@");
        for bad in [
            "redis://a:1/main",
            "redis+sentinel://a:1",
            "redis+sentinel://a:1/",
            "redis+sentinel://a:x/main",
            "redis+sentinel://:1/main",
            "redis+sentinel://a:1/ma/in",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
