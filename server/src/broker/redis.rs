//! The Redis broker (`--broker redis://...`): every node of a cluster shares rooms, presence,
//! history and delivery through one Redis.
//!
//! One task per node owns two Redis connections: a multiplexed one for commands and a pub/sub
//! one reading the cluster's bus ([`super::bus`]) and the backend topics ([`super::topics`]).
//! The bus is split by interest ([`super::interest`]): each room and each user has a channel of
//! its own, subscribed when the first local session joins the room (or the user's first local
//! WebSocket connects), before the join runs, and unsubscribed after the last one left; the
//! events every node needs stay on one channel.
//! Commands run as Lua scripts ([`super::scripts`]) in the order the node submitted them,
//! pipelined in batches (consecutive chats share one script call); their outcomes come back
//! through the bus to every node with an interest in them, this one included, in one order per
//! channel, and are delivered through the node's [`BrokerEvents`].
//!
//! When Redis cannot be reached the node keeps serving its own connections alone through a
//! [`Memory`] broker seeded with its members (`/healthz` says `degraded`), except room
//! messages, which only the cluster numbers (their senders are told they were not sent,
//! [`alone_or_refused`]); it retries with backoff, and on reconnecting re-registers its members
//! and users, resubscribes, resumes cross-node delivery and catches its members up. With `redis+sentinel://` ([`super::sentinel`]) every reconnection asks
//! the sentinels for the primary, so a failover is followed; room epochs carry the primary's
//! replication id, so streams a promoted replica may have cut short show a new epoch (resumes
//! across it answer `recovered: false`). A task that dies is restarted, and the broker reports
//! `degraded` until it is connected again. Layer 4.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ::redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use ::redis::{AsyncConnectionConfig, Value};
use futures_util::StreamExt;
use herald_protocol::{RoomName, User};
use tokio::sync::{mpsc, oneshot};

use super::bus::{self, BusMessage};
use super::interest::Interest;
use super::memory::Memory;
use super::{
    presence_frames, scripts, topics, Broker, BrokerEvents, CatchUpAnswer, Command, Health,
    JoinAnswer, PresenceChange, SessionId, Unpublished,
};
use crate::config::Config;
use crate::ids::{new_epoch, random_token};
use crate::wire::{with_offset, Transport};

/// What the node hands the broker task.
pub(super) enum Op {
    Command(Command),
    Online {
        user_id: String,
        session: String,
        transport: Transport,
    },
    Offline {
        user_id: String,
        session: String,
    },
    Shutdown(oneshot::Sender<()>),
    /// Answered once every op before it has been carried out ([`Broker::settled`]).
    Barrier(oneshot::Sender<()>),
}

impl Op {
    /// Whether the command may be refused when the queue is full: messages may be; membership,
    /// identity and shutdown never are (they are bounded by the connections themselves).
    fn sheddable(&self) -> bool {
        matches!(
            self,
            Op::Command(
                Command::Publish { .. }
                    | Command::Volatile { .. }
                    | Command::Private { .. }
                    | Command::Direct { .. }
                    | Command::Event(_)
            )
        )
    }
}

pub(super) struct Shared {
    pub(super) up: AtomicBool,
    pub(super) leader: AtomicBool,
    pub(super) node_id: String,
    pub(super) prefix: String,
    pub(super) bus: String,
    /// Channel names of the backend topics, with the topic each is.
    pub(super) topics: Vec<(String, &'static str)>,
    pub(super) history_size: usize,
    pub(super) history_ttl_ms: u64,
    pub(super) presence_ttl: Duration,
    pub(super) full_list_max: usize,
    /// Commands waiting for the task.
    pub(super) queued: AtomicUsize,
    pub(super) max_queued: usize,
    pub(super) shed: AtomicU64,
    pub(super) unreadable: AtomicU64,
    pub(super) restarts: AtomicU64,
    /// Bus messages received.
    pub(super) received: AtomicU64,
    /// Channels subscribed for local rooms and users.
    pub(super) channels: AtomicU64,
    /// The replication id of the Redis primary (its first characters), appended to every room
    /// epoch clients see. A failover promotes a replica, which takes a new replication id, and
    /// the replica may have missed the primary's last writes: every room then shows a new epoch,
    /// so the hub takes its offsets as a new stream and a resume from before the failover is
    /// answered `recovered: false` instead of replaying a stream with a hole in it.
    pub(super) generation: parking_lot::RwLock<Arc<str>>,
}

impl Shared {
    pub(super) fn member(&self, session: &str) -> String {
        format!("{}/{}", self.node_id, session)
    }

    /// The epoch clients see for a room epoch stored in Redis.
    pub(super) fn epoch_out(&self, stored: &str) -> String {
        epoch_seen(stored, &self.generation.read())
    }

    /// The stored epoch a client's epoch names, or `-` (which no room has) when it is from
    /// another generation (before a failover).
    pub(super) fn epoch_in(&self, seen: &str) -> String {
        epoch_stored(seen, &self.generation.read())
    }

    /// The channel of a room's traffic (messages, presence, volatile and direct frames).
    pub(super) fn room_channel(&self, room: &str) -> String {
        format!("{}:room:{room}:bus", self.prefix)
    }

    /// The channel of a user's private messages.
    pub(super) fn user_channel(&self, user_id: &str) -> String {
        format!("{}:user:{user_id}:bus", self.prefix)
    }

    /// Records which channels an operation needs or frees. A new command or operation whose
    /// traffic comes back on a channel of its own (a document, a stream) adds its arm here.
    pub(super) fn note_interest(&self, interest: &mut Interest, op: &Op) {
        match op {
            Op::Command(Command::Join { session, room, .. }) => {
                interest.want(&self.room_channel(room.as_str()), session)
            }
            Op::Command(Command::Leave { session, room, .. }) => {
                interest.unwant(&self.room_channel(room.as_str()), session)
            }
            Op::Online {
                user_id,
                session,
                transport,
            } if transport.speaks_frames() => interest.want(&self.user_channel(user_id), session),
            Op::Offline { user_id, session } => {
                interest.unwant(&self.user_channel(user_id), session)
            }
            _ => {}
        }
    }

    /// The session a member key names, when it is on this node.
    fn local_session<'a>(&self, member: &'a str) -> Option<&'a str> {
        member
            .split_once('/')
            .filter(|(node, _)| *node == self.node_id)
            .map(|(_, session)| session)
    }
}

