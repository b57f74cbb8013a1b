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
    /// Data streams declared up front (capability `streams`; the file's `[[streams]]` tables).
    pub streams: Vec<herald_protocol::stream::StreamSpec>,
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
    /// How long a connection may stay over `outbound_queue_bytes` before it is dropped as a slow
    /// consumer. A connection that reaches 16 × `outbound_queue_bytes` is dropped at once.
    pub slow_consumer_grace: Duration,
    /// Messages of history kept per room, for recovery after a reconnect.
    pub history_size: usize,
    /// How long a room's history is kept.
    pub history_ttl: Duration,
    /// How long shutdown waits for connections to close.
    pub shutdown_timeout: Duration,
    /// HS256/384/512 shared secret; setting it (or `jwt_public_key`) turns authentication on.
    pub jwt_secret: Option<Secret>,
    /// PEM file with an RSA or EC public key (RS*/PS*/ES* tokens); turns authentication on.
    pub jwt_public_key: Option<PathBuf>,
    /// Accepted `aud` values (comma-separated); when set, tokens must carry one of them.
    pub jwt_audience: Option<String>,
    /// Accepted `iss` values (comma-separated); when set, tokens must carry one of them.
    pub jwt_issuer: Option<String>,
    /// Clock skew allowed on `exp`/`nbf`; a connection is ended at `exp` plus this.
    pub jwt_leeway: Duration,
    /// Key required by `POST /notifications` and `POST /updates`; without one they accept
    /// loopback clients only.
    pub api_key: Option<Secret>,
    /// Origins allowed to open WebSockets and streams and to read responses; empty: any.
    pub allowed_origins: Vec<String>,
    /// Connection attempts (upgrades and streams) per client IP per minute; 0 turns it off.
    pub connect_rate: u32,
    /// Connection attempts a client IP may make at once before `connect_rate` applies.
    pub connect_burst: u32,
    /// Apply the connection-attempt limit to loopback clients too (they are exempt otherwise).
    pub rate_limit_loopback: bool,
    /// Inbound WebSocket messages per second per connection; 0 turns the check off.
    pub message_rate: u32,
    /// Messages a connection may send at once before `message_rate` applies.
    pub message_burst: u32,
    /// Open connections (WebSocket and SSE) the node accepts; more get 503.
    pub max_connections: usize,
    /// Connections one user may hold at once; 0 means no limit.
    pub max_connections_per_user: usize,
    /// Where nodes meet: `None` keeps everything in this process (the default); a
    /// `redis://host:port/db` URL shares rooms, presence, history and delivery with every node
    /// using the same Redis and prefix.
    pub broker: Option<String>,
    /// Prefix of every Redis key and internal channel; nodes with the same prefix form a cluster.
    pub redis_prefix: String,
    /// Prefix of the backend topics (`room.messages`, `user.notifications`, `system.events`).
    pub topic_prefix: String,
    /// A node that stops renewing its heartbeat for this long is dead; its members leave.
    pub presence_ttl: Duration,
    /// This node's name in the cluster (random when not given).
    pub node_id: Option<String>,
    /// Messages (chat, typing, private, events) the cluster broker may hold while Redis is slow;
    /// past it new messages are shed and counted (`herald_broker_shed_total`).
    pub broker_queue: usize,
    /// Rooms up to this many members send core clients `user_joined`/`user_left` with the whole
    /// member list; in larger rooms only clients that asked for presence diffs hear of joins and
    /// leaves (a full list per join would cost O(members²) bytes to fill the room).
    pub presence_full_list_max: usize,
    /// A reverse proxy is in front: every request then arrives from the proxy's address, so a
    /// loopback peer proves nothing and is never trusted to publish without the API key.
    pub behind_proxy: bool,
    /// Trust loopback clients to publish without an API key even when the server listens beyond
    /// loopback. Without it they are trusted only on a loopback-only listen with no proxy.
    pub trust_loopback_publish: bool,
    /// How long a client may take to send a request's headers; hyper also starts this clock
    /// while a kept-alive connection waits for its next request. `None` turns it off.
    pub header_read_timeout: Option<Duration>,
    /// A kept-alive HTTP connection that is not a WebSocket or an SSE stream and has no request
    /// in progress is closed after this long. `None` turns it off.
    pub keep_alive_timeout: Option<Duration>,
    /// Accepted TCP connections that have not (yet) become a WebSocket or an SSE stream; past
    /// this many, new connections are closed at once. 0 means no cap.
    pub max_unadmitted_connections: usize,
    /// STUN and TURN URLs (`stun:`, `stuns:`, `turn:`, `turns:`) signaling clients are told to
    /// use (capability `signaling`).
    pub ice_servers: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`); with it,
    /// `GET /turn-credentials` hands out credentials for the `turn:` URLs of `ice_servers`.
    pub turn_secret: Option<Secret>,
    /// How long TURN credentials stay valid.
    pub turn_ttl: Duration,
    /// Whether the long-polling transport (`/poll`) is served and announced.
    pub long_polling: bool,
    /// How long a poll with nothing to answer is held before it is answered empty.
    pub poll_hold: Duration,
    /// A polling session without any request for this long is ended (its user leaves).
    pub poll_idle_timeout: Duration,
    /// Once a held poll has a frame, how long it waits for more before it answers (fewer
    /// requests per frame in busy rooms, for that much latency); zero answers at once.
    pub poll_linger: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            streams: Vec::new(),
            demo: false,
            max_frame_bytes: herald_protocol::limits::MAX_FRAME_BYTES,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(30),
            sse_ping_interval: Duration::from_secs(30),
            outbound_queue_bytes: 1024 * 1024,
            slow_consumer_grace: Duration::from_secs(3),
            history_size: 100,
            history_ttl: Duration::from_secs(300),
            shutdown_timeout: Duration::from_secs(10),
            jwt_secret: None,
            jwt_public_key: None,
            jwt_audience: None,
            jwt_issuer: None,
            jwt_leeway: Duration::from_secs(60),
            api_key: None,
            allowed_origins: Vec::new(),
            connect_rate: 300,
            connect_burst: 100,
            rate_limit_loopback: false,
            message_rate: 50,
            message_burst: 100,
            max_connections: default_max_connections(),
            max_connections_per_user: 20,
            broker: None,
            redis_prefix: "herald".to_owned(),
            topic_prefix: String::new(),
            presence_ttl: Duration::from_secs(60),
            node_id: None,
            broker_queue: 100_000,
            presence_full_list_max: 250,
            behind_proxy: false,
            trust_loopback_publish: false,
            header_read_timeout: Some(Duration::from_secs(10)),
            keep_alive_timeout: Some(Duration::from_secs(5)),
            max_unadmitted_connections: 1024,
            ice_servers: Vec::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(3600),
            long_polling: true,
            poll_hold: Duration::from_secs(25),
            poll_idle_timeout: Duration::from_secs(60),
            poll_linger: Duration::ZERO,
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
    /// How long a connection may stay over its queue size before it is dropped [default: 3s].
    #[arg(long, env = "HERALD_SLOW_CONSUMER_GRACE", value_parser = parse_duration)]
    pub slow_consumer_grace: Option<Duration>,
    /// Messages of history kept per room [default: 100].
    #[arg(long, env = "HERALD_HISTORY_SIZE")]
    pub history_size: Option<usize>,
    /// How long room history is kept [default: 5m].
    #[arg(long, env = "HERALD_HISTORY_TTL", value_parser = parse_duration)]
    pub history_ttl: Option<Duration>,
    /// How long shutdown waits for connections to close [default: 10s].
    #[arg(long, env = "HERALD_SHUTDOWN_TIMEOUT", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// Shared secret for HS256 tokens; turns authentication on.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file with the RSA or EC public key for RS256/ES256 tokens; turns authentication on.
    #[arg(long, env = "HERALD_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// Required token audience (`aud`); comma-separated for several.
    #[arg(long, env = "HERALD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Required token issuer (`iss`); comma-separated for several.
    #[arg(long, env = "HERALD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Clock skew allowed on token expiry [default: 60s].
    #[arg(long, env = "HERALD_JWT_LEEWAY", value_parser = parse_duration)]
    pub jwt_leeway: Option<Duration>,
    /// Key for POST /notifications and /updates (Bearer or X-API-Key); without it they accept
    /// loopback clients only.
    #[arg(long, env = "HERALD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Comma-separated origins allowed for WebSockets, SSE and CORS [default: any].
    #[arg(long, env = "HERALD_ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Connection attempts per client IP per minute, 0 = off [default: 300].
    #[arg(long, env = "HERALD_CONNECT_RATE")]
    pub connect_rate: Option<u32>,
    /// Connection attempts a client IP may burst [default: 100].
    #[arg(long, env = "HERALD_CONNECT_BURST")]
    pub connect_burst: Option<u32>,
    /// Apply the connection-attempt limit to loopback clients too.
    #[arg(long, env = "HERALD_RATE_LIMIT_LOOPBACK")]
    pub rate_limit_loopback: bool,
    /// Inbound WebSocket messages per second per connection, 0 = off [default: 50].
    #[arg(long, env = "HERALD_MESSAGE_RATE")]
    pub message_rate: Option<u32>,
    /// Messages a connection may burst [default: 100].
    #[arg(long, env = "HERALD_MESSAGE_BURST")]
    pub message_burst: Option<u32>,
    /// Open connections accepted [default: RLIMIT_NOFILE soft limit - 64].
    #[arg(long, env = "HERALD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections one user may hold, 0 = no limit [default: 20].
    #[arg(long, env = "HERALD_MAX_CONNECTIONS_PER_USER")]
    pub max_connections_per_user: Option<usize>,
    /// `memory` (default: one node, nothing else to run) or `redis://host:port[/db]` to share
    /// rooms, presence, history and delivery with other nodes.
    #[arg(long, env = "HERALD_BROKER")]
    pub broker: Option<String>,
    /// Prefix of Redis keys and internal channels; nodes sharing it form one cluster
    /// [default: herald].
    #[arg(long, env = "HERALD_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Prefix of the backend topics room.messages, user.notifications, system.events
    /// [default: none].
    #[arg(long, env = "HERALD_TOPIC_PREFIX")]
    pub topic_prefix: Option<String>,
    /// A node silent this long is dead and its members leave presence [default: 60s].
    #[arg(long, env = "HERALD_PRESENCE_TTL", value_parser = parse_duration)]
    pub presence_ttl: Option<Duration>,
    /// This node's name in the cluster [default: random].
    #[arg(long, env = "HERALD_NODE_ID")]
    pub node_id: Option<String>,
    /// Messages the cluster broker may hold while Redis is slow; more are shed
    /// [default: 100000].
    #[arg(long, env = "HERALD_BROKER_QUEUE")]
    pub broker_queue: Option<usize>,
    /// Largest room whose core (full-list) clients hear of joins and leaves [default: 250].
    #[arg(long, env = "HERALD_PRESENCE_FULL_LIST_MAX")]
    pub presence_full_list_max: Option<usize>,
    /// A reverse proxy is in front of this server: loopback clients are then not trusted to
    /// publish (set an API key).
    #[arg(long, env = "HERALD_BEHIND_PROXY")]
    pub behind_proxy: bool,
    /// Let loopback clients publish without an API key even on a non-loopback listen address.
    #[arg(long, env = "HERALD_TRUST_LOOPBACK_PUBLISH")]
    pub trust_loopback_publish: bool,
    /// Time allowed to send a request's headers (and to start the next request on a kept-alive
    /// connection), "0" = off [default: 10s].
    #[arg(long, env = "HERALD_HEADER_READ_TIMEOUT", value_parser = parse_duration)]
    pub header_read_timeout: Option<Duration>,
    /// Close an idle kept-alive HTTP connection after this long, "0" = off [default: 5s].
    #[arg(long, env = "HERALD_KEEP_ALIVE_TIMEOUT", value_parser = parse_duration)]
    pub keep_alive_timeout: Option<Duration>,
    /// Accepted connections not yet a WebSocket or SSE stream, 0 = no cap [default: 1024].
    #[arg(long, env = "HERALD_MAX_UNADMITTED_CONNECTIONS")]
    pub max_unadmitted_connections: Option<usize>,
    /// Comma-separated STUN/TURN URLs signaling clients get in `peers`, e.g.
    /// "stun:stun.example.org:3478,turn:turn.example.org:3478?transport=udp" [default: none].
    #[arg(long, env = "HERALD_ICE_SERVERS")]
    pub ice_servers: Option<String>,
    /// Secret shared with the TURN server (coturn `static-auth-secret`); enables
    /// GET /turn-credentials.
    #[arg(long, env = "HERALD_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// How long TURN credentials are valid, e.g. "1h" [default: 1h].
    #[arg(long, env = "HERALD_TURN_TTL", value_parser = parse_duration)]
    pub turn_ttl: Option<Duration>,
    /// Do not serve the long-polling transport (/poll).
    #[arg(long, env = "HERALD_NO_LONG_POLLING")]
    pub no_long_polling: bool,
    /// How long a poll with nothing to answer is held, e.g. "25s" [default: 25s].
    #[arg(long, env = "HERALD_POLL_HOLD", value_parser = parse_duration)]
    pub poll_hold: Option<Duration>,
    /// End a polling session that makes no request for this long, e.g. "60s" [default: 60s].
    #[arg(long, env = "HERALD_POLL_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub poll_idle_timeout: Option<Duration>,
    /// Once a held poll has a frame, wait this long for more before answering, e.g. "20ms"
    /// [default: 0, answer at once].
    #[arg(long, env = "HERALD_POLL_LINGER", value_parser = parse_duration)]
    pub poll_linger: Option<Duration>,
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
    slow_consumer_grace: Option<String>,
    history_size: Option<usize>,
    history_ttl: Option<String>,
    broker: Option<String>,
    redis_prefix: Option<String>,
    topic_prefix: Option<String>,
    presence_ttl: Option<String>,
    node_id: Option<String>,
    broker_queue: Option<usize>,
    presence_full_list_max: Option<usize>,
    shutdown_timeout: Option<String>,
    jwt_secret: Option<String>,
    jwt_public_key: Option<PathBuf>,
    jwt_audience: Option<String>,
    jwt_issuer: Option<String>,
    jwt_leeway: Option<String>,
    api_key: Option<String>,
    allowed_origins: Option<Vec<String>>,
    connect_rate: Option<u32>,
    connect_burst: Option<u32>,
    rate_limit_loopback: Option<bool>,
    message_rate: Option<u32>,
    message_burst: Option<u32>,
    max_connections: Option<usize>,
    max_connections_per_user: Option<usize>,
    behind_proxy: Option<bool>,
    trust_loopback_publish: Option<bool>,
    header_read_timeout: Option<String>,
    keep_alive_timeout: Option<String>,
    max_unadmitted_connections: Option<usize>,
    ice_servers: Option<Vec<String>>,
    turn_secret: Option<String>,
    turn_ttl: Option<String>,
    streams: Option<Vec<herald_protocol::stream::StreamSpec>>,
    long_polling: Option<bool>,
    poll_hold: Option<String>,
    poll_idle_timeout: Option<String>,
    poll_linger: Option<String>,
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
            streams: file.streams.unwrap_or_default(),
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
            slow_consumer_grace: self
                .slow_consumer_grace
                .or(file_duration(
                    file.slow_consumer_grace,
                    "slow_consumer_grace",
                )?)
                .unwrap_or(d.slow_consumer_grace),
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
            jwt_secret: self.jwt_secret.or(file.jwt_secret).map(Secret::new),
            jwt_public_key: self.jwt_public_key.or(file.jwt_public_key),
            jwt_audience: self.jwt_audience.or(file.jwt_audience),
            jwt_issuer: self.jwt_issuer.or(file.jwt_issuer),
            jwt_leeway: self
                .jwt_leeway
                .or(file_duration(file.jwt_leeway, "jwt_leeway")?)
                .unwrap_or(d.jwt_leeway),
            api_key: self.api_key.or(file.api_key).map(Secret::new),
            allowed_origins: match self.allowed_origins {
                Some(list) => parse_origins(list.split(',')),
                None => parse_origins(file.allowed_origins.unwrap_or_default()),
            },
            connect_rate: self
                .connect_rate
                .or(file.connect_rate)
                .unwrap_or(d.connect_rate),
            connect_burst: self
                .connect_burst
                .or(file.connect_burst)
                .unwrap_or(d.connect_burst),
            rate_limit_loopback: self.rate_limit_loopback
                || file.rate_limit_loopback.unwrap_or(d.rate_limit_loopback),
            message_rate: self
                .message_rate
                .or(file.message_rate)
                .unwrap_or(d.message_rate),
            message_burst: self
                .message_burst
                .or(file.message_burst)
                .unwrap_or(d.message_burst),
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            max_connections_per_user: self
                .max_connections_per_user
                .or(file.max_connections_per_user)
                .unwrap_or(d.max_connections_per_user),
            broker: self
                .broker
                .or(file.broker)
                .filter(|b| b != "memory" && !b.is_empty()),
            redis_prefix: self
                .redis_prefix
                .or(file.redis_prefix)
                .unwrap_or(d.redis_prefix),
            topic_prefix: self
                .topic_prefix
                .or(file.topic_prefix)
                .unwrap_or(d.topic_prefix),
            presence_ttl: self
                .presence_ttl
                .or(file_duration(file.presence_ttl, "presence_ttl")?)
                .unwrap_or(d.presence_ttl),
            node_id: self.node_id.or(file.node_id),
            broker_queue: self
                .broker_queue
                .or(file.broker_queue)
                .unwrap_or(d.broker_queue),
            presence_full_list_max: self
                .presence_full_list_max
                .or(file.presence_full_list_max)
                .unwrap_or(d.presence_full_list_max),
            behind_proxy: self.behind_proxy || file.behind_proxy.unwrap_or(d.behind_proxy),
            trust_loopback_publish: self.trust_loopback_publish
                || file
                    .trust_loopback_publish
                    .unwrap_or(d.trust_loopback_publish),
            header_read_timeout: optional_timeout(
                self.header_read_timeout.or(file_duration(
                    file.header_read_timeout,
                    "header_read_timeout",
                )?),
                d.header_read_timeout,
            ),
            keep_alive_timeout: optional_timeout(
                self.keep_alive_timeout.or(file_duration(
                    file.keep_alive_timeout,
                    "keep_alive_timeout",
                )?),
                d.keep_alive_timeout,
            ),
            max_unadmitted_connections: self
                .max_unadmitted_connections
                .or(file.max_unadmitted_connections)
                .unwrap_or(d.max_unadmitted_connections),
            ice_servers: match self.ice_servers {
                Some(list) => split_urls(list.split(',')),
                None => split_urls(file.ice_servers.unwrap_or_default()),
            },
            turn_secret: self.turn_secret.or(file.turn_secret).map(Secret::new),
            turn_ttl: self
                .turn_ttl
                .or(file_duration(file.turn_ttl, "turn_ttl")?)
                .unwrap_or(d.turn_ttl),
            long_polling: !self.no_long_polling && file.long_polling.unwrap_or(d.long_polling),
            poll_hold: self
                .poll_hold
                .or(file_duration(file.poll_hold, "poll_hold")?)
                .unwrap_or(d.poll_hold),
            poll_idle_timeout: self
                .poll_idle_timeout
                .or(file_duration(file.poll_idle_timeout, "poll_idle_timeout")?)
                .unwrap_or(d.poll_idle_timeout),
            poll_linger: self
                .poll_linger
                .or(file_duration(file.poll_linger, "poll_linger")?)
                .unwrap_or(d.poll_linger),
        };
        config.check()?;
        Ok(config)
    }
}

