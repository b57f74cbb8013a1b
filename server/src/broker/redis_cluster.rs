//! The Redis broker on Redis Cluster (`--broker redis+cluster://HOST:PORT,HOST:PORT,...`).
//!
//! The node's side is the Redis broker's ([`super::redis`]: the same queue, fallback, interest
//! and bus messages); this module is its task for a cluster. It talks through the cluster client
//! (RESP3, which routes every command by its key and follows slot moves), runs the scripts of
//! [`super::cluster_scripts`] (one slot each), and listens with sharded subscriptions
//! (`SSUBSCRIBE`) to the channels of the rooms and users it has sessions for, and with plain
//! ones to the events' channel and the backend topics.
//!
//! A batch of operations is split by hash tag (a room, a user, the events): each group is one
//! pipeline, in the order the node submitted its operations, and the groups run at once. The
//! order of one room's (or one user's) operations is kept; operations on different rooms of one
//! batch may reach Redis in either order, as they may from different nodes.
//!
//! Documents ([`super::redis_docs`]) run on the cluster through a cluster connection of their
//! own (a document's keys share one tag; their channel is a plain one); the polling relay,
//! plain pub/sub only, talks to any reachable seed node ([`source`]). On the cluster
//! a failover is noticed at the next heartbeat at the latest: room epochs carry a digest of
//! the primaries' node ids ([`primaries`]), checked at each heartbeat; a change or a
//! primary that does not answer ends the connection (degraded, then reconnected, resubscribed
//! and resynced, with every room on a new epoch). Layer 4.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use ::redis::{PushInfo, Value};
use tokio::sync::mpsc;

use super::cluster_scripts::{self as cs, user_tag};
use super::interest::Interest;
use super::memory::Memory;
use super::redis::{
    act, alone, disconnected, ended, give_up, on_message, scripts_loaded, supervise, took,
    transport_code, user_json, End, Lease, Op, Redis, Runner, Shared, Then, CHATS_PER_CALL,
};
use super::{bus, BrokerEvents, Command, LocalState};
use crate::config::Config;
use crate::ids::new_epoch;

/// The URL scheme of a Redis Cluster.
pub const SCHEME: &str = "redis+cluster://";

/// The seed nodes of a `redis+cluster://[user:password@]h:p,h:p` URL, as `redis://` URLs.
pub fn parse(url: &str) -> anyhow::Result<Vec<String>> {
    let rest = url
        .strip_prefix(SCHEME)
        .ok_or_else(|| anyhow::anyhow!("a Redis Cluster URL starts with {SCHEME}"))?;
    let rest = rest.trim_end_matches('/');
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{auth}{h}"))
        .collect();
    anyhow::ensure!(
        !nodes.is_empty(),
        "a Redis Cluster URL names its nodes: {SCHEME}HOST:PORT,HOST:PORT,..."
    );
    for node in &nodes {
        ::redis::Client::open(node.as_str()).map_err(|e| {
            anyhow::anyhow!("{:?} is not a Redis node: {e}", super::redis::redact(node))
        })?;
    }
    Ok(nodes)
}

/// A Redis broker on the cluster of `url`.
pub fn new(config: &Config, url: &str) -> anyhow::Result<Redis> {
    let nodes = parse(url)?;
    let docs = super::redis_docs::DocsSource::Cluster(nodes.clone());
    let runner: Runner = Box::new(move |shared, events, fallback, slot| {
        let nodes = nodes.clone();
        Box::pin(supervise(
            shared,
            events,
            fallback,
            slot,
            move |s, e, f, l| run(nodes.clone(), s, e, f, l),
        ))
    });
    Ok(Redis::with_runner(config, url, runner, docs))
}