/// The scripts, with their SHA1s for `EVALSHA`.
pub(super) struct Scripts {
    pub(super) join: ::redis::Script,
    pub(super) leave: ::redis::Script,
    pub(super) members: ::redis::Script,
    pub(super) chat: ::redis::Script,
    pub(super) private: ::redis::Script,
    pub(super) event: ::redis::Script,
    pub(super) online: ::redis::Script,
    pub(super) offline: ::redis::Script,
    pub(super) heartbeat: ::redis::Script,
    pub(super) reap: ::redis::Script,
    pub(super) resync: ::redis::Script,
    pub(super) direct: ::redis::Script,
    pub(super) roster: ::redis::Script,
    pub(super) catch_up: ::redis::Script,
}

impl Scripts {
    fn all(&self) -> [&::redis::Script; 14] {
        [
            &self.join,
            &self.leave,
            &self.members,
            &self.chat,
            &self.private,
            &self.event,
            &self.online,
            &self.offline,
            &self.heartbeat,
            &self.reap,
            &self.resync,
            &self.direct,
            &self.roster,
            &self.catch_up,
        ]
    }
}

pub(super) fn scripts_loaded() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        join: ::redis::Script::new(&scripts::join()),
        leave: ::redis::Script::new(&scripts::leave()),
        members: ::redis::Script::new(&scripts::members()),
        chat: ::redis::Script::new(scripts::CHAT),
        private: ::redis::Script::new(scripts::PRIVATE),
        event: ::redis::Script::new(scripts::EVENT),
        online: ::redis::Script::new(scripts::ONLINE),
        offline: ::redis::Script::new(scripts::OFFLINE),
        heartbeat: ::redis::Script::new(scripts::HEARTBEAT),
        reap: ::redis::Script::new(&scripts::reap()),
        resync: ::redis::Script::new(&scripts::resync()),
        direct: ::redis::Script::new(scripts::DIRECT),
        roster: ::redis::Script::new(scripts::ROSTER),
        catch_up: ::redis::Script::new(&scripts::catch_up()),
    })
}

/// The receiving end of the command queue, lent to the running task. When the task ends, even
/// by a panic, the receiver goes back to its slot for the next task.
pub(super) struct Lease {
    pub(super) rx: Option<mpsc::UnboundedReceiver<Op>>,
    pub(super) slot: Arc<parking_lot::Mutex<Option<mpsc::UnboundedReceiver<Op>>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            *self.slot.lock() = Some(rx);
        }
    }
}

impl Lease {
    pub(super) fn rx(&mut self) -> &mut mpsc::UnboundedReceiver<Op> {
        self.rx.as_mut().expect("a lease holds its receiver")
    }
}

/// The Redis broker's handle, kept by the node.
pub struct Redis {
    tx: mpsc::UnboundedSender<Op>,
    slot: Arc<parking_lot::Mutex<Option<mpsc::UnboundedReceiver<Op>>>>,
    shared: Arc<Shared>,
    task: Task,
    fallback: Arc<Memory>,
    /// The node, once attached (to tell senders of what was not published).
    events: OnceLock<Weak<dyn BrokerEvents>>,
    /// Capability `documents`, shared through Redis.
    docs: super::redis_docs::RedisDocs,
}

/// The task a broker runs once attached: the one of this module for one server or a Sentinel
/// primary, or another module's (Redis Cluster, [`super::redis_cluster`]).
enum Task {
    Here(Target),
    Other(Runner),
}

/// Starts a broker task of another module: it gets what this module's task gets.
pub(super) type Runner = Box<
    dyn Fn(
            Arc<Shared>,
            Weak<dyn BrokerEvents>,
            Arc<Memory>,
            Arc<parking_lot::Mutex<Option<mpsc::UnboundedReceiver<Op>>>>,
        ) -> futures_util::future::BoxFuture<'static, ()>
        + Send
        + Sync,
>;

/// Where the broker finds Redis.
#[derive(Clone)]
enum Target {
    /// One server (`redis://`).
    Server(::redis::Client),
    /// The primary a set of sentinels names, looked up at every (re)connection
    /// (`redis+sentinel://`).
    Sentinel(Arc<super::sentinel::Sentinels>),
}

impl Target {
    async fn client(&self) -> ::redis::RedisResult<::redis::Client> {
        match self {
            Target::Server(client) => Ok(client.clone()),
            Target::Sentinel(sentinels) => sentinels.primary().await,
        }
    }
}

fn target(url: &str) -> anyhow::Result<Target> {
    if url.starts_with(super::sentinel::SCHEME) {
        return super::sentinel::parse(url)
            .map(|s| Target::Sentinel(Arc::new(s)))
            .map_err(|e| anyhow::anyhow!("broker URL {:?} is not valid: {e}", redact(url)));
    }
    anyhow::ensure!(
        url.starts_with("redis://"),
        "broker must be `memory`, a redis:// URL or a redis+sentinel:// URL (TLS, rediss://, is \
         not built in), not {:?}",
        redact(url)
    );
    ::redis::Client::open(url)
        .map(Target::Server)
        .map_err(|e| anyhow::anyhow!("broker URL {:?} is not valid: {e}", redact(url)))
}

/// Where connections to the Redis of `url` go (see [`super::RedisSource`]).
pub fn source(url: &str) -> anyhow::Result<super::RedisSource> {
    target(url).map(source_of)
}

fn source_of(target: Target) -> super::RedisSource {
    Arc::new(move || {
        let target = target.clone();
        Box::pin(async move { target.client().await })
    })
}

/// Checks a broker URL without connecting.
pub fn check_url(url: &str) -> anyhow::Result<()> {
    target(url).map(drop)
}

impl Redis {
    /// A broker for `url`; it starts connecting when attached to its node (which serves alone
    /// until it does).
    pub fn new(config: &Config, url: &str) -> anyhow::Result<Self> {
        let target = target(url)?;
        let docs = super::redis_docs::DocsSource::Server(source_of(target.clone()));
        Ok(Self::build(config, url, Task::Here(target), docs))
    }

    /// A broker whose task `runner` starts (see [`Runner`]), with documents on `docs`.
    pub(super) fn with_runner(
        config: &Config,
        url: &str,
        runner: Runner,
        docs: super::redis_docs::DocsSource,
    ) -> Self {
        Self::build(config, url, Task::Other(runner), docs)
    }

