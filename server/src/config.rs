//! Configuration: defaults, overridden by an optional TOML file, overridden by environment
//! variables and command-line flags (clap merges those two; a flag wins over its variable).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

/// Everything the server can be told. Built by [`ServeArgs::resolve`] or [`Config::default`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Run the chapter's demo feeds (`stock_update`, `news`).
    pub demo: bool,
    /// Largest inbound WebSocket frame or HTTP body, in bytes.
    pub max_frame_bytes: usize,
    /// How often the server pings each WebSocket.
    pub ping_interval: Duration,
    /// A WebSocket that sends nothing (no pong, no frame) for this long is closed.
    pub ping_timeout: Duration,
    /// How often SSE streams get a `ping` event.
    pub sse_ping_interval: Duration,
    /// Bytes a connection may have queued for sending before it is dropped as a slow consumer.
    pub outbound_queue_bytes: usize,
    /// Messages of history kept per room, for recovery after a reconnect.
    pub history_size: usize,
    /// How long a room's history is kept.
    pub history_ttl: Duration,
    /// How long shutdown waits for connections to close.
    pub shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            demo: false,
            max_frame_bytes: herald_protocol::limits::MAX_FRAME_BYTES,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(30),
            sse_ping_interval: Duration::from_secs(30),
            outbound_queue_bytes: 1024 * 1024,
            history_size: 100,
            history_ttl: Duration::from_secs(300),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Flags of `herald serve`; each may also come from its environment variable or the TOML file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below (names in snake_case, durations as "30s").
    #[arg(long, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "HERALD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Run the chapter's demo feeds: stock_update every 2 s, news every 30 s.
    #[arg(long, env = "HERALD_DEMO")]
    pub demo: bool,
    /// Largest inbound frame or HTTP body in bytes [default: 65536].
    #[arg(long, env = "HERALD_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Interval between WebSocket pings, e.g. "10s" [default: 10s].
    #[arg(long, env = "HERALD_PING_INTERVAL", value_parser = parse_duration)]
    pub ping_interval: Option<Duration>,
    /// Close a WebSocket silent for this long, e.g. "30s" [default: 30s].
    #[arg(long, env = "HERALD_PING_TIMEOUT", value_parser = parse_duration)]
    pub ping_timeout: Option<Duration>,
    /// Interval between SSE ping events [default: 30s].
    #[arg(long, env = "HERALD_SSE_PING_INTERVAL", value_parser = parse_duration)]
    pub sse_ping_interval: Option<Duration>,
    /// Bytes queued for one connection before it is dropped as a slow consumer [default: 1048576].
    #[arg(long, env = "HERALD_OUTBOUND_QUEUE_BYTES")]
    pub outbound_queue_bytes: Option<usize>,
    /// Messages of history kept per room [default: 100].
    #[arg(long, env = "HERALD_HISTORY_SIZE")]
    pub history_size: Option<usize>,
    /// How long room history is kept [default: 5m].
    #[arg(long, env = "HERALD_HISTORY_TTL", value_parser = parse_duration)]
    pub history_ttl: Option<Duration>,
    /// How long shutdown waits for connections to close [default: 10s].
    #[arg(long, env = "HERALD_SHUTDOWN_TIMEOUT", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,
}

/// The TOML file's shape: the same settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    demo: Option<bool>,
    max_frame_bytes: Option<usize>,
    ping_interval: Option<String>,
    ping_timeout: Option<String>,
    sse_ping_interval: Option<String>,
    outbound_queue_bytes: Option<usize>,
    history_size: Option<usize>,
    history_ttl: Option<String>,
    shutdown_timeout: Option<String>,
}

/// Parses "30s", "1m30s", "250ms", or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

fn file_duration(value: Option<String>, name: &str) -> anyhow::Result<Option<Duration>> {
    value
        .map(|v| parse_duration(&v).map_err(anyhow::Error::msg))
        .transpose()
        .with_context(|| format!("setting `{name}` in the config file"))
}

impl ServeArgs {
    /// Merges defaults, the TOML file (if any), and flags/environment, in rising precedence.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        let config = Config {
            listen: self.listen.or(file.listen).unwrap_or(d.listen),
            demo: self.demo || file.demo.unwrap_or(d.demo),
            max_frame_bytes: self
                .max_frame_bytes
                .or(file.max_frame_bytes)
                .unwrap_or(d.max_frame_bytes),
            ping_interval: self
                .ping_interval
                .or(file_duration(file.ping_interval, "ping_interval")?)
                .unwrap_or(d.ping_interval),
            ping_timeout: self
                .ping_timeout
                .or(file_duration(file.ping_timeout, "ping_timeout")?)
                .unwrap_or(d.ping_timeout),
            sse_ping_interval: self
                .sse_ping_interval
                .or(file_duration(file.sse_ping_interval, "sse_ping_interval")?)
                .unwrap_or(d.sse_ping_interval),
            outbound_queue_bytes: self
                .outbound_queue_bytes
                .or(file.outbound_queue_bytes)
                .unwrap_or(d.outbound_queue_bytes),
            history_size: self
                .history_size
                .or(file.history_size)
                .unwrap_or(d.history_size),
            history_ttl: self
                .history_ttl
                .or(file_duration(file.history_ttl, "history_ttl")?)
                .unwrap_or(d.history_ttl),
            shutdown_timeout: self
                .shutdown_timeout
                .or(file_duration(file.shutdown_timeout, "shutdown_timeout")?)
                .unwrap_or(d.shutdown_timeout),
        };
        config.check()?;
        Ok(config)
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

impl Config {
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_frame_bytes >= 1024,
            "max_frame_bytes must be at least 1024"
        );
        anyhow::ensure!(
            !self.ping_interval.is_zero(),
            "ping_interval must be above zero"
        );
        anyhow::ensure!(
            self.ping_timeout > self.ping_interval,
            "ping_timeout must be longer than ping_interval"
        );
        anyhow::ensure!(
            !self.sse_ping_interval.is_zero(),
            "sse_ping_interval must be above zero"
        );
        anyhow::ensure!(
            self.outbound_queue_bytes >= self.max_frame_bytes,
            "outbound_queue_bytes must be at least max_frame_bytes"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_both_forms() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn file_is_overridden_by_flags() {
        let dir = std::env::temp_dir().join(format!("herald-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("herald.toml");
        std::fs::write(
            &path,
            "ping_timeout = \"45s\"\nhistory_size = 7\nlisten = \"127.0.0.1:9000\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.ping_timeout, Duration::from_secs(45));
        assert_eq!(config.history_size, 7);
        assert_eq!(config.listen.port(), 0);
        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(args.resolve().is_err());
    }
}