/// Connections for the polling relay ([`super::relay`]), which uses plain pub/sub only: a
/// Redis Cluster carries a plain `PUBLISH` to every node, so any reachable seed node serves.
pub fn source(url: &str) -> anyhow::Result<super::RedisSource> {
    let clients = parse(url)?
        .iter()
        .map(|node| ::redis::Client::open(node.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let clients = Arc::new(clients);
    Ok(Arc::new(move || {
        let clients = clients.clone();
        Box::pin(async move {
            let mut last = None;
            for client in clients.iter() {
                let reached = tokio::time::timeout(
                    Duration::from_secs(1),
                    client.get_multiplexed_async_connection(),
                )
                .await;
                match reached {
                    Ok(Ok(_)) => return Ok(client.clone()),
                    Ok(Err(e)) => last = Some(e),
                    Err(_) => {}
                }
            }
            Err(last.unwrap_or_else(|| {
                ::redis::RedisError::from((
                    ::redis::ErrorKind::Io,
                    "no node of the Redis Cluster answered",
                ))
            }))
        })
    }))
}

/// The cluster's scripts, with their SHA1s.
struct Scripts {
    join: ::redis::Script,
    leave: ::redis::Script,
    members: ::redis::Script,
    chat: ::redis::Script,
    roster: ::redis::Script,
    drop_room: ::redis::Script,
    resync_room: ::redis::Script,
    online: ::redis::Script,
    offline: ::redis::Script,
    resync_user: ::redis::Script,
    private: ::redis::Script,
    direct: ::redis::Script,
    heartbeat: ::redis::Script,
    dead: ::redis::Script,
    forget: ::redis::Script,
    catch_up: ::redis::Script,
}

impl Scripts {
    fn all(&self) -> [&::redis::Script; 16] {
        [
            &self.join,
            &self.leave,
            &self.members,
            &self.chat,
            &self.roster,
            &self.drop_room,
            &self.resync_room,
            &self.online,
            &self.offline,
            &self.resync_user,
            &self.private,
            &self.direct,
            &self.heartbeat,
            &self.dead,
            &self.forget,
            &self.catch_up,
        ]
    }
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        join: ::redis::Script::new(&cs::join()),
        leave: ::redis::Script::new(&cs::leave()),
        members: ::redis::Script::new(&cs::members()),
        chat: ::redis::Script::new(&cs::chat()),
        roster: ::redis::Script::new(&cs::roster()),
        drop_room: ::redis::Script::new(&cs::drop_room()),
        resync_room: ::redis::Script::new(&cs::resync_room()),
        online: ::redis::Script::new(cs::ONLINE),
        offline: ::redis::Script::new(cs::OFFLINE),
        resync_user: ::redis::Script::new(cs::RESYNC_USER),
        private: ::redis::Script::new(cs::PRIVATE),
        direct: ::redis::Script::new(cs::DIRECT),
        heartbeat: ::redis::Script::new(cs::HEARTBEAT),
        dead: ::redis::Script::new(cs::DEAD),
        forget: ::redis::Script::new(cs::FORGET),
        catch_up: ::redis::Script::new(&cs::catch_up()),
    })
}

/// Key names on the cluster.
struct Keys<'a>(&'a Shared);

impl Keys<'_> {
    fn room(&self, room: &str) -> String {
        format!("{}:room:{{{room}}}", self.0.prefix)
    }
    fn room_channel(&self, room: &str) -> String {
        format!("{}:bus", self.room(room))
    }
    fn user(&self, user_id: &str) -> String {
        self.user_tagged(&user_tag(user_id))
    }
    fn user_tagged(&self, tag: &str) -> String {
        format!("{}:user:{{{tag}}}", self.0.prefix)
    }
    fn user_channel(&self, user_id: &str) -> String {
        format!("{}:bus", self.user(user_id))
    }
    fn nodes(&self) -> String {
        format!("{}:{{nodes}}", self.0.prefix)
    }
    fn alive(&self) -> String {
        format!("{}:alive", self.nodes())
    }
    fn node_rooms(&self, node: &str) -> String {
        format!("{}:node:{{{node}}}:rooms", self.0.prefix)
    }
    fn node_users(&self, node: &str) -> String {
        format!("{}:node:{{{node}}}:users", self.0.prefix)
    }
    fn events(&self) -> String {
        format!("{}:sse:offset", self.0.prefix)
    }
}

/// Adds a script call naming `key` (which routes it) to a pipeline.
fn eval<'a>(
    pipe: &'a mut ::redis::Pipeline,
    script: &::redis::Script,
    key: &str,
) -> &'a mut ::redis::Pipeline {
    pipe.cmd("EVALSHA").arg(script.get_hash()).arg(1).arg(key)
}

/// A script call naming `key`, alone.
fn call(script: &::redis::Script, key: &str) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(1).arg(key);
    cmd
}

/// Runs the broker task, and runs it again if it dies.
/// The connected task's state.
struct Link {
    conn: ClusterConnection,
    /// Sharded channels of local rooms and users.
    interest: Interest,
    /// This node's index entries (`r:ROOM`, `u:TAG`), held by sessions like channels.
    index: Interest,
    /// The nodes found dead at the last reaping round (usually reaped since: none).
    dead: Vec<String>,
}

