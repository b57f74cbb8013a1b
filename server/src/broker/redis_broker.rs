//! The Redis broker (`--broker redis://...`): every node of a cluster shares rooms, presence,
//! history and delivery through one Redis.
//!
//! One task per node owns two Redis connections: a multiplexed one for commands and a pub/sub
//! one reading the cluster's bus and the backend topics. Commands run as Lua scripts
//! ([`super::scripts`]) in the order the node submitted them, pipelined in batches; their
//! effects come back to every node, this one included, through the bus, in one order.
//!
//! When Redis cannot be reached the node keeps serving its own connections alone (`/healthz`
//! says `degraded`), retries with backoff, and on reconnecting re-registers its members and
//! users, resubscribes, and resumes cross-node delivery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use herald_protocol::sse::Notification;
use herald_protocol::topics::topic;
use herald_protocol::{NotifyRequest, RoomMessage, RoomName, SystemEvent, User};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::{mpsc, oneshot};

use super::{scripts, Broker, Command, Health};
use crate::config::Config;
use crate::hub::{new_epoch, random_token, ClusterView};
use crate::node::{Node, SseKind};
use crate::session::tokio_tungstenite_utf8::Utf8Bytes;
use crate::session::{Session, Transport};

/// What the node hands the broker task.
enum Op {
    Command(Command),
    Online {
        user_id: String,
        member: String,
        transport: &'static str,
    },
    Offline {
        user_id: String,
        member: String,
    },
    Shutdown(oneshot::Sender<()>),
}

struct Shared {
    up: AtomicBool,
    leader: AtomicBool,
    node_id: String,
    prefix: String,
    bus: String,
    topics: [String; 3],
    history_size: usize,
    history_ttl_ms: u64,
    presence_ttl: Duration,
}

impl Shared {
    fn member(&self, session: &Session) -> String {
        format!("{}/{}", self.node_id, session.id)
    }
}

/// The scripts, with their SHA1s for `EVALSHA`.
struct Scripts {
    join: redis::Script,
    leave: redis::Script,
    chat: redis::Script,
    private: redis::Script,
    sse: redis::Script,
    heartbeat: redis::Script,
    reap: redis::Script,
    resync: redis::Script,
}

fn scripts_loaded() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        join: redis::Script::new(scripts::JOIN),
        leave: redis::Script::new(scripts::LEAVE),
        chat: redis::Script::new(scripts::CHAT),
        private: redis::Script::new(scripts::PRIVATE),
        sse: redis::Script::new(scripts::SSE),
        heartbeat: redis::Script::new(scripts::HEARTBEAT),
        reap: redis::Script::new(&scripts::reap()),
        resync: redis::Script::new(&scripts::resync()),
    })
}

/// The Redis broker's handle, kept by the node.
pub struct Redis {
    tx: mpsc::UnboundedSender<Op>,
    shared: Arc<Shared>,
}