    fn build(config: &Config, url: &str, task: Task, docs: super::redis_docs::DocsSource) -> Self {
        let node_id = config.node_id.clone().unwrap_or_else(|| random_token(10));
        let prefix = config.redis_prefix.clone();
        let shared = Arc::new(Shared {
            up: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            bus: format!("{prefix}:bus"),
            topics: topics::TOPICS
                .iter()
                .map(|t| (format!("{}{t}", config.topic_prefix), *t))
                .collect(),
            node_id,
            prefix,
            history_size: config.history_size,
            history_ttl_ms: config.history_ttl.as_millis().max(1) as u64,
            presence_ttl: config.presence_ttl,
            full_list_max: config.presence_full_list_max,
            queued: AtomicUsize::new(0),
            max_queued: config.broker_queue.max(1),
            shed: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            received: AtomicU64::new(0),
            channels: AtomicU64::new(0),
            generation: parking_lot::RwLock::new(Arc::from("")),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tracing::info!(node = %shared.node_id, broker = %redact(url), "cluster broker: redis");
        let docs = super::redis_docs::RedisDocs::new(docs, &shared.prefix, &shared.node_id);
        Redis {
            tx,
            slot: Arc::new(parking_lot::Mutex::new(Some(rx))),
            shared,
            docs,
            task,
            fallback: Arc::new(Memory::from_config(config)),
            events: OnceLock::new(),
        }
    }

    fn send(&self, op: Op) {
        if op.sheddable() && self.shared.queued.load(Ordering::Relaxed) >= self.shared.max_queued {
            let shed = self.shared.shed.fetch_add(1, Ordering::Relaxed);
            if (shed + 1).is_power_of_two() {
                tracing::warn!(
                    shed = shed + 1,
                    "the Redis command queue is full: shedding messages"
                );
            }
            if let Op::Command(Command::Publish {
                room,
                from: Some(from),
                ..
            }) = &op
            {
                if let Some(events) = self.events() {
                    events.not_published(from, room, Unpublished::QueueFull);
                }
            }
            return;
        }
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(op)) = self.tx.send(op) {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            if let Op::Command(command) = op {
                alone_or_refused(
                    self.events().as_deref(),
                    &self.fallback,
                    command,
                    Unpublished::Unreachable,
                );
            }
        }
    }

    fn events(&self) -> Option<Arc<dyn BrokerEvents>> {
        self.events.get().and_then(Weak::upgrade)
    }
}

/// The URL without its password, for logs.
pub(super) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl Broker for Redis {
    fn attach(&self, events: Weak<dyn BrokerEvents>) {
        let _ = self.events.set(events.clone());
        self.fallback.attach(events.clone());
        self.docs.attach(events.clone());
        let (shared, slot, fallback) = (
            self.shared.clone(),
            self.slot.clone(),
            self.fallback.clone(),
        );
        match &self.task {
            Task::Here(target) => {
                let target = target.clone();
                tokio::spawn(supervise(
                    shared,
                    events,
                    fallback,
                    slot,
                    move |s, e, f, l| run(target.clone(), s, e, f, l),
                ));
            }
            Task::Other(runner) => {
                tokio::spawn(runner(shared, events, fallback, slot));
            }
        }
    }

    fn submit(&self, command: Command) {
        // Documents have their own connection and order (`broker::redis_docs`).
        if let Command::Doc(command) = command {
            return self.docs.submit(command);
        }
        if !self.shared.up.load(Ordering::Acquire) {
            return alone_or_refused(
                self.events().as_deref(),
                &self.fallback,
                command,
                Unpublished::Unreachable,
            );
        }
        self.send(Op::Command(command));
    }

    fn user_online(&self, user_id: &str, session: &str, transport: Transport) {
        self.send(Op::Online {
            user_id: user_id.to_owned(),
            session: session.to_owned(),
            transport,
        });
    }

    fn user_offline(&self, user_id: &str, session: &str) {
        self.send(Op::Offline {
            user_id: user_id.to_owned(),
            session: session.to_owned(),
        });
    }

    fn leads(&self) -> bool {
        // Cut off from Redis, the node serves its own connections alone, and so leads them.
        !self.shared.up.load(Ordering::Acquire) || self.shared.leader.load(Ordering::Acquire)
    }

    fn health(&self) -> Health {
        if self.shared.up.load(Ordering::Acquire) {
            Health::Up
        } else {
            Health::Degraded
        }
    }

    fn sweep(&self) {
        self.fallback.sweep();
    }

    fn stats(&self) -> super::BrokerStats {
        super::BrokerStats {
            queued: self.shared.queued.load(Ordering::Relaxed) as u64,
            shed: self.shared.shed.load(Ordering::Relaxed),
            unreadable: self.shared.unreadable.load(Ordering::Relaxed),
            restarts: self.shared.restarts.load(Ordering::Relaxed),
            received: self.shared.received.load(Ordering::Relaxed),
            channels: self.shared.channels.load(Ordering::Relaxed),
        }
    }

    fn shutdown(&self) -> Option<oneshot::Receiver<()>> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Op::Shutdown(done)).ok()?;
        Some(wait)
    }

    fn settled(&self) -> Option<oneshot::Receiver<()>> {
        let (done, wait) = oneshot::channel();
        self.send(Op::Barrier(done));
        Some(wait)
    }
}