async fn run(
    nodes: Vec<String>,
    shared: Arc<Shared>,
    events: Weak<dyn BrokerEvents>,
    fallback: Arc<Memory>,
    mut lease: Lease,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match connect(&nodes, &shared, &events, &fallback).await {
            Ok((mut link, pushes)) => {
                backoff = Duration::from_millis(100);
                shared.up.store(true, Ordering::Release);
                tracing::info!(node = %shared.node_id, "cluster broker connected (Redis Cluster)");
                if let Some(events) = events.upgrade() {
                    events.reconnected();
                }
                let end = serve(&mut link, pushes, &shared, &events, &fallback, lease.rx()).await;
                disconnected(&shared, &events, &fallback);
                if !ended(end) {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "Redis Cluster unreachable; retrying"),
        }
        // Until the next attempt, commands are carried out here alone.
        if !alone(&shared, &events, lease.rx(), &fallback, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Subscribes to (or unsubscribes from) sharded channels, each on its shard.
async fn listen(
    conn: &ClusterConnection,
    channels: &[String],
    subscribe: bool,
) -> ::redis::RedisResult<()> {
    let calls = channels.iter().map(|channel| {
        let mut conn = conn.clone();
        async move {
            let call = async {
                if subscribe {
                    conn.ssubscribe(channel).await
                } else {
                    conn.sunsubscribe(channel).await
                }
            };
            tokio::time::timeout(Duration::from_secs(5), call)
                .await
                .map_err(|_| {
                    ::redis::RedisError::from((
                        ::redis::ErrorKind::Io,
                        "Redis did not confirm a subscription in time",
                    ))
                })?
        }
    });
    for result in futures_util::future::join_all(calls).await {
        result?;
    }
    Ok(())
}

async fn connect(
    nodes: &[String],
    shared: &Shared,
    events: &Weak<dyn BrokerEvents>,
    fallback: &Memory,
) -> ::redis::RedisResult<(Link, mpsc::UnboundedReceiver<PushInfo>)> {
    let (push_tx, pushes) = mpsc::unbounded_channel();
    let client = ::redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
        .use_protocol(::redis::ProtocolVersion::RESP3)
        .push_sender(push_tx)
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(5))
        .build()?;
    let mut conn = client.get_async_connection().await?;
    let everywhere = RoutingInfo::MultiNode((
        MultipleNodeRoutingInfo::AllMasters,
        Some(ResponsePolicy::AllSucceeded),
    ));
    let mut code = vec![scripts_loaded().event.clone()];
    code.extend(scripts().all().into_iter().cloned());
    for script in &code {
        let mut load = ::redis::cmd("SCRIPT");
        load.arg("LOAD").arg(script_code(script));
        conn.route_command(load, everywhere.clone()).await?;
    }
    let generation = primaries(&mut conn).await?;
    if *shared.generation.read() != generation {
        tracing::info!(generation = %generation, "the cluster's primaries (room epochs follow them)");
        *shared.generation.write() = generation;
    }
    let mut always = vec![shared.bus.clone()];
    always.extend(shared.topics.iter().map(|(c, _)| c.clone()));
    conn.subscribe(&always).await?;
    let mut link = Link {
        conn,
        interest: Interest::default(),
        index: Interest::default(),
        dead: Vec::new(),
    };
    heartbeat(&mut link, shared).await?;
    shared.channels.store(0, Ordering::Relaxed);
    if let Some(events) = events.upgrade() {
        fallback.reset();
        events.reset();
        let state = events.local_state();
        let keys = Keys(shared);
        for (room, session, _) in &state.members {
            link.interest
                .want(&keys.room_channel(room.as_str()), session);
        }
        for (user_id, session, transport) in &state.users {
            if transport.speaks_frames() {
                link.interest.want(&keys.user_channel(user_id), session);
            }
        }
        let channels = link.interest.to_subscribe();
        listen(&link.conn, &channels, true).await?;
        shared
            .channels
            .store(link.interest.subscribed() as u64, Ordering::Relaxed);
        resync(&mut link, shared, &state).await?;
    }
    Ok((link, pushes))
}

/// The source of a script (for `SCRIPT LOAD` on every primary).
fn script_code(script: &::redis::Script) -> &'static str {
    // The scripts are static; find the code by hash.
    static CODES: OnceLock<HashMap<String, String>> = OnceLock::new();
    let codes = CODES.get_or_init(|| {
        let mut all: Vec<String> = vec![super::scripts::EVENT.to_owned()];
        all.extend([
            cs::join(),
            cs::leave(),
            cs::members(),
            cs::chat(),
            cs::roster(),
            cs::drop_room(),
            cs::resync_room(),
            cs::ONLINE.to_owned(),
            cs::OFFLINE.to_owned(),
            cs::RESYNC_USER.to_owned(),
            cs::PRIVATE.to_owned(),
            cs::DIRECT.to_owned(),
            cs::HEARTBEAT.to_owned(),
            cs::DEAD.to_owned(),
            cs::FORGET.to_owned(),
            cs::catch_up(),
        ]);
        all.into_iter()
            .map(|code| (::redis::Script::new(&code).get_hash().to_owned(), code))
            .collect()
    });
    codes
        .get(script.get_hash())
        .map(String::as_str)
        .expect("every cluster script is listed")
}

/// The generation of the cluster's primaries: a digest of the ids of the nodes serving slots as
/// primaries, in the cluster's own view (`CLUSTER NODES`). A failover promotes a replica (another
/// id) which may have missed the last writes of its shard, so the generation changes, every room
/// shows a new epoch, and a resume from before it answers `recovered: false` rather than replay
/// a stream with a hole (the same rule as with Sentinel, for every room, not only the failed
/// shard's). Fails while a primary serving slots is marked failed or suspected (`fail?`): its
/// slots are not served until a replica takes over.
async fn primaries(conn: &mut ClusterConnection) -> ::redis::RedisResult<Arc<str>> {
    let mut nodes = ::redis::cmd("CLUSTER");
    nodes.arg("NODES");
    let anywhere = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
    let answer = conn.route_command(nodes, anywhere).await?;
    let text: String = ::redis::from_redis_value(answer)?;
    primaries_of(&text)
        .map(|ids| generation_of(ids).into())
        .map_err(|failed| {
            ::redis::RedisError::from((
                ::redis::ErrorKind::Io,
                "a cluster primary is failing",
                failed,
            ))
        })
}

/// The ids of the primaries serving slots in a `CLUSTER NODES` text, or the address of one that
/// is marked failed or suspected.
fn primaries_of(text: &str) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // id, address, flags, primary, ping, pong, epoch, link, slots...
        if fields.len() < 9 {
            continue;
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        if !flags.contains(&"master") {
            continue;
        }
        if flags.contains(&"fail") || flags.contains(&"fail?") {
            return Err(fields[1].to_owned());
        }
        ids.push(fields[0].to_owned());
    }
    Ok(ids)
}