impl Redis {
    /// Starts the broker task; it connects in the background (the node serves alone until it
    /// does).
    pub fn start(config: &Config, url: &str, node: Weak<Node>) -> Self {
        let node_id = config.node_id.clone().unwrap_or_else(|| random_token(10));
        let prefix = config.redis_prefix.clone();
        let shared = Arc::new(Shared {
            up: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            bus: format!("{prefix}:bus"),
            topics: [
                format!("{}{}", config.topic_prefix, topic::ROOM_MESSAGES),
                format!("{}{}", config.topic_prefix, topic::USER_NOTIFICATIONS),
                format!("{}{}", config.topic_prefix, topic::SYSTEM_EVENTS),
            ],
            node_id,
            prefix,
            history_size: config.history_size,
            history_ttl_ms: config.history_ttl.as_millis().max(1) as u64,
            presence_ttl: config.presence_ttl,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let client = redis::Client::open(url).expect("the broker URL is checked with the config");
        tracing::info!(node = %shared.node_id, broker = %redact(url), "cluster broker: redis");
        tokio::spawn(run(client, shared.clone(), node, rx));
        Redis { tx, shared }
    }
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl Broker for Redis {
    fn submit(&self, node: &Node, command: Command) {
        if !self.shared.up.load(Ordering::Acquire) {
            return node.apply_local(command, true);
        }
        if let Err(mpsc::error::SendError(Op::Command(command))) =
            self.tx.send(Op::Command(command))
        {
            node.apply_local(command, true);
        }
    }

    fn user_online(&self, user_id: &str, session: &Arc<Session>) {
        let transport = match session.transport {
            Transport::WebSocket => "w",
            Transport::Sse => "s",
        };
        let _ = self.tx.send(Op::Online {
            user_id: user_id.to_owned(),
            member: self.shared.member(session),
            transport,
        });
    }

    fn user_offline(&self, user_id: &str, session: &Arc<Session>) {
        let _ = self.tx.send(Op::Offline {
            user_id: user_id.to_owned(),
            member: self.shared.member(session),
        });
    }

    fn health(&self) -> Health {
        if self.shared.up.load(Ordering::Acquire) {
            Health::Up
        } else {
            Health::Degraded
        }
    }

    fn shutdown(&self) -> Option<oneshot::Receiver<()>> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Op::Shutdown(done)).ok()?;
        Some(wait)
    }
}

/// Why the connected loop ended.
enum End {
    /// The node is gone or shutting down.
    Stop,
    /// Redis failed; reconnect.
    Lost(String),
}

async fn run(
    client: redis::Client,
    shared: Arc<Shared>,
    node: Weak<Node>,
    mut rx: mpsc::UnboundedReceiver<Op>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match connect(&client, &shared, &node).await {
            Ok((mut conn, pubsub)) => {
                backoff = Duration::from_millis(100);
                shared.up.store(true, Ordering::Release);
                tracing::info!(node = %shared.node_id, "cluster broker connected");
                let end = serve(&mut conn, pubsub, &shared, &node, &mut rx).await;
                shared.up.store(false, Ordering::Release);
                shared.leader.store(false, Ordering::Release);
                match end {
                    End::Stop => return,
                    End::Lost(why) => {
                        tracing::warn!(error = %why, "cluster broker lost; serving this node alone")
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster broker unreachable; retrying"),
        }
        // Until the next attempt, commands are carried out here alone.
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                op = rx.recv() => match op {
                    None => return,
                    Some(Op::Shutdown(done)) => {
                        let _ = done.send(());
                        return;
                    }
                    Some(Op::Command(command)) => {
                        let Some(node) = node.upgrade() else { return };
                        node.apply_local(command, true);
                    }
                    Some(_) => {}
                },
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn connect(
    client: &redis::Client,
    shared: &Shared,
    node: &Weak<Node>,
) -> redis::RedisResult<(MultiplexedConnection, redis::aio::PubSubStream)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let s = scripts_loaded();
    for script in [
        &s.join,
        &s.leave,
        &s.chat,
        &s.private,
        &s.sse,
        &s.heartbeat,
        &s.reap,
        &s.resync,
    ] {
        script.prepare_invoke().load_async(&mut conn).await?;
    }
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&shared.bus).await?;
    for topic in &shared.topics {
        pubsub.subscribe(topic).await?;
    }
    heartbeat(&mut conn, shared).await?;
    if let Some(node) = node.upgrade() {
        resync(&mut conn, shared, &node).await?;
    }
    Ok((conn, pubsub.into_on_message()))
}

/// Renews the heartbeat and the topic leadership.
async fn heartbeat(conn: &mut MultiplexedConnection, shared: &Shared) -> redis::RedisResult<()> {
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

/// Makes Redis hold exactly this node's members and users.
async fn resync(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    node: &Node,
) -> redis::RedisResult<()> {
    let s = scripts_loaded();
    let mut invocation = s.resync.prepare_invoke();
    invocation.arg(&shared.prefix).arg(&shared.node_id);
    let rooms = node.hub.snapshot();
    let count: usize = rooms.iter().map(|(_, members)| members.len()).sum();
    invocation.arg(count);
    for (room, members) in &rooms {
        for member in members {
            invocation
                .arg(room.as_str())
                .arg(shared.member(&member.session))
                .arg(user_json(&member.user));
        }
    }
    let sessions = node.hub.all_sessions();
    let users: Vec<(String, &Arc<Session>)> = sessions
        .iter()
        .filter_map(|s| s.user_id().map(|id| (id, s)))
        .collect();
    invocation.arg(users.len());
    for (id, session) in &users {
        invocation
            .arg(id)
            .arg(shared.member(session))
            .arg(match session.transport {
                Transport::WebSocket => "w",
                Transport::Sse => "s",
            });
    }
    let _: i64 = invocation.invoke_async(conn).await?;
    Ok(())
}

fn user_json(user: &User) -> String {
    serde_json::to_string(user).expect("users serialise")
}

async fn serve(
    conn: &mut MultiplexedConnection,
    mut pubsub: redis::aio::PubSubStream,
    shared: &Shared,
    node: &Weak<Node>,
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
                let Some(node) = node.upgrade() else { return End::Stop };
                on_message(&node, shared, &message);
            }
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    return End::Stop;
                }
                let Some(node) = node.upgrade() else { return End::Stop };
                if let Some(end) = run_batch(conn, shared, &node, &mut batch).await {
                    return end;
                }
            }
            _ = heartbeat_every.tick() => {
                if let Err(e) = heartbeat(conn, shared).await {
                    return End::Lost(e.to_string());
                }
            }
            _ = reap_every.tick() => {
                let reaped: redis::RedisResult<i64> = scripts_loaded()
                    .reap
                    .arg(&shared.prefix)
                    .arg("")
                    .invoke_async(conn)
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
enum Then {
    Nothing,
    Join {
        session: Arc<Session>,
        room: RoomName,
        user: User,
        resumed: bool,
    },
    Private {
        from: Arc<Session>,
        target: String,
    },
}

/// Sends a batch of operations as one pipeline, in order, and acts on the answers. On failure
/// the batch is carried out here alone and the connection is given up.
async fn run_batch(
    conn: &mut MultiplexedConnection,
    shared: &Shared,
    node: &Node,
    batch: &mut Vec<Op>,
) -> Option<End> {
    let s = scripts_loaded();
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut then = Vec::with_capacity(batch.len());
    let mut shutdown = None;
    let p = &shared.prefix;
    for op in batch.iter() {
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
                        .map(|s| (s.epoch.as_str(), s.offset))
                        .unwrap_or(("", 0));
                    pipe.cmd("EVALSHA")
                        .arg(s.join.get_hash())
                        .arg(0)
                        .arg(p)
                        .arg(room.as_str())
                        .arg(shared.member(session))
                        .arg(user_json(user))
                        .arg(&shared.node_id)
                        .arg(epoch)
                        .arg(offset)
                        .arg(shared.history_ttl_ms)
                        .arg(new_epoch())
                        .arg("0");
                    then.push(Then::Join {
                        session: session.clone(),
                        room: room.clone(),
                        user: user.clone(),
                        resumed: since.is_some(),
                    });
                }
                Command::Left {
                    session,
                    room,
                    user,
                    ..
                } => {
                    pipe.cmd("EVALSHA")
                        .arg(s.leave.get_hash())
                        .arg(0)
                        .arg(p)
                        .arg(room.as_str())
                        .arg(shared.member(session))
                        .arg(user_json(user));
                    then.push(Then::Nothing);
                }
                Command::Chat { room, prefix } => {
                    pipe.cmd("EVALSHA")
                        .arg(s.chat.get_hash())
                        .arg(0)
                        .arg(p)
                        .arg(room.as_str())
                        .arg(prefix)
                        .arg(shared.history_size)
                        .arg(shared.history_ttl_ms)
                        .arg(new_epoch());
                    then.push(Then::Nothing);
                }
                Command::Typing {
                    session,
                    room,
                    frame,
                } => {
                    let envelope = format!(
                        "V\n{}\n{}\n{}",
                        room.as_str(),
                        shared.member(session),
                        frame.as_str()
                    );
                    pipe.cmd("PUBLISH").arg(&shared.bus).arg(envelope);
                    then.push(Then::Nothing);
                }
                Command::Private {
                    from,
                    target,
                    frame,
                } => {
                    pipe.cmd("EVALSHA")
                        .arg(s.private.get_hash())
                        .arg(0)
                        .arg(p)
                        .arg(target)
                        .arg(frame.as_str());
                    then.push(Then::Private {
                        from: from.clone(),
                        target: target.clone(),
                    });
                }
                Command::Notify(notification) => {
                    sse_event(&mut pipe, p, "N", serde_json::to_string(notification));
                    then.push(Then::Nothing);
                }
                Command::Update(update) => {
                    sse_event(&mut pipe, p, "E", serde_json::to_string(update));
                    then.push(Then::Nothing);
                }
            },
            Op::Online {
                user_id,
                member,
                transport,
            } => {
                pipe.cmd("HSET")
                    .arg(format!("{p}:user:{user_id}"))
                    .arg(member)
                    .arg(*transport);
                pipe.cmd("SADD")
                    .arg(format!("{p}:node:{}:users", shared.node_id))
                    .arg(user_id);
                then.push(Then::Nothing);
                then.push(Then::Nothing);
            }
            Op::Offline { user_id, member } => {
                pipe.cmd("HDEL")
                    .arg(format!("{p}:user:{user_id}"))
                    .arg(member);
                then.push(Then::Nothing);
            }
            Op::Shutdown(_) => {}
        }
    }
    for op in batch.iter_mut() {
        if let Op::Shutdown(done) = op {
            let (tx, _) = oneshot::channel();
            shutdown = Some(std::mem::replace(done, tx));
        }
    }
    let answers: redis::RedisResult<Vec<Value>> = if then.is_empty() {
        Ok(Vec::new())
    } else {
        pipe.query_async(conn).await
    };
    let answers = match answers {
        Ok(answers) => answers,
        Err(e) => {
            for op in batch.drain(..) {
                if let Op::Command(command) = op {
                    node.apply_local(command, true);
                }
            }
            return Some(End::Lost(e.to_string()));
        }
    };
    batch.clear();
    for (answer, then) in answers.into_iter().zip(then) {
        if let Value::ServerError(e) = &answer {
            tracing::error!(error = ?e, "a broker script failed");
            if e.code() == "NOSCRIPT" {
                return Some(End::Lost("Redis lost the scripts".into()));
            }
            continue;
        }
        match then {
            Then::Nothing => {}
            Then::Join {
                session,
                room,
                user,
                resumed,
            } => complete_join(node, session, room, user, resumed, answer),
            Then::Private { from, target } => {
                if redis::from_redis_value::<i64>(answer).unwrap_or(0) == 0 {
                    node.refuse_private(&from, &target);
                }
            }
        }
    }
    if let Some(done) = shutdown {
        let _: redis::RedisResult<i64> = s
            .reap
            .arg(&shared.prefix)
            .arg(&shared.node_id)
            .invoke_async(conn)
            .await;
        let _ = done.send(());
        return Some(End::Stop);
    }
    None
}