/// Runs the broker task, and runs it again if it dies.
/// Runs a broker task (`run`: one server's, or a Redis Cluster's), and runs it again with the
/// same queue if it dies.
pub(super) async fn supervise<F, Fut>(
    shared: Arc<Shared>,
    events: Weak<dyn BrokerEvents>,
    fallback: Arc<Memory>,
    slot: Arc<parking_lot::Mutex<Option<mpsc::UnboundedReceiver<Op>>>>,
    run: F,
) where
    F: Fn(Arc<Shared>, Weak<dyn BrokerEvents>, Arc<Memory>, Lease) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let Some(rx) = slot.lock().take() else { return };
        let lease = Lease {
            rx: Some(rx),
            slot: slot.clone(),
        };
        let task = tokio::spawn(run(shared.clone(), events.clone(), fallback.clone(), lease));
        match task.await {
            Ok(()) => return,
            Err(e) => {
                shared.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "the cluster broker task died; restarting it");
                disconnected(&shared, &events, &fallback);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The connection to Redis is gone: this node serves alone from what it holds, and its
/// presence numbering starts over.
pub(super) fn disconnected(shared: &Shared, events: &Weak<dyn BrokerEvents>, fallback: &Memory) {
    shared.up.store(false, Ordering::Release);
    shared.leader.store(false, Ordering::Release);
    if let Some(events) = events.upgrade() {
        fallback.seed(&events.local_state());
        events.reset();
    }
}

/// After a connection ended: whether to try again (`false` when the broker stops).
pub(super) fn ended(end: End) -> bool {
    match end {
        End::Stop => false,
        End::Lost(why) => {
            tracing::warn!(error = %why, "cluster broker lost; serving this node alone");
            true
        }
    }
}

/// Until `backoff` has passed, carries commands out here alone; `false` when the broker
/// stops meanwhile.
pub(super) async fn alone(
    shared: &Shared,
    events: &Weak<dyn BrokerEvents>,
    rx: &mut mpsc::UnboundedReceiver<Op>,
    fallback: &Memory,
    backoff: Duration,
) -> bool {
    let wait = tokio::time::sleep(backoff);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            _ = &mut wait => return true,
            op = rx.recv() => {
                let Some(op) = op else { return false };
                took(shared, 1);
                match op {
                    Op::Shutdown(done) => {
                        let _ = done.send(());
                        return false;
                    }
                    Op::Command(command) => {
                        alone_or_refused(events.upgrade().as_deref(), fallback, command, Unpublished::Unreachable)
                    }
                    Op::Barrier(done) => {
                        let _ = done.send(());
                    }
                    Op::Online { .. } | Op::Offline { .. } => {}
                }
            }
        }
    }
}

/// A command the cluster's broker did not carry out, on a node that serves alone: carried out
/// here, except a room message, which only the cluster may number (one numbered here would
/// reach this node's members and never the others', a silent gap for them): its sender is told
/// why it was not sent, or may not have been.
pub(super) fn alone_or_refused(
    events: Option<&dyn BrokerEvents>,
    fallback: &Memory,
    command: Command,
    why: Unpublished,
) {
    match command {
        Command::Publish { room, from, .. } => {
            if let (Some(from), Some(events)) = (from, events) {
                events.not_published(&from, &room, why);
            }
        }
        command => fallback.submit(command),
    }
}

/// Why the connected loop ended.
pub(super) enum End {
    /// The node is gone or shutting down.
    Stop,
    /// Redis failed; reconnect.
    Lost(String),
}

/// Takes one operation off the queue, counting it out.
pub(super) fn took(shared: &Shared, n: usize) {
    shared.queued.fetch_sub(n, Ordering::Relaxed);
}