/// A URL list: trimmed, empties dropped.
fn split_urls<S: AsRef<str>>(list: impl IntoIterator<Item = S>) -> Vec<String> {
    list.into_iter()
        .map(|u| u.as_ref().trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect()
}

/// A timeout setting: given as zero it is off, not given it is the default.
fn optional_timeout(given: Option<Duration>, default: Option<Duration>) -> Option<Duration> {
    match given {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None => default,
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
        if let Some(url) = &self.broker {
            anyhow::ensure!(
                url.starts_with("redis://")
                    || url.starts_with("redis+sentinel://")
                    || url.starts_with("redis+cluster://"),
                "broker must be `memory`, a redis:// URL, a redis+sentinel:// URL or a redis+cluster:// URL (TLS, rediss://, is not built in), not {url:?}"
            );
        }
        if let Some(node_id) = &self.node_id {
            anyhow::ensure!(
                !node_id.is_empty()
                    && node_id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "node_id must be letters, digits, '-', '_' or '.'"
            );
        }
        anyhow::ensure!(
            self.presence_ttl >= Duration::from_secs(1),
            "presence_ttl must be at least 1s"
        );
        anyhow::ensure!(
            !self.redis_prefix.is_empty() && !self.redis_prefix.contains(['\n', ' ']),
            "redis_prefix must be a non-empty word"
        );
        if let Some(secret) = &self.jwt_secret {
            anyhow::ensure!(!secret.expose().is_empty(), "jwt_secret is empty");
        }
        if let Some(key) = &self.api_key {
            anyhow::ensure!(!key.expose().is_empty(), "api_key is empty");
        }
        anyhow::ensure!(
            self.jwt_leeway <= Duration::from_secs(3600),
            "jwt_leeway must be at most 1h"
        );
        anyhow::ensure!(
            !(self.jwt_secret.is_some() && self.jwt_public_key.is_some()),
            "set either jwt_secret or jwt_public_key, not both"
        );
        anyhow::ensure!(
            self.connect_rate == 0 || self.connect_burst > 0,
            "connect_burst must be above zero when connect_rate is set"
        );
        anyhow::ensure!(
            self.message_rate == 0 || self.message_burst > 0,
            "message_burst must be above zero when message_rate is set"
        );
        anyhow::ensure!(
            self.max_connections > 0,
            "max_connections must be above zero"
        );
        anyhow::ensure!(
            !(self.behind_proxy && self.trust_loopback_publish),
            "behind_proxy and trust_loopback_publish contradict each other: behind a proxy every \
             request arrives from the proxy, often over loopback; set an API key instead"
        );
        for url in &self.ice_servers {
            anyhow::ensure!(
                ["stun:", "stuns:", "turn:", "turns:"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme))
                    && url.len() <= herald_protocol::limits::MAX_URL_CHARS as usize
                    && !url.contains(char::is_whitespace),
                "ice_servers: {url:?} is not a stun:, stuns:, turn: or turns: URL"
            );
        }
        if let Some(secret) = &self.turn_secret {
            anyhow::ensure!(!secret.expose().is_empty(), "turn_secret is empty");
            anyhow::ensure!(
                !self.turn_urls().is_empty(),
                "turn_secret is set but ice_servers lists no turn: or turns: URL to use it with"
            );
        }
        anyhow::ensure!(
            self.turn_ttl >= Duration::from_secs(60)
                && self.turn_ttl <= Duration::from_secs(7 * 86_400),
            "turn_ttl must be between 1m and 7 days"
        );
        anyhow::ensure!(
            self.poll_hold >= Duration::from_millis(10)
                && self.poll_hold <= Duration::from_secs(300),
            "poll_hold must be between 10ms and 5m"
        );
        anyhow::ensure!(
            self.poll_idle_timeout > self.poll_hold,
            "poll_idle_timeout must be longer than poll_hold"
        );
        anyhow::ensure!(
            self.poll_linger < self.poll_hold,
            "poll_linger must be shorter than poll_hold"
        );
        Ok(())
    }
}