fn complete_join(
    node: &Node,
    session: Arc<Session>,
    room: RoomName,
    user: User,
    resumed: bool,
    answer: Value,
) {
    type Answer = (String, u64, String, String, Vec<String>);
    let (epoch, offset, users, recovered, replay): Answer = match redis::from_redis_value(answer) {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(error = %e, "a join answer did not parse");
            return;
        }
    };
    let users: Vec<User> = serde_json::from_str(&users).unwrap_or_default();
    let recovered = resumed.then_some(recovered == "1");
    let view = ClusterView {
        epoch,
        offset,
        replay: replay.into_iter().map(Utf8Bytes::from).collect(),
    };
    node.complete_join(&session, &room, user, users, &view, recovered);
}

/// Acts on one message from the bus or a backend topic.
fn on_message(node: &Node, shared: &Shared, message: &redis::Msg) {
    let channel = message.get_channel_name();
    let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
        tracing::warn!(channel, "dropping a message that is not UTF-8");
        return;
    };
    if channel == shared.bus {
        return on_bus(node, shared, payload);
    }
    // Backend topics: one node (the leader) handles each message, and the result reaches every
    // node through the bus like any other.
    if !shared.leader.load(Ordering::Acquire) {
        return;
    }
    if channel == shared.topics[0] {
        match parse_topic::<RoomMessage>("topic-room-message", payload) {
            Ok(m) => node.publish_chat(
                m.room,
                m.user.unwrap_or_else(|| User::Name("system".to_owned())),
                &m.text,
            ),
            Err(e) => tracing::warn!(topic = channel, error = %e, "dropping a topic message"),
        }
    } else if channel == shared.topics[1] {
        match parse_topic::<NotifyRequest>("notify-request", payload) {
            Ok(request) => {
                node.notify(request);
            }
            Err(e) => tracing::warn!(topic = channel, error = %e, "dropping a topic message"),
        }
    } else if channel == shared.topics[2] {
        match parse_topic::<SystemEvent>("topic-system-event", payload) {
            Ok(event) => {
                node.notify(NotifyRequest {
                    user_id: None,
                    message: event.message,
                    kind: Some(event.kind.unwrap_or_else(|| "system".to_owned())),
                });
            }
            Err(e) => tracing::warn!(topic = channel, error = %e, "dropping a topic message"),
        }
    }
}