async fn run(
    client: Target,
    shared: Arc<Shared>,
    events: Weak<dyn BrokerEvents>,
    fallback: Arc<Memory>,
    mut lease: Lease,
) {
    let mut backoff = Duration::from_millis(100);
    let mut interest = Interest::default();
    loop {
        match connect(&client, &shared, &events, &fallback, &mut interest).await {
            Ok((mut conn, mut sink, stream)) => {
                backoff = Duration::from_millis(100);
                shared.up.store(true, Ordering::Release);
                tracing::info!(node = %shared.node_id, "cluster broker connected");
                if let Some(events) = events.upgrade() {
                    events.reconnected();
                }
                let mut link = Link {
                    conn: &mut conn,
                    sink: &mut sink,
                    interest: &mut interest,
                };
                let end = serve(&mut link, stream, &shared, &events, &fallback, lease.rx()).await;
                disconnected(&shared, &events, &fallback);
                if !ended(end) {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster broker unreachable; retrying"),
        }
        // Until the next attempt, commands are carried out here alone.
        if !alone(&shared, &events, lease.rx(), &fallback, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// What the connected task talks through: commands, subscriptions, and what it listens to.
struct Link<'a> {
    conn: &'a mut MultiplexedConnection,
    sink: &'a mut PubSubSink,
    interest: &'a mut Interest,
}

/// How many channels one SUBSCRIBE names at most.
const SUBSCRIBE_CHUNK: usize = 512;

/// Subscribes to (or unsubscribes from) `channels`, waiting for every confirmation; a Redis that
/// does not answer within the command timeout counts as lost.
async fn listen(
    sink: &mut PubSubSink,
    channels: &[String],
    subscribe: bool,
) -> ::redis::RedisResult<()> {
    for chunk in channels.chunks(SUBSCRIBE_CHUNK) {
        let confirmed = if subscribe {
            tokio::time::timeout(Duration::from_secs(5), sink.subscribe(chunk)).await
        } else {
            tokio::time::timeout(Duration::from_secs(5), sink.unsubscribe(chunk)).await
        };
        confirmed.map_err(|_| {
            ::redis::RedisError::from((
                ::redis::ErrorKind::Io,
                "Redis did not confirm a subscription in time",
            ))
        })??;
    }
    Ok(())
}

async fn connect(
    target: &Target,
    shared: &Shared,
    events: &Weak<dyn BrokerEvents>,
    fallback: &Memory,
    interest: &mut Interest,
) -> ::redis::RedisResult<(MultiplexedConnection, PubSubSink, PubSubStream)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let client = target.client().await?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let replication: String = ::redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await?;
    let generation = replication_id(&replication);
    if *shared.generation.read() != generation {
        tracing::info!(generation = %generation, "the Redis primary's replication id (room epochs follow it)");
        *shared.generation.write() = generation;
    }
    for script in scripts_loaded().all() {
        script.prepare_invoke().load_async(&mut conn).await?;
    }
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    let mut always = vec![shared.bus.clone()];
    always.extend(shared.topics.iter().map(|(c, _)| c.clone()));
    listen(&mut sink, &always, true).await?;
    heartbeat(&mut conn, shared).await?;
    interest.clear();
    shared.channels.store(0, Ordering::Relaxed);
    if let Some(events) = events.upgrade() {
        // What ran here alone is not the cluster's: its streams and presence are dropped, and
        // the cluster's presence numbering starts again for every member here.
        fallback.reset();
        events.reset();
        // Listen to every local room and user before Redis learns of them again, so nothing
        // the resync announces (or anything after it) is missed.
        let state = events.local_state();
        for (room, session, _) in &state.members {
            interest.want(&shared.room_channel(room.as_str()), session);
        }
        for (user_id, session, transport) in &state.users {
            if transport.speaks_frames() {
                interest.want(&shared.user_channel(user_id), session);
            }
        }
        listen(&mut sink, &interest.to_subscribe(), true).await?;
        shared
            .channels
            .store(interest.subscribed() as u64, Ordering::Relaxed);
        resync(&mut conn, shared, &state).await?;
    }
    Ok((conn, sink, stream))
}

/// Renews the heartbeat and the topic leadership.
async fn heartbeat(conn: &mut MultiplexedConnection, shared: &Shared) -> ::redis::RedisResult<()> {
    let ttl = (shared.presence_ttl.as_millis() * 3 / 4).max(500) as u64;
    let leads: i64 = scripts_loaded()
        .heartbeat
        .arg(&shared.prefix)
        .arg(&shared.node_id)
        .arg(ttl)
        .invoke_async(conn)
        .await?;
    shared.leader.store(leads == 1, Ordering::Release);
    Ok(())
}

pub(super) fn transport_code(transport: Transport) -> &'static str {
    match transport {
        Transport::WebSocket => "w",
        Transport::Sse => "s",
        // Frames, like a WebSocket: private messages reach it.
        Transport::Polling => "w",
    }
}

pub(super) fn user_json(user: &User) -> String {
    serde_json::to_string(user).expect("users serialise")
}

/// Makes Redis hold exactly this node's members and users.
async fn resync(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    state: &super::LocalState,
) -> ::redis::RedisResult<()> {
    let mut invocation = scripts_loaded().resync.prepare_invoke();
    invocation
        .arg(&shared.prefix)
        .arg(&shared.node_id)
        .arg(state.members.len());
    for (room, session, user) in &state.members {
        invocation
            .arg(room.as_str())
            .arg(shared.member(session))
            .arg(user_json(user));
    }
    invocation.arg(state.users.len());
    for (id, session, transport) in &state.users {
        invocation
            .arg(id)
            .arg(shared.member(session))
            .arg(transport_code(*transport));
    }
    let _: i64 = invocation.invoke_async(conn).await?;
    Ok(())
}

async fn serve(
    link: &mut Link<'_>,
    mut pubsub: PubSubStream,
    shared: &Shared,
    events: &Weak<dyn BrokerEvents>,
    fallback: &Memory,
    rx: &mut mpsc::UnboundedReceiver<Op>,
) -> End {
    let beat = (shared.presence_ttl / 4).max(Duration::from_millis(250));
    let mut heartbeat_every = tokio::time::interval(beat);
    let mut reap_every =
        tokio::time::interval((shared.presence_ttl / 8).max(Duration::from_millis(125)));
    heartbeat_every.tick().await;
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            biased;
            message = pubsub.next() => {
                let Some(message) = message else {
                    return End::Lost("the subscription connection closed".into());
                };
                let Some(events) = events.upgrade() else { return End::Stop };
                on_message(&*events, shared, &message);
            }
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    return End::Stop;
                }
                took(shared, n);
                let Some(events) = events.upgrade() else { return End::Stop };
                if let Some(end) = run_batch(link, shared, &*events, fallback, &mut batch).await {
                    return end;
                }
            }
            _ = heartbeat_every.tick() => {
                if let Err(e) = heartbeat(link.conn, shared).await {
                    return End::Lost(e.to_string());
                }
            }
            _ = reap_every.tick() => {
                let reaped: ::redis::RedisResult<i64> = scripts_loaded()
                    .reap
                    .arg(&shared.prefix)
                    .arg("")
                    .invoke_async(link.conn)
                    .await;
                match reaped {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(nodes = n, "removed dead nodes from presence"),
                    Err(e) => return End::Lost(e.to_string()),
                }
            }
        }
    }
}

/// What to do with a command's answer.
pub(super) enum Then {
    Nothing,
    Join {
        session: SessionId,
        room: RoomName,
        user: User,
        resumed: bool,
    },
    Private {
        from: SessionId,
        target: String,
    },
    Members {
        session: SessionId,
        room: RoomName,
    },
    Direct {
        from: SessionId,
        room: RoomName,
        target: SessionId,
    },
    Roster {
        session: SessionId,
        room: RoomName,
    },
    CatchUp {
        room: RoomName,
        asked: (String, u64),
    },
}

/// The most chats one call of the chat script carries.
pub(super) const CHATS_PER_CALL: usize = 64;

/// Adds a script call to the pipeline.
fn eval<'a>(
    pipe: &'a mut ::redis::Pipeline,
    script: &::redis::Script,
) -> &'a mut ::redis::Pipeline {
    pipe.cmd("EVALSHA").arg(script.get_hash()).arg(0)
}