impl Config {
    /// The `turn:` and `turns:` URLs of `ice_servers`: the ones TURN credentials are for.
    pub fn turn_urls(&self) -> Vec<String> {
        self.ice_servers
            .iter()
            .filter(|u| u.starts_with("turn:") || u.starts_with("turns:"))
            .cloned()
            .collect()
    }
}

/// A secret setting (JWT secret, API key): kept out of `Debug` output and logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// File descriptors kept free for the listener, logs, outbound connections and the like.
const FD_HEADROOM: usize = 64;

/// The default connection cap: the soft `RLIMIT_NOFILE` less some headroom.
pub fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        if lim.rlim_cur == libc::RLIM_INFINITY {
            1 << 20
        } else {
            usize::try_from(lim.rlim_cur)
                .unwrap_or(1 << 20)
                .min(1 << 20)
        }
    } else {
        1024
    };
    soft.saturating_sub(FD_HEADROOM).max(16)
}

/// Normalises an origin list (trimmed, no trailing slash, lower case, empties dropped).
pub fn parse_origins<S: AsRef<str>>(list: impl IntoIterator<Item = S>) -> Vec<String> {
    list.into_iter()
        .map(|o| o.as_ref().trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|o| !o.is_empty())
        .collect()
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
    fn connection_edge_settings_default_parse_and_turn_off() {
        let d = Config::default();
        assert_eq!(d.header_read_timeout, Some(Duration::from_secs(10)));
        assert_eq!(d.keep_alive_timeout, Some(Duration::from_secs(5)));
        assert_eq!(d.max_unadmitted_connections, 1024);
        assert!(!d.behind_proxy && !d.trust_loopback_publish);
        let dir = std::env::temp_dir().join(format!("herald-edges-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("herald.toml");
        std::fs::write(
            &path,
            "header_read_timeout = \"3s\"\nkeep_alive_timeout = \"0\"\n\
             max_unadmitted_connections = 7\nbehind_proxy = true\n",
        )
        .unwrap();
        let config = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.header_read_timeout, Some(Duration::from_secs(3)));
        assert_eq!(config.keep_alive_timeout, None, "0 turns it off");
        assert_eq!(config.max_unadmitted_connections, 7);
        assert!(config.behind_proxy);
        // Trusting loopback behind a proxy is refused, with both names in the error.
        let err = ServeArgs {
            config: Some(path),
            trust_loopback_publish: true,
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("behind_proxy") && err.contains("trust_loopback_publish"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ice_servers_and_turn_settings_parse_and_are_checked() {
        let args = |ice: &str, secret: Option<&str>| ServeArgs {
            ice_servers: Some(ice.to_owned()),
            turn_secret: secret.map(str::to_owned),
            ..Default::default()
        };
        let config = args(
            " stun:s.example:3478 , turn:t.example:3478?transport=udp,,turns:t.example:5349",
            Some("s3cret"),
        )
        .resolve()
        .unwrap();
        assert_eq!(config.ice_servers.len(), 3);
        assert_eq!(
            config.turn_urls(),
            ["turn:t.example:3478?transport=udp", "turns:t.example:5349"]
        );
        assert_eq!(config.turn_ttl, Duration::from_secs(3600));
        let err = args("https://stun.example", None)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("ice_servers"), "{err}");
        let err = args("stun:s.example", Some("s3cret"))
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("turn_secret"), "{err}");
        let err = ServeArgs {
            turn_ttl: Some(Duration::from_secs(5)),
            ..Default::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(err.contains("turn_ttl"), "{err}");
        // The same settings from the TOML file.
        let dir = std::env::temp_dir().join(format!("herald-turn-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("herald.toml");
        std::fs::write(
            &path,
            "ice_servers = [\"stun:s.example\", \"turn:t.example\"]\n\
             turn_secret = \"from-file\"\nturn_ttl = \"2h\"\n",
        )
        .unwrap();
        let config = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.ice_servers, ["stun:s.example", "turn:t.example"]);
        assert_eq!(config.turn_secret.unwrap().expose(), "from-file");
        assert_eq!(config.turn_ttl, Duration::from_secs(7200));
        let _ = std::fs::remove_dir_all(&dir);
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