/// Eight hex digits naming a set of node ids (FNV-1a over them, sorted).
fn generation_of(mut ids: Vec<String>) -> String {
    ids.sort();
    let mut hash: u32 = 0x811c_9dc5;
    for byte in ids.join(",").bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// Renews the heartbeat and leadership, and checks that the cluster's primaries are the ones
/// this connection started with (a failover, or a primary that does not answer, ends it: the
/// node serves alone, reports `degraded`, and reconnects, resubscribes and resyncs).
async fn heartbeat(link: &mut Link, shared: &Shared) -> ::redis::RedisResult<()> {
    let now = primaries(&mut link.conn).await?;
    if now != *shared.generation.read() {
        return Err(::redis::RedisError::from((
            ::redis::ErrorKind::Io,
            "the cluster's primaries changed (a failover)",
        )));
    }
    let keys = Keys(shared);
    let ttl = (shared.presence_ttl.as_millis() * 3 / 4).max(500) as u64;
    let mut cmd = call(&scripts().heartbeat, &keys.alive());
    cmd.arg(keys.nodes()).arg(&shared.node_id).arg(ttl);
    let leads: i64 = cmd.query_async(&mut link.conn).await?;
    shared.leader.store(leads == 1, Ordering::Release);
    Ok(())
}

/// Removes a node's members and users from presence, then the node itself.
async fn reap_node(link: &mut Link, shared: &Shared, node: &str) -> ::redis::RedisResult<()> {
    let keys = Keys(shared);
    let s = scripts();
    let rooms: Vec<String> = ::redis::cmd("SMEMBERS")
        .arg(keys.node_rooms(node))
        .query_async(&mut link.conn)
        .await?;
    for room in rooms {
        let mut cmd = call(&s.drop_room, &keys.room(&room));
        cmd.arg(&shared.prefix).arg(node).arg(&room);
        let _: i64 = cmd.query_async(&mut link.conn).await?;
    }
    let users: Vec<String> = ::redis::cmd("SMEMBERS")
        .arg(keys.node_users(node))
        .query_async(&mut link.conn)
        .await?;
    for tag in users {
        let key = keys.user_tagged(&tag);
        let mut cmd = call(&s.resync_user, &key);
        cmd.arg(&key).arg(node);
        let _: i64 = cmd.query_async(&mut link.conn).await?;
    }
    let _: i64 = ::redis::cmd("DEL")
        .arg(keys.node_rooms(node))
        .arg(keys.node_users(node))
        .query_async(&mut link.conn)
        .await?;
    let mut cmd = call(&s.forget, &keys.alive());
    cmd.arg(keys.nodes()).arg(node);
    let _: i64 = cmd.query_async(&mut link.conn).await?;
    Ok(())
}

/// Makes the cluster hold exactly this node's members and users, and its index.
async fn resync(link: &mut Link, shared: &Shared, state: &LocalState) -> ::redis::RedisResult<()> {
    let keys = Keys(shared);
    let s = scripts();
    let node = &shared.node_id;
    let mut rooms: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let old_rooms: Vec<String> = ::redis::cmd("SMEMBERS")
        .arg(keys.node_rooms(node))
        .query_async(&mut link.conn)
        .await?;
    for room in old_rooms {
        rooms.entry(room).or_default();
    }
    for (room, session, user) in &state.members {
        rooms
            .entry(room.as_str().to_owned())
            .or_default()
            .push((shared.member(session), user_json(user)));
        link.index.want(&format!("r:{room}"), session);
    }
    let mut users: HashMap<String, Vec<(String, &'static str)>> = HashMap::new();
    let old_users: Vec<String> = ::redis::cmd("SMEMBERS")
        .arg(keys.node_users(node))
        .query_async(&mut link.conn)
        .await?;
    for tag in old_users {
        users.entry(tag).or_default();
    }
    for (user_id, session, transport) in &state.users {
        let tag = user_tag(user_id);
        link.index.want(&format!("u:{tag}"), session);
        users
            .entry(tag)
            .or_default()
            .push((shared.member(session), transport_code(*transport)));
    }
    // The index first holds every room and user this node may have entries in, so a node dying
    // half-way is still reaped whole.
    let held = link.index.to_subscribe();
    index_update(link, shared, &held, true).await?;
    for (room, members) in &rooms {
        let mut cmd = call(&s.resync_room, &keys.room(room));
        cmd.arg(&shared.prefix).arg(node).arg(room);
        for (member, user) in members {
            cmd.arg(member).arg(user);
        }
        let _: i64 = cmd.query_async(&mut link.conn).await?;
    }
    for (tag, connections) in &users {
        let key = keys.user_tagged(tag);
        let mut cmd = call(&s.resync_user, &key);
        cmd.arg(&key).arg(node);
        for (member, transport) in connections {
            cmd.arg(member).arg(*transport);
        }
        let _: i64 = cmd.query_async(&mut link.conn).await?;
    }
    // Then exactly what is here.
    let _: i64 = ::redis::cmd("DEL")
        .arg(keys.node_rooms(node))
        .arg(keys.node_users(node))
        .query_async(&mut link.conn)
        .await?;
    index_update(link, shared, &held, true).await
}

/// Adds (or removes) index entries (`r:ROOM`, `u:TAG`) of this node.
async fn index_update(
    link: &mut Link,
    shared: &Shared,
    entries: &[String],
    add: bool,
) -> ::redis::RedisResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let keys = Keys(shared);
    let (mut rooms, mut users) = (Vec::new(), Vec::new());
    for entry in entries {
        match entry.split_once(':') {
            Some(("r", room)) => rooms.push(room),
            Some(("u", tag)) => users.push(tag),
            _ => {}
        }
    }
    let verb = if add { "SADD" } else { "SREM" };
    let mut pipe = ::redis::pipe();
    if !rooms.is_empty() {
        pipe.cmd(verb)
            .arg(keys.node_rooms(&shared.node_id))
            .arg(&rooms)
            .ignore();
    }
    if !users.is_empty() {
        pipe.cmd(verb)
            .arg(keys.node_users(&shared.node_id))
            .arg(&users)
            .ignore();
    }
    pipe.query_async::<()>(&mut link.conn).await
}

async fn serve(
    link: &mut Link,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
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
            push = pushes.recv() => {
                let Some(push) = push else {
                    return End::Lost("the cluster connection closed".into());
                };
                if push.kind == ::redis::PushKind::Disconnection {
                    // The client resubscribes by itself, but what was published meanwhile is
                    // lost: start again from a resync.
                    return End::Lost("a cluster node's connection dropped".into());
                }
                if push.kind == ::redis::PushKind::SUnsubscribe && lost_channel(&link.interest, &push) {
                    // Redis drops sharded subscriptions whose slot moved to another shard; one
                    // this node still needs means a resubscription from scratch, never silence.
                    return End::Lost("a shard dropped a subscription (its slot moved)".into());
                }
                let Some(message) = ::redis::Msg::from_push_info(push) else { continue };
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
                if let Err(e) = heartbeat(link, shared).await {
                    return End::Lost(e.to_string());
                }
            }
            _ = reap_every.tick() => {
                let keys = Keys(shared);
                let mut cmd = call(&scripts().dead, &keys.alive());
                cmd.arg(keys.nodes());
                let dead: ::redis::RedisResult<Vec<String>> = cmd.query_async(&mut link.conn).await;
                let dead = match dead {
                    Ok(dead) => dead,
                    Err(e) => return End::Lost(e.to_string()),
                };
                link.dead.clone_from(&dead);
                for node in &dead {
                    if let Err(e) = reap_node(link, shared, node).await {
                        return End::Lost(e.to_string());
                    }
                }
                if !dead.is_empty() {
                    tracing::info!(nodes = dead.len(), "removed dead nodes from presence");
                }
            }
        }
    }
}