/// Sends a batch of operations as one pipeline, in order, and acts on the answers. On failure
/// the batch is carried out here alone and the connection is given up.
async fn run_batch(
    link: &mut Link<'_>,
    shared: &Shared,
    events: &dyn BrokerEvents,
    fallback: &Memory,
    batch: &mut Vec<Op>,
) -> Option<End> {
    let s = scripts_loaded();
    // Subscribe to what the batch's joins (and users) need before they run: a message published
    // after a join script ran is then on the subscription, an earlier one is in its answer.
    for op in batch.iter() {
        shared.note_interest(link.interest, op);
    }
    let subscribe = link.interest.to_subscribe();
    if let Err(e) = listen(link.sink, &subscribe, true).await {
        return Some(give_up(events, fallback, batch, e));
    }
    let mut pipe = ::redis::pipe();
    pipe.ignore_errors();
    let mut then = Vec::with_capacity(batch.len());
    let mut shutdown = None;
    let mut barriers = Vec::new();
    let p = &shared.prefix;
    // How many chats the pipeline's last command (a chat script call) carries; 0 when the last
    // command is something else.
    let mut chats = 0;
    for op in batch.iter_mut() {
        match op {
            Op::Command(command) => match command {
                Command::Join {
                    session,
                    room,
                    user,
                    since,
                } => {
                    let (epoch, offset) = since
                        .as_ref()
                        .map(|s| (shared.epoch_in(&s.epoch), s.offset))
                        .unwrap_or((String::new(), 0));
                    eval(&mut pipe, &s.join)
                        .arg(p)
                        .arg(room.as_str())
                        .arg(shared.member(session))
                        .arg(user_json(user))
                        .arg(epoch)
                        .arg(offset)
                        .arg(shared.history_ttl_ms)
                        .arg(new_epoch())
                        .arg(shared.full_list_max)
                        .arg(shared.history_size);
                    then.push(Then::Join {
                        session: session.clone(),
                        room: room.clone(),
                        user: user.clone(),
                        resumed: since.is_some(),
                    });
                }
                Command::Members { session, room } => {
                    eval(&mut pipe, &s.members).arg(p).arg(room.as_str());
                    then.push(Then::Members {
                        session: session.clone(),
                        room: room.clone(),
                    });
                }
                Command::Leave { session, room, .. } => {
                    eval(&mut pipe, &s.leave)
                        .arg(p)
                        .arg(room.as_str())
                        .arg(shared.member(session));
                    then.push(Then::Nothing);
                }
                Command::Publish { room, prefix, .. } => {
                    // Chats that follow each other in the batch share one script call (the
                    // pipeline's last command, which the arguments extend).
                    if chats == 0 || chats == CHATS_PER_CALL {
                        eval(&mut pipe, &s.chat)
                            .arg(p)
                            .arg(shared.history_size)
                            .arg(shared.history_ttl_ms);
                        then.push(Then::Nothing);
                        chats = 0;
                    }
                    pipe.arg(room.as_str())
                        .arg(prefix.as_str())
                        .arg(new_epoch());
                    chats += 1;
                    continue;
                }
                Command::Volatile {
                    room,
                    except,
                    frame,
                } => {
                    let except = except.as_deref().map(|s| shared.member(s));
                    pipe.cmd("PUBLISH")
                        .arg(shared.room_channel(room.as_str()))
                        .arg(bus::volatile(room, except.as_deref(), frame.as_str()));
                    then.push(Then::Nothing);
                }
                Command::Private {
                    from,
                    target,
                    frame,
                } => {
                    eval(&mut pipe, &s.private)
                        .arg(p)
                        .arg(target.as_str())
                        .arg(bus::private(target, frame.as_str()));
                    then.push(Then::Private {
                        from: from.clone(),
                        target: target.clone(),
                    });
                }
                Command::Event(event) => {
                    eval(&mut pipe, &s.event).arg(p).arg(bus::event_body(event));
                    then.push(Then::Nothing);
                }
                Command::Direct {
                    from,
                    room,
                    target,
                    frame,
                } => {
                    eval(&mut pipe, &s.direct)
                        .arg(p)
                        .arg(room.as_str())
                        .arg(&**target)
                        .arg(frame.as_str());
                    then.push(Then::Direct {
                        from: from.clone(),
                        room: room.clone(),
                        target: target.clone(),
                    });
                }
                Command::Roster { session, room } => {
                    eval(&mut pipe, &s.roster).arg(p).arg(room.as_str());
                    then.push(Then::Roster {
                        session: session.clone(),
                        room: room.clone(),
                    });
                }
                Command::CatchUp { room, epoch, after } => {
                    eval(&mut pipe, &s.catch_up)
                        .arg(p)
                        .arg(room.as_str())
                        .arg(shared.epoch_in(epoch))
                        .arg(*after)
                        .arg(shared.history_ttl_ms)
                        .arg(shared.history_size)
                        .arg(new_epoch());
                    then.push(Then::CatchUp {
                        room: room.clone(),
                        asked: (epoch.clone(), *after),
                    });
                }
                // `submit` hands documents to `redis_docs`; none reach the pipeline.
                Command::Doc(_) => {}
                Command::Ordered { capability, body } => {
                    super::redis_streams::publish(&mut pipe, &shared.bus, capability, body);
                    then.push(Then::Nothing);
                }
            },
            Op::Online {
                user_id,
                session,
                transport,
            } => {
                eval(&mut pipe, &s.online)
                    .arg(p)
                    .arg(&shared.node_id)
                    .arg(user_id.as_str())
                    .arg(shared.member(session))
                    .arg(transport_code(*transport));
                then.push(Then::Nothing);
            }
            Op::Offline { user_id, session } => {
                eval(&mut pipe, &s.offline)
                    .arg(p)
                    .arg(&shared.node_id)
                    .arg(user_id.as_str())
                    .arg(shared.member(session));
                then.push(Then::Nothing);
            }
            Op::Shutdown(done) => {
                let (tx, _) = oneshot::channel();
                shutdown = Some(std::mem::replace(done, tx));
            }
            Op::Barrier(done) => {
                let (tx, _) = oneshot::channel();
                barriers.push(std::mem::replace(done, tx));
            }
        }
        chats = 0;
    }
    let answers: ::redis::RedisResult<Vec<Value>> = if then.is_empty() {
        Ok(Vec::new())
    } else {
        pipe.query_async(link.conn).await
    };
    let answers = match answers {
        Ok(answers) => answers,
        Err(e) => return Some(give_up(events, fallback, batch, e)),
    };
    batch.clear();
    for (answer, then) in answers.into_iter().zip(then) {
        if let Value::ServerError(e) = &answer {
            tracing::error!(error = ?e, "a broker script failed");
            if e.code() == "NOSCRIPT" {
                return Some(End::Lost("Redis lost the scripts".into()));
            }
            if e.code() == "READONLY" {
                // A failover made this server a replica: find the primary again.
                return Some(End::Lost("Redis is a replica now".into()));
            }
            continue;
        }
        act(shared, events, then, answer);
    }
    // Nobody here needs these any more: what they still carry would be dropped by the hub.
    let unsubscribe = link.interest.to_unsubscribe();
    if let Err(e) = listen(link.sink, &unsubscribe, false).await {
        return Some(End::Lost(e.to_string()));
    }
    shared
        .channels
        .store(link.interest.subscribed() as u64, Ordering::Relaxed);
    for done in barriers {
        let _ = done.send(());
    }
    if let Some(done) = shutdown {
        let _: ::redis::RedisResult<i64> = s
            .reap
            .arg(&shared.prefix)
            .arg(&shared.node_id)
            .invoke_async(link.conn)
            .await;
        let _ = done.send(());
        return Some(End::Stop);
    }
    None
}

