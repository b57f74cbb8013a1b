//! Herald: a real-time API server. See ARCHITECTURE.md for the map and the layers.
//!
//! This is the composition root: [`build`] makes the node from its parts (token verifier,
//! broker, capabilities) and [`start`] binds the listener and runs the server in the
//! background; the `herald` binary is a thin CLI over it.

// Layer 1: leaves.
pub mod auth;
pub mod config;
pub mod ids;
pub mod inbound;
pub mod limits;
pub mod lttb;
pub mod metrics;
pub mod sanitize;
pub mod windows;
pub mod wire;
// Layer 2.
pub mod history;
pub mod session;
// Layers 3 and 4.
pub mod broker;
pub mod hub;
// Layer 5.
pub mod node;
// Layer 6: edges.
pub mod admission;
pub mod capability;
mod demo;
pub mod http;
pub mod transport;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use node::Node;

use session::CloseReason;

/// A server running in the background.
pub struct Running {
    /// The address it is bound to (with the real port when 0 was asked).
    pub addr: SocketAddr,
    /// Its node, for inspection.
    pub node: Arc<Node>,
    stop: CancellationToken,
    accept: JoinHandle<()>,
}

/// Makes a node from its configuration: the token verifier (the key file is read here, once),
/// the broker the configuration names, and every capability. Errors are configuration errors.
pub fn build(config: Config) -> anyhow::Result<Arc<Node>> {
    let auth = auth::Auth::from_config(&config)?;
    auth::log_posture(&config, auth.as_ref());
    let broker: Box<dyn broker::Broker> = match &config.broker {
        Some(url) if url.starts_with(broker::redis_cluster::SCHEME) => {
            Box::new(broker::redis_cluster::new(&config, url)?)
        }
        Some(url) => Box::new(broker::redis::Redis::new(&config, url)?),
        None => Box::new(broker::memory::Memory::from_config(&config)),
    };
    let node = Node::new(config, auth, broker, capability::all());
    node.limits.log_posture(&node.config);
    if let (Some(url), true) = (&node.config.broker, node.config.long_polling) {
        // Polls and sends that land on another node reach the session's node through it.
        let id = node
            .config
            .node_id
            .clone()
            .unwrap_or_else(|| ids::random_token(10));
        let handler = transport::polling::relay_handler(Arc::downgrade(&node));
        let source = if url.starts_with(broker::redis_cluster::SCHEME) {
            broker::redis_cluster::source(url)?
        } else {
            broker::redis::source(url)?
        };
        let relay = broker::relay::Relay::start(source, &node.config.redis_prefix, id, handler)?;
        transport::polling::use_relay(&node, relay);
    }
    Ok(node)
}

/// Binds the listener and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let node = build(config)?;
    start_node(node).await
}

/// Binds the listener and serves with a node made by [`build`].
pub async fn start_node(node: Arc<Node>) -> anyhow::Result<Running> {
    let listener = bind(node.config.listen)?;
    let addr = listener.local_addr()?;
    let demo = node.config.demo;
    if node.broker.health() != broker::Health::Standalone {
        // Give the broker a moment so the first clients already see the whole cluster; a node
        // whose Redis is down still starts, serving alone until it comes.
        let deadline = Instant::now() + Duration::from_secs(5);
        while node.broker.health() != broker::Health::Up && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if node.broker.health() != broker::Health::Up {
            tracing::warn!("starting without the cluster broker; serving this node alone");
        }
    }
    let stop = CancellationToken::new();
    if demo {
        tokio::spawn(demo::run(node.clone(), stop.clone()));
        tokio::spawn(capability::streams::run_demo(node.clone(), stop.clone()));
    }
    tokio::spawn(sweep(node.clone(), stop.clone()));
    tokio::spawn(pinger(node.clone(), stop.clone()));
    let accept = tokio::spawn(accept_loop(listener, node.clone(), stop.clone()));
    Ok(Running {
        addr,
        node,
        stop,
        accept,
    })
}

/// Connections the kernel may hold completed but not yet accepted. The standard library's
/// default (128) overflowed when a few hundred clients connected at once (herald-bench idle:
/// ~100 dropped SYNs per 10,000 connects, each a 1 s retry); the kernel caps this at
/// `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As the standard library does: a restarted server can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn sweep(node: Arc<Node>, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {
                node.hub.sweep();
                node.broker.sweep();
                node.limits.sweep();
            }
        }
    }
}

/// The ping interval is cut into this many slots; each tick serves one slot's sessions.
const PING_SLOTS: u32 = 16;

/// A slot's sessions are pinged this many at a time, the groups spread over the slot's period.
/// Pinging a whole slot at once (625 sessions of 10,000) wrote 625 frames and read 625 pongs in
/// one go, a burst of several milliseconds that every delivery queued behind.
const PING_GROUP: usize = 32;