/// Checks a topic payload against its schema, then reads it.
fn parse_topic<T: serde::de::DeserializeOwned>(schema: &str, payload: &str) -> Result<T, String> {
    static VALIDATORS: OnceLock<Vec<(&str, jsonschema::Validator)>> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        ["topic-room-message", "notify-request", "topic-system-event"]
            .into_iter()
            .map(|name| {
                let schema = herald_protocol::schema(name).expect("the protocol has it");
                let validator = jsonschema::validator_for(schema.as_value())
                    .expect("the generated schema compiles");
                (name, validator)
            })
            .collect()
    });
    let value: serde_json::Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let (_, validator) = validators
        .iter()
        .find(|(name, _)| *name == schema)
        .expect("a known schema");
    if let Some(fault) = crate::inbound::first_violation(validator, &value) {
        return Err(fault);
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Acts on one bus message (see [`super::scripts`] for the format).
fn on_bus(node: &Node, shared: &Shared, payload: &str) {
    let (kind, rest) = payload.split_at(payload.len().min(2));
    match kind {
        "R\n" => {
            let mut parts = rest.splitn(4, '\n');
            let (Some(room), Some(epoch), Some(offset), Some(frame)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return;
            };
            let Ok(offset) = offset.parse() else { return };
            node.deliver_room(
                &RoomName::from(room),
                epoch,
                offset,
                Utf8Bytes::from(frame.to_owned()),
            );
        }
        "V\n" => {
            let mut parts = rest.splitn(3, '\n');
            let (Some(room), Some(except), Some(frame)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return;
            };
            let room = RoomName::from(room);
            let except = except
                .split_once('/')
                .filter(|(node_id, _)| *node_id == shared.node_id)
                .map(|(_, session)| session);
            node.deliver_volatile(&room, except, &Utf8Bytes::from(frame.to_owned()));
        }
        "U\n" => {
            if let Some((frame, target)) = rest.split_once('\n') {
                node.deliver_private(target, &Utf8Bytes::from(frame.to_owned()));
            }
        }
        "S\n" => {
            let mut parts = rest.splitn(3, '\n');
            let (Some(id), Some(kind), Some(json)) = (parts.next(), parts.next(), parts.next())
            else {
                return;
            };
            let Ok(id) = id.parse() else { return };
            match kind {
                "N" => {
                    let Ok(notification) = serde_json::from_str::<Notification>(json) else {
                        tracing::warn!("dropping a notification that does not parse");
                        return;
                    };
                    let user = notification.user_id.as_deref();
                    node.deliver_sse(Some(id), SseKind::Notification { user }, json);
                }
                "E" => node.deliver_sse(Some(id), SseKind::Update, json),
                _ => {}
            }
        }
        _ => tracing::warn!("dropping an unknown bus message"),
    }
}

/// Queues the script that numbers a notification (`N`) or update (`E`) and puts it on the bus.
fn sse_event(
    pipe: &mut redis::Pipeline,
    prefix: &str,
    kind: &str,
    json: serde_json::Result<String>,
) {
    pipe.cmd("EVALSHA")
        .arg(scripts_loaded().sse.get_hash())
        .arg(0)
        .arg(prefix)
        .arg(kind)
        .arg(json.expect("SSE payloads always serialise"));
}