/// Carries a batch out here alone, from the node's own members, and gives the connection up.
pub(super) fn give_up(
    events: &dyn BrokerEvents,
    fallback: &Memory,
    batch: &mut Vec<Op>,
    e: ::redis::RedisError,
) -> End {
    fallback.seed(&events.local_state());
    events.reset();
    for op in batch.drain(..) {
        match op {
            Op::Command(command) => {
                alone_or_refused(Some(events), fallback, command, Unpublished::MaybeLost)
            }
            Op::Barrier(done) => {
                let _ = done.send(());
            }
            Op::Shutdown(done) => {
                let _ = done.send(());
                return End::Stop;
            }
            Op::Online { .. } | Op::Offline { .. } => {}
        }
    }
    End::Lost(e.to_string())
}

/// A stored room epoch as clients see it in `generation`.
fn epoch_seen(stored: &str, generation: &str) -> String {
    format!("{stored}.{generation}")
}

/// The stored epoch behind an epoch a client saw, or `-` when it is from another generation.
fn epoch_stored(seen: &str, generation: &str) -> String {
    seen.strip_suffix(generation)
        .and_then(|s| s.strip_suffix('.'))
        .filter(|s| !s.is_empty())
        .unwrap_or("-")
        .to_owned()
}

/// The first characters of `master_replid` in an `INFO replication` answer ("0" when absent).
fn replication_id(info: &str) -> Arc<str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("master_replid:"))
        .map(|id| &id[..id.len().min(8)])
        .filter(|id| !id.is_empty())
        .unwrap_or("0")
        .into()
}

/// Users, one JSON per line (none for an empty text).
fn users_from_lines(lines: &str) -> Result<Vec<User>, String> {
    lines
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|u| serde_json::from_str(u).map_err(|e| format!("a member does not parse: {e}")))
        .collect()
}

fn join_answer(
    session: SessionId,
    room: RoomName,
    user: User,
    resumed: bool,
    answer: Value,
) -> Result<JoinAnswer, String> {
    type Answer = (String, u64, String, String, Vec<String>, u64);
    let (epoch, offset, users, recovered, replay, presence_seq): Answer =
        ::redis::from_redis_value(answer).map_err(|e| e.to_string())?;
    let users = users_from_lines(&users)?;
    let replay = replay_frames(&replay)?;
    Ok(JoinAnswer {
        session,
        room,
        user,
        users,
        epoch,
        offset,
        recovered: resumed.then_some(recovered == "1"),
        replay,
        presence_seq,
    })
}

/// Acts on one command's answer.
pub(super) fn act(shared: &Shared, events: &dyn BrokerEvents, then: Then, answer: Value) {
    match then {
        Then::Nothing => {}
        Then::Join {
            session,
            room,
            user,
            resumed,
        } => match join_answer(session, room, user, resumed, answer) {
            Ok(mut answer) => {
                answer.epoch = shared.epoch_out(&answer.epoch);
                events.joined(answer)
            }
            Err(e) => tracing::error!(error = %e, "a join answer did not parse"),
        },
        Then::Members { session, room } => {
            match ::redis::from_redis_value::<String>(answer)
                .map_err(|e| e.to_string())
                .and_then(|list| users_from_lines(&list))
            {
                Ok(users) => events.members(&session, &room, users),
                Err(e) => tracing::error!(error = %e, "a member list did not parse"),
            }
        }
        Then::Private { from, target } => {
            if ::redis::from_redis_value::<i64>(answer).unwrap_or(0) == 0 {
                events.undeliverable(&from, &target);
            }
        }
        Then::Direct { from, room, target } => {
            if ::redis::from_redis_value::<i64>(answer).unwrap_or(0) == 0 {
                events.peer_unreachable(&from, &room, &target);
            }
        }
        Then::Roster { session, room } => match roster_answer(answer) {
            Ok(members) => events.roster(&session, &room, members),
            Err(e) => tracing::error!(error = %e, "a roster answer did not parse"),
        },
        Then::CatchUp { room, asked } => caught_up(shared, events, room, asked, answer),
    }
}

/// Parses a catch-up script's answer and hands it to the node (epochs as clients see them).
fn caught_up(
    shared: &Shared,
    events: &dyn BrokerEvents,
    room: RoomName,
    asked: (String, u64),
    answer: Value,
) {
    match catch_up_answer(room, asked, answer) {
        Ok(mut answer) => {
            answer.epoch = shared.epoch_out(&answer.epoch);
            events.caught_up(answer);
        }
        Err(e) => tracing::error!(error = %e, "a catch-up answer did not parse"),
    }
}

/// The catch-up script's `{epoch, offset, recovered, replay}`.
fn catch_up_answer(
    room: RoomName,
    asked: (String, u64),
    answer: Value,
) -> Result<CatchUpAnswer, String> {
    type Answer = (String, u64, String, Vec<String>);
    let (epoch, offset, recovered, replay): Answer =
        ::redis::from_redis_value(answer).map_err(|e| e.to_string())?;
    Ok(CatchUpAnswer {
        room,
        asked,
        epoch,
        offset,
        recovered: recovered == "1",
        replay: replay_frames(&replay)?,
    })
}

/// Replayed messages as pairs (offset, prefix), made frames.
fn replay_frames(pairs: &[String]) -> Result<Vec<crate::wire::Utf8Bytes>, String> {
    pairs
        .chunks(2)
        .map(|pair| match pair {
            [o, prefix] => o
                .parse()
                .map(|o| with_offset(prefix, o))
                .map_err(|_| "a replayed offset is not a number".to_owned()),
            _ => Err("a replayed message has no offset".to_owned()),
        })
        .collect()
}

/// The roster script's flat list (member, user JSON, ...) as session ids and users.
fn roster_answer(answer: Value) -> Result<Vec<(SessionId, User)>, String> {
    let flat: Vec<String> = ::redis::from_redis_value(answer).map_err(|e| e.to_string())?;
    flat.chunks(2)
        .map(|pair| match pair {
            [member, user] => {
                let session = member
                    .rsplit_once('/')
                    .map(|(_, s)| s)
                    .ok_or_else(|| format!("member {member:?} names no session"))?;
                let user = serde_json::from_str(user)
                    .map_err(|e| format!("a member does not parse: {e}"))?;
                Ok((SessionId::from(session), user))
            }
            _ => Err("a member has no user".to_owned()),
        })
        .collect()
}