/// Whether an `SUNSUBSCRIBE` push names a channel this node still counts as subscribed (the
/// ones it unsubscribed itself are no longer counted when their confirmation comes).
fn lost_channel(interest: &Interest, push: &PushInfo) -> bool {
    push.data
        .first()
        .and_then(|c| ::redis::from_redis_value_ref::<String>(c).ok())
        .is_some_and(|channel| interest.is_subscribed(&channel))
}

/// One pipeline of a batch: the operations of one hash tag, in order.
#[derive(Default)]
struct Group {
    pipe: ::redis::Pipeline,
    /// For each command of the pipeline, its place in the batch's answers.
    places: Vec<usize>,
    /// How many chats the group's last command carries (0: it is not a chat call).
    chats: usize,
}

/// Sends a batch as one pipeline per hash tag, all at once, and acts on the answers in the
/// batch's order. On failure the batch is carried out here alone and the connection given up.
async fn run_batch(
    link: &mut Link,
    shared: &Shared,
    events: &dyn BrokerEvents,
    fallback: &Memory,
    batch: &mut Vec<Op>,
) -> Option<End> {
    let s = scripts();
    let keys = Keys(shared);
    for op in batch.iter() {
        note(link, shared, op);
    }
    let held = link.index.to_subscribe();
    if let Err(e) = index_update(link, shared, &held, true).await {
        return Some(give_up(events, fallback, batch, e));
    }
    let subscribe = link.interest.to_subscribe();
    if let Err(e) = listen(&link.conn, &subscribe, true).await {
        return Some(give_up(events, fallback, batch, e));
    }
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut then: Vec<Then> = Vec::with_capacity(batch.len());
    let mut shutdown = None;
    let mut barriers = Vec::new();
    let p = &shared.prefix;
    let dead = link.dead.clone();
    for op in batch.iter_mut() {
        let key = match op {
            Op::Command(command) => match command {
                Command::Join { room, .. }
                | Command::Members { room, .. }
                | Command::Leave { room, .. }
                | Command::Publish { room, .. }
                | Command::Volatile { room, .. }
                | Command::Direct { room, .. }
                | Command::Roster { room, .. }
                | Command::CatchUp { room, .. } => keys.room(room.as_str()),
                Command::Private { target, .. } => keys.user(target),
                Command::Event(_) | Command::Ordered { .. } => keys.events(),
                Command::Doc(_) => continue,
            },
            Op::Online { user_id, .. } | Op::Offline { user_id, .. } => keys.user(user_id),
            Op::Shutdown(done) => {
                let (tx, _) = tokio::sync::oneshot::channel();
                shutdown = Some(std::mem::replace(done, tx));
                continue;
            }
            Op::Barrier(done) => {
                let (tx, _) = tokio::sync::oneshot::channel();
                barriers.push(std::mem::replace(done, tx));
                continue;
            }
        };
        let group = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            let mut g = Group::default();
            g.pipe.ignore_errors();
            g
        });
        let pipe = &mut group.pipe;
        let mut place = |then_item: Then, group_places: &mut Vec<usize>| {
            group_places.push(then.len());
            then.push(then_item);
        };
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
                    eval(pipe, &s.join, &key)
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
                    place(
                        Then::Join {
                            session: session.clone(),
                            room: room.clone(),
                            user: user.clone(),
                            resumed: since.is_some(),
                        },
                        &mut group.places,
                    );
                }
                Command::Members { session, room } => {
                    eval(pipe, &s.members, &key).arg(p).arg(room.as_str());
                    place(
                        Then::Members {
                            session: session.clone(),
                            room: room.clone(),
                        },
                        &mut group.places,
                    );
                }
                Command::Leave { session, room, .. } => {
                    eval(pipe, &s.leave, &key)
                        .arg(p)
                        .arg(room.as_str())
                        .arg(shared.member(session));
                    place(Then::Nothing, &mut group.places);
                }
                Command::Publish { room, prefix, .. } => {
                    if group.chats == 0 || group.chats == CHATS_PER_CALL {
                        eval(pipe, &s.chat, &key)
                            .arg(p)
                            .arg(shared.history_size)
                            .arg(shared.history_ttl_ms);
                        place(Then::Nothing, &mut group.places);
                        group.chats = 0;
                    }
                    pipe.arg(room.as_str())
                        .arg(prefix.as_str())
                        .arg(new_epoch());
                    group.chats += 1;
                    continue;
                }
                Command::Volatile {
                    room,
                    except,
                    frame,
                } => {
                    let except = except.as_deref().map(|s| shared.member(s));
                    pipe.cmd("SPUBLISH")
                        .arg(keys.room_channel(room.as_str()))
                        .arg(bus::volatile(room, except.as_deref(), frame.as_str()));
                    place(Then::Nothing, &mut group.places);
                }
                Command::Private {
                    from,
                    target,
                    frame,
                } => {
                    eval(pipe, &s.private, &key)
                        .arg(&key)
                        .arg(bus::private(target, frame.as_str()))
                        .arg(&dead);
                    place(
                        Then::Private {
                            from: from.clone(),
                            target: target.clone(),
                        },
                        &mut group.places,
                    );
                }
                Command::Event(event) => {
                    eval(pipe, &scripts_loaded().event, &key)
                        .arg(p)
                        .arg(bus::event_body(event));
                    place(Then::Nothing, &mut group.places);
                }
                Command::Direct {
                    from,
                    room,
                    target,
                    frame,
                } => {
                    eval(pipe, &s.direct, &key)
                        .arg(&key)
                        .arg(room.as_str())
                        .arg(&**target)
                        .arg(frame.as_str())
                        .arg(&dead);
                    place(
                        Then::Direct {
                            from: from.clone(),
                            room: room.clone(),
                            target: target.clone(),
                        },
                        &mut group.places,
                    );
                }
                Command::Roster { session, room } => {
                    eval(pipe, &s.roster, &key).arg(p).arg(room.as_str());
                    place(
                        Then::Roster {
                            session: session.clone(),
                            room: room.clone(),
                        },
                        &mut group.places,
                    );
                }
                Command::CatchUp { room, epoch, after } => {
                    eval(pipe, &s.catch_up, &key)
                        .arg(p)
                        .arg(room.as_str())
                        .arg(shared.epoch_in(epoch))
                        .arg(*after)
                        .arg(shared.history_ttl_ms)
                        .arg(shared.history_size)
                        .arg(new_epoch());
                    place(
                        Then::CatchUp {
                            room: room.clone(),
                            asked: (epoch.clone(), *after),
                        },
                        &mut group.places,
                    );
                }
                Command::Doc(_) => {}
                Command::Ordered { capability, body } => {
                    super::redis_streams::publish(pipe, &shared.bus, capability, body);
                    place(Then::Nothing, &mut group.places);
                }
            },
            Op::Online {
                session, transport, ..
            } => {
                eval(pipe, &s.online, &key)
                    .arg(&key)
                    .arg(shared.member(session))
                    .arg(transport_code(*transport));
                place(Then::Nothing, &mut group.places);
            }
            Op::Offline { session, .. } => {
                eval(pipe, &s.offline, &key)
                    .arg(&key)
                    .arg(shared.member(session));
                place(Then::Nothing, &mut group.places);
            }
            Op::Shutdown(_) | Op::Barrier(_) => {}
        }
        group.chats = 0;
    }
    let calls = order
        .iter()
        .filter_map(|key| groups.remove(key))
        .map(|group| {
            let mut conn = link.conn.clone();
            async move {
                let answers: ::redis::RedisResult<Vec<Value>> =
                    group.pipe.query_async(&mut conn).await;
                answers.map(|answers| (group.places, answers))
            }
        });
    let mut answers: Vec<Option<Value>> = then.iter().map(|_| None).collect();
    for result in futures_util::future::join_all(calls).await {
        match result {
            Ok((places, values)) => {
                for (place, value) in places.into_iter().zip(values) {
                    answers[place] = Some(value);
                }
            }
            Err(e) => return Some(give_up(events, fallback, batch, e)),
        }
    }
    batch.clear();
    for (answer, then) in answers.into_iter().zip(then) {
        let Some(answer) = answer else { continue };
        if let Value::ServerError(e) = &answer {
            tracing::error!(error = ?e, "a broker script failed");
            if e.code() == "NOSCRIPT" {
                return Some(End::Lost("Redis lost the scripts".into()));
            }
            if matches!(
                e.code(),
                "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY"
            ) {
                // The cluster changed under the pipeline (a slot moved, a failover): start again
                // from a fresh view of it, resynced, rather than go on with half a picture.
                return Some(End::Lost(format!("the cluster changed: {}", e.code())));
            }
            continue;
        }
        act(shared, events, then, answer);
    }
    let unsubscribe = link.interest.to_unsubscribe();
    if let Err(e) = listen(&link.conn, &unsubscribe, false).await {
        return Some(End::Lost(e.to_string()));
    }
    let freed = link.index.to_unsubscribe();
    if let Err(e) = index_update(link, shared, &freed, false).await {
        return Some(End::Lost(e.to_string()));
    }
    shared
        .channels
        .store(link.interest.subscribed() as u64, Ordering::Relaxed);
    for done in barriers {
        let _ = done.send(());
    }
    if let Some(done) = shutdown {
        let node = shared.node_id.clone();
        let _ = reap_node(link, shared, &node).await;
        let _ = done.send(());
        return Some(End::Stop);
    }
    None
}