/// Pings every WebSocket once per ping interval and closes those silent past the timeout. One
/// task for the node instead of a timer in every connection: a connection's task then wakes
/// only for its own traffic, and pings spread over the interval instead of bunching.
async fn pinger(node: Arc<Node>, stop: CancellationToken) {
    let every = (node.config.ping_interval / PING_SLOTS).max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let timeout = node.config.ping_timeout;
    let mut slot = 0u32;
    let mut due: Vec<Arc<session::Session>> = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        node.hub.for_each_session(|session| {
            if session.transport == session::Transport::WebSocket
                && session.ping_slot % PING_SLOTS == slot
            {
                due.push(session.clone());
            }
        });
        slot = (slot + 1) % PING_SLOTS;
        // The groups share the slot's period, leaving the last gap before the next tick.
        let gap = every / (due.len().div_ceil(PING_GROUP) as u32).max(1);
        for (i, group) in due.chunks(PING_GROUP).enumerate() {
            if i > 0 {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(gap) => {}
                }
            }
            for session in group {
                if session.silent_for() > timeout {
                    session.close(CloseReason::Timeout);
                } else {
                    session.ping();
                }
            }
        }
        // Sessions that ended meanwhile are freed here, at most one slot's period late.
        due.clear();
    }
}

async fn accept_loop(listener: TcpListener, node: Arc<Node>, stop: CancellationToken) {
    // Accepted connections that are not a WebSocket or an SSE stream (yet): slowloris clients,
    // idle keep-alives, requests in progress. They count against no other limit, so they have
    // their own cap.
    let unadmitted = Arc::new(AtomicUsize::new(0));
    let cap = node.config.max_unadmitted_connections;
    if node.config.api_key.is_none() && !http::loopback_trusted(&node.config) {
        tracing::warn!(
            "no API key, and loopback is not trusted (the listen address is not loopback-only, \
             or --behind-proxy is set): POST /notifications and /updates refuse everyone (set \
             HERALD_API_KEY)"
        );
    }
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if cap > 0 && unadmitted.load(Ordering::Acquire) >= cap {
            node.metrics.unadmitted_refused.inc();
            tracing::debug!(%peer, "too many connections not yet admitted: closing");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn_state = http::Conn::new(unadmitted.clone());
        tokio::spawn(serve_connection(
            stream,
            peer,
            node.clone(),
            conn_state,
            stop.clone(),
        ));
    }
}

/// Serves one accepted connection's HTTP until it ends, becomes a WebSocket (whose task then
/// owns the socket), is idle past the keep-alive timeout, or is killed.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    node: Arc<Node>,
    conn_state: Arc<http::Conn>,
    stop: CancellationToken,
) {
    use std::os::fd::AsRawFd;
    let _closed = conn_state.closed.clone().drop_guard();
    let fd = stream.as_raw_fd();
    let header_timeout = node.config.header_read_timeout;
    let keep_alive = node.config.keep_alive_timeout;
    let service = {
        let node = node.clone();
        let conn_state = conn_state.clone();
        service_fn(move |req| http::route(node.clone(), req, peer, conn_state.clone()))
    };
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    // When to look at the connection's idleness next.
    let first_check = keep_alive.unwrap_or(Duration::MAX);
    let idle_in = |wait: Duration| {
        transport::woken::WhenWoken::new(tokio::time::sleep(wait.min(Duration::from_secs(86_400))))
    };
    let mut idle_check = idle_in(first_check);
    let mut stopping = false;
    // Polled only when they fire, not on every wake of the connection (see `WhenWoken`).
    let mut stopped = transport::woken::WhenWoken::new(stop.clone().cancelled_owned());
    let mut killed = transport::woken::WhenWoken::new(conn_state.kill.clone().cancelled_owned());
    loop {
        // Biased: the connection first; the other arms are checked only when it is pending.
        tokio::select! {
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        node.metrics.http_timeouts.inc();
                    }
                    tracing::debug!(error = %e, "http connection ended with an error");
                }
                return;
            }
            _ = &mut stopped, if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
            _ = &mut killed => {
                // Its client stopped reading: discard what is unsent and reset the connection
                // rather than leave the kernel trickling it out after the close.
                transport::abort_on_close(fd);
                node.metrics.abortive_closes.inc();
                return;
            }
            _ = &mut idle_check, if keep_alive.is_some() && !conn_state.is_admitted() => {
                // Admitted while this wait was armed (an SSE stream is admitted after its request
                // ended, from hyper's point of view): the keep-alive timeout no longer applies.
                if conn_state.is_admitted() {
                    idle_check = idle_in(Duration::from_secs(86_400));
                    continue;
                }
                let limit = keep_alive.unwrap_or(Duration::MAX);
                match conn_state.idle_for() {
                    Some(idle) if idle >= limit => {
                        node.metrics.http_timeouts.inc();
                        tracing::debug!(%peer, "idle keep-alive connection closed");
                        return;
                    }
                    Some(idle) => idle_check = idle_in(limit - idle),
                    None => idle_check = idle_in(limit),
                }
            }
        }
    }
}

impl Running {
    /// Stops accepting, closes every WebSocket with 1001 and ends every SSE stream, then waits
    /// up to the configured deadline for connections to finish.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.accept.await;
        let deadline = Instant::now() + self.node.config.shutdown_timeout;
        let sessions = self.node.hub.all_sessions();
        tracing::info!(connections = sessions.len(), "shutting down");
        for session in sessions {
            session.close(CloseReason::Shutdown);
        }
        while (self.node.hub.session_count() > 0 || self.node.open_sockets() > 0)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.node.hub.session_count();
        if left > 0 {
            tracing::warn!(
                connections = left,
                "shutdown deadline passed with connections open"
            );
        }
        if let Some(done) = self.node.broker.shutdown() {
            let _ = tokio::time::timeout(Duration::from_secs(2), done).await;
        }
    }
}