/// Acts on one message from the bus or a backend topic.
pub(super) fn on_message(events: &dyn BrokerEvents, shared: &Shared, message: &::redis::Msg) {
    let channel = message.get_channel_name();
    let payload = message.get_payload_bytes();
    let topic = shared.topics.iter().find(|(c, _)| c == channel);
    if topic.is_none() {
        // The events' channel, or a room's or a user's.
        shared.received.fetch_add(1, Ordering::Relaxed);
        return match bus::decode(payload) {
            Ok(message) => on_bus(events, shared, message),
            Err(e) => {
                shared.unreadable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "dropping an unreadable bus message");
            }
        };
    }
    // Backend topics: one node (the leader) handles each message, and the result reaches every
    // node through the bus like any other.
    if !shared.leader.load(Ordering::Acquire) {
        return;
    }
    let Some((_, topic)) = topic else {
        return;
    };
    match topics::read(topic, payload) {
        Ok(request) => events.backend(request),
        Err(e) => tracing::warn!(topic = channel, error = %e, "dropping a topic message"),
    }
}

/// Delivers one bus message here.
fn on_bus(events: &dyn BrokerEvents, shared: &Shared, message: BusMessage) {
    let Some(message) = super::redis_streams::deliver(events, message) else {
        return;
    };
    match message {
        BusMessage::Room {
            room,
            epoch,
            offset,
            prefix,
        } => events.room_message(
            &room,
            &shared.epoch_out(&epoch),
            offset,
            with_offset(&prefix, offset),
        ),
        BusMessage::Presence {
            room,
            seq,
            member,
            user,
            users,
            members,
        } => {
            // A join announced without its list (a room too large for whole lists when it was
            // published) is told as a diff only.
            let members = match &users {
                Some(list) if list.is_empty() => usize::MAX,
                _ => members as usize,
            };
            let (full, diff) = presence_frames(
                &room,
                &user,
                users.as_deref(),
                members,
                shared.full_list_max,
            );
            let except = shared.local_session(&member).map(SessionId::from);
            events.presence(PresenceChange {
                room,
                seq,
                except,
                full,
                diff,
            });
        }
        BusMessage::Volatile {
            room,
            except,
            frame,
        } => {
            let except = except.as_deref().and_then(|m| shared.local_session(m));
            events.room_volatile(&room, except, &frame);
        }
        BusMessage::Private { target, frame } => {
            events.private(&target, &frame);
        }
        BusMessage::Event { id, event } => events.event(Some(id), &event),
        // Taken by `redis_streams::deliver` above.
        BusMessage::Ordered { .. } => {}
        BusMessage::Direct {
            room,
            member,
            frame,
        } => {
            // Every node reads the bus; only the target's delivers. A target that left between
            // the script's check and here gets nothing (its sender was told it was there).
            if let Some(session) = shared.local_session(&member) {
                events.direct(&room, session, &frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(items: &[&str]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn room_epochs_carry_the_primarys_generation() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
                    master_replid:0123456789abcdef0123\r\nmaster_replid2:000\r\n";
        let generation = replication_id(info);
        assert_eq!(&*generation, "01234567");
        assert_eq!(&*replication_id("role:master\r\n"), "0");
        let seen = epoch_seen("Ab3dE6gH", &generation);
        assert_eq!(seen, "Ab3dE6gH.01234567");
        assert_eq!(epoch_stored(&seen, &generation), "Ab3dE6gH");
        // After a failover (another replication id) an old epoch matches no room.
        assert_eq!(epoch_stored(&seen, "89abcdef"), "-");
        for odd in ["", ".", ".01234567", "01234567", "x01234567"] {
            assert_eq!(epoch_stored(odd, &generation), "-", "{odd:?}");
        }
    }

    #[test]
    fn a_roster_answer_names_sessions_and_users_in_order() {
        let members = roster_answer(bulk(&[
            "node-a/s1",
            "\"ann\"",
            "node.b/s2",
            r#"{"id":"bob","name":"Bob"}"#,
        ]))
        .unwrap();
        let ids: Vec<&str> = members.iter().map(|(s, _)| &**s).collect();
        assert_eq!(ids, ["s1", "s2"]);
        assert_eq!(members[0].1, User::from("ann"));
        assert_eq!(members[1].1.id(), "bob");
        assert!(roster_answer(bulk(&[])).unwrap().is_empty());
    }

    #[test]
    fn a_catch_up_answer_gives_the_position_and_the_replayed_frames() {
        let answer = Value::Array(vec![
            Value::BulkString(b"Ab3d".to_vec()),
            Value::Int(7),
            Value::BulkString(b"1".to_vec()),
            bulk(&["6", r#"{"t":"a","offset":"#, "7", r#"{"t":"b","offset":"#]),
        ]);
        let asked = ("Ab3d.0".to_owned(), 5);
        let parsed = catch_up_answer("r".into(), asked.clone(), answer).unwrap();
        assert_eq!((parsed.epoch.as_str(), parsed.offset), ("Ab3d", 7));
        assert!(parsed.recovered);
        assert_eq!(parsed.asked, asked);
        let frames: Vec<&str> = parsed.replay.iter().map(|f| f.as_str()).collect();
        assert_eq!(
            frames,
            [r#"{"t":"a","offset":6}"#, r#"{"t":"b","offset":7}"#]
        );
        let lost = Value::Array(vec![
            Value::BulkString(b"Ab3d".to_vec()),
            Value::Int(7),
            Value::BulkString(b"0".to_vec()),
            bulk(&[]),
        ]);
        let parsed = catch_up_answer("r".into(), asked.clone(), lost).unwrap();
        assert!(!parsed.recovered && parsed.replay.is_empty());
        for bad in [
            Value::Int(3),
            Value::Array(vec![
                Value::BulkString(b"e".to_vec()),
                Value::Int(1),
                Value::BulkString(b"1".to_vec()),
                bulk(&["x", "{}"]),
            ]),
        ] {
            assert!(catch_up_answer("r".into(), asked.clone(), bad).is_err());
        }
    }

    #[test]
    fn a_bad_roster_answer_is_refused_without_panicking() {
        for bad in [
            bulk(&["node/s1"]),
            bulk(&["no-session", "\"ann\""]),
            bulk(&["node/s1", "not json"]),
            Value::Int(3),
        ] {
            assert!(roster_answer(bad.clone()).is_err(), "{bad:?}");
        }
    }
}