/// Records the channels and index entries an operation needs or frees.
fn note(link: &mut Link, shared: &Shared, op: &Op) {
    let keys = Keys(shared);
    match op {
        Op::Command(Command::Join { session, room, .. }) => {
            link.interest
                .want(&keys.room_channel(room.as_str()), session);
            link.index.want(&format!("r:{room}"), session);
        }
        Op::Command(Command::Leave { session, room, .. }) => {
            link.interest
                .unwant(&keys.room_channel(room.as_str()), session);
            link.index.unwant(&format!("r:{room}"), session);
        }
        Op::Online {
            user_id,
            session,
            transport,
        } => {
            if transport.speaks_frames() {
                link.interest.want(&keys.user_channel(user_id), session);
            }
            link.index
                .want(&format!("u:{}", user_tag(user_id)), session);
        }
        Op::Offline { user_id, session } => {
            link.interest.unwant(&keys.user_channel(user_id), session);
            link.index
                .unwant(&format!("u:{}", user_tag(user_id)), session);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_names_the_primaries_serving_slots() {
        let a = generation_of(vec!["r1".into(), "r2".into(), "r3".into()]);
        assert_eq!(a.len(), 8);
        assert_eq!(
            a,
            generation_of(vec!["r3".into(), "r1".into(), "r2".into()])
        );
        assert_ne!(
            a,
            generation_of(vec!["r1".into(), "r2".into(), "r4".into()])
        );
        let nodes = "\
a1 127.0.0.1:1@11 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:2@12 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:3@13 slave a1 0 0 1 connected
d4 127.0.0.1:4@14 master - 0 0 3 connected 10923-16383
e5 127.0.0.1:5@15 master,fail - 0 0 4 disconnected
";
        assert_eq!(primaries_of(nodes).unwrap(), ["a1", "b2", "d4"]);
        let failing = nodes.replace("b2 127.0.0.1:2@12 master", "b2 127.0.0.1:2@12 master,fail");
        assert_eq!(primaries_of(&failing).unwrap_err(), "127.0.0.1:2@12");
        // Suspected (`fail?`, not yet agreed) counts too: its slots are not served meanwhile.
        let doubted = nodes.replace("b2 127.0.0.1:2@12 master", "b2 127.0.0.1:2@12 master,fail?");
        assert_eq!(primaries_of(&doubted).unwrap_err(), "127.0.0.1:2@12");
    }

    #[test]
    fn a_dropped_sharded_subscription_counts_only_when_still_needed() {
        let mut interest = Interest::default();
        interest.want("P:room:{a}:bus", "s1");
        interest.to_subscribe();
        let push = |channel: &str| PushInfo {
            kind: ::redis::PushKind::SUnsubscribe,
            data: vec![
                Value::BulkString(channel.as_bytes().to_vec()),
                Value::Int(0),
            ],
        };
        assert!(lost_channel(&interest, &push("P:room:{a}:bus")));
        assert!(!lost_channel(&interest, &push("P:room:{b}:bus")));
        interest.unwant("P:room:{a}:bus", "s1");
        interest.to_unsubscribe();
        assert!(!lost_channel(&interest, &push("P:room:{a}:bus")));
    }

    #[test]
    fn cluster_urls_name_their_seed_nodes() {
        assert_eq!(
            parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").unwrap(),
            ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert_eq!(
            parse("redis+cluster://:pw@h1:1,h2:2/").unwrap(),
            ["redis://:pw@h1:1", "redis://:pw@h2:2"]
        );
        assert!(parse("redis+cluster://").is_err());
        assert!(parse("redis://h:1").is_err());
    }
}
