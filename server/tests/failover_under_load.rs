//! A Redis primary killed UNDER LOAD, under three real nodes: first a primary with its replica
//! and a sentinel (`redis+sentinel://`), then a 3-primary Redis Cluster with a replica each
//! (`redis+cluster://`, the primary holding a busy room killed). Three rooms of six members,
//! spread over the nodes, each with one member sending numbered chats every few milliseconds
//! through the whole failover. `/healthz` must show `degraded` on a node and then `ok` on all;
//! then the senders stop and a member on every node sends a marker chat (again, in rounds,
//! until every member has one from every node), so no node stays silently unsubscribed.
//!
//! The accounting reads only what each client received, in order. Chats carry their room
//! offset (not the epoch, which `room_joined` and `room_resumed` give): within one epoch the
//! offsets must follow one another, and a discontinuity is allowed only right after the server
//! said where the stream now stands (`room_resumed`, or the `room_joined` that answers a resume
//! with `since` after a reconnection). Any other discontinuity is a SILENT GAP. Every chat the
//! sender saw come back must have reached every other member, unless a `recovered: false`
//! (either frame) arrived between the chats around it: anything else was LOST SILENTLY.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    eventually, node, node_on, prefix, redis_cli, wait_broker, ReplicatedCluster, SentinelSet,
};
use common::{health, Client, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

const ROOMS: usize = 3;
const MEMBERS: usize = 6;
const NODES: usize = 3;
/// How often each room's sender sends a chat.
const EVERY: Duration = Duration::from_millis(8);
/// How many chats each sender must see come back before the kill, and again after recovery.
const WARM: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_primary_killed_under_load_loses_nothing_silently() {
    let mut redis = SentinelSet::start().await;
    let p = prefix();
    let nodes: Vec<Server> = (0..NODES).map(|_| node_on(&redis.url(), &p, &[])).collect();
    let promoted = redis.replica_port;
    through_failover(&nodes, || redis.kill_primary(), promoted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_primary_killed_under_load_loses_nothing_silently() {
    let mut cluster = ReplicatedCluster::start().await;
    let p = prefix();
    let extra = ["--presence-ttl", "2s"];
    let nodes: Vec<Server> = (0..NODES)
        .map(|_| node_on(&cluster.url(), &p, &extra))
        .collect();
    // The shard holding the first room (its keys share the room's hash tag) loses its primary.
    let (primary, replica) = cluster.shard_of(cluster.slot(&format!("{p}:room:{{r0}}")));
    through_failover(&nodes, || cluster.kill(primary), replica).await;
}

/// The control: the same load and reconnections on the machine's Redis with nothing killed
/// passes the same accounting (so what the failover tests name is the failover's doing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_load_without_a_failover_passes_the_accounting() {
    let p = prefix();
    let nodes: Vec<Server> = (0..NODES).map(|_| node(&p)).collect();
    for node in &nodes {
        wait_broker(node, "up", Duration::from_secs(10)).await;
    }
    let load = Load::start(&nodes).await;
    load.wait_acked(WARM, "at first").await;
    load.reconnect(MEMBERS - 1);
    load.wait_acked(WARM, "after a reconnection").await;
    account(&load.finish().await, None);
}

/// The load on `nodes`, `kill` run under it, `/healthz` degraded then ok with the replica on
/// port `promoted` a primary, more load, then the accounting. One member of each room drops its
/// connection and resumes while the nodes are degraded, another one after they recovered.
async fn through_failover(nodes: &[Server], kill: impl FnOnce(), promoted: u16) {
    for node in nodes {
        wait_broker(node, "up", Duration::from_secs(10)).await;
    }
    let load = Load::start(nodes).await;
    load.wait_acked(WARM, "before the kill").await;

    let before = load.acked_total();
    kill();
    wait_health(nodes, "a node's /healthz said degraded", 10, |s| {
        s.iter().any(|s| s == "degraded")
    })
    .await;
    load.reconnect(MEMBERS - 1);
    // Redis's own failover first, so a failure says which side did not recover.
    eventually(
        &format!("the replica on port {promoted} was promoted"),
        Duration::from_secs(20),
        || redis_cli(promoted, &["ROLE"]).starts_with("master"),
    )
    .await;
    wait_health(nodes, "every node's /healthz said ok again", 30, |s| {
        s.iter().all(|s| s == "ok")
    })
    .await;
    let during = load.acked_total() - before;

    load.reconnect(MEMBERS - 2);
    load.wait_acked(WARM, "after recovery").await;
    let logs = load.finish().await;
    account(&logs, Some(during));
}

/// Polls every node's `/healthz` `status` until `done` holds for them (within `within` seconds).
async fn wait_health(nodes: &[Server], what: &str, within: u64, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(within);
    loop {
        let mut statuses = Vec::new();
        for node in nodes {
            let status = health(node).await["status"].as_str().map(str::to_owned);
            statuses.push(status.unwrap_or_default());
        }
        if done(&statuses) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never within {within} s: {what} (now {statuses:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- The clients ------------------------------------------------------------------------------

/// What one client saw of its room, in order; the accounting reads nothing else.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    /// `room_joined`: `recovered` is `None` for a first join, the answer to `since` after a
    /// reconnection otherwise.
    Joined {
        epoch: String,
        offset: u64,
        recovered: Option<bool>,
    },
    /// `room_resumed`: the stream on this node was interrupted; `epoch` and `offset` say where
    /// it stands now.
    Resumed {
        epoch: String,
        offset: u64,
        recovered: bool,
    },
    /// A chat: its offset and text.
    Chat { offset: u64, text: String },
    /// The connection ended; the client reconnects and resumes with `since`.
    Dropped,
}

impl Seen {
    /// The frame as the accounting sees it (`None` for frames it ignores, such as presence).
    /// A frame it reads that lacks a field it needs fails the test, naming the frame.
    fn from_frame(frame: &Value, room: &str) -> Option<Seen> {
        let kind = frame["type"].as_str()?;
        let read = || -> Option<Seen> {
            let epoch = || frame["epoch"].as_str().map(str::to_owned);
            let offset = || frame["offset"].as_u64();
            Some(match kind {
                "room_joined" => Seen::Joined {
                    epoch: epoch()?,
                    offset: offset()?,
                    recovered: frame["recovered"].as_bool(),
                },
                "room_resumed" => Seen::Resumed {
                    epoch: epoch()?,
                    offset: offset()?,
                    recovered: frame["recovered"].as_bool()?,
                },
                _ => Seen::Chat {
                    offset: offset()?,
                    text: frame["text"].as_str()?.to_owned(),
                },
            })
        };
        let ours = match kind {
            "room_joined" | "room_resumed" => frame["room"] == room,
            "chat" => true,
            _ => false,
        };
        ours.then(|| {
            read().unwrap_or_else(|| panic!("a {kind} frame the test cannot read: {frame}"))
        })
    }

    /// Whether the server said here that messages were lost.
    fn tells_loss(&self) -> bool {
        matches!(
            self,
            Seen::Joined {
                recovered: Some(false),
                ..
            } | Seen::Resumed {
                recovered: false,
                ..
            }
        )
    }
}

/// A client's position in its room's stream (epoch, last offset), followed frame by frame.
#[derive(Default)]
struct Position {
    at: Option<(String, u64)>,
}

impl Position {
    /// Moves past `seen`; an error names how it broke the stream's continuity.
    fn see(&mut self, seen: &Seen) -> Result<(), String> {
        match seen {
            Seen::Joined {
                epoch,
                offset,
                recovered: None | Some(false),
            } => {
                self.at = Some((epoch.clone(), *offset));
                Ok(())
            }
            Seen::Joined {
                epoch,
                offset,
                recovered: Some(true),
            }
            | Seen::Resumed {
                epoch,
                offset,
                recovered: true,
            } => self.replays(epoch, *offset),
            Seen::Resumed {
                epoch,
                offset,
                recovered: false,
            } => {
                self.at = Some((epoch.clone(), *offset));
                Ok(())
            }
            Seen::Chat { offset, text } => {
                let Some((epoch, last)) = &mut self.at else {
                    return Err(format!("chat {text:?} before any room_joined"));
                };
                let previous = std::mem::replace(last, *offset);
                if *offset == previous + 1 {
                    Ok(())
                } else {
                    Err(format!(
                        "SILENT GAP: chat {text:?} at offset {offset} right after offset \
                         {previous} of epoch {epoch}, with no room_resumed or recovered:false \
                         between"
                    ))
                }
            }
            Seen::Dropped => Ok(()),
        }
    }

    /// A `recovered: true` answer with the stream at `offset` of `epoch`: every chat after the
    /// client's position follows, in order, so the position stays where it is, in that epoch.
    fn replays(&self, epoch: &str, offset: u64) -> Result<(), String> {
        match &self.at {
            Some((at, last)) if at == epoch && *last <= offset => Ok(()),
            at => Err(format!(
                "recovered:true with the stream at offset {offset} of epoch {epoch}, but the \
                 client was at {at:?}: no replay can continue its stream"
            )),
        }
    }

    /// The `since` of a resume from here.
    fn since(&self) -> Option<Value> {
        let (epoch, offset) = self.at.as_ref()?;
        Some(json!({"epoch": epoch, "offset": offset}))
    }
}

/// The number of a sender's chat (`m17` is 17).
fn number(text: &str) -> Option<u64> {
    text.strip_prefix('m')?.parse().ok()
}

/// What the test asks of a member.
enum Order {
    /// Start sending numbered chats.
    Start,
    /// Stop sending; answered once the last chat sent has come back.
    Stop(oneshot::Sender<()>),
    /// Send one chat with this text (once in the room).
    Say(String),
    /// Close the connection, open another and resume the room from the last position seen.
    Reconnect,
}

/// One member's connection, kept open (and resumed when it drops) until the test lets it go.
struct Member {
    name: String,
    node: usize,
    room: usize,
    log: Arc<Mutex<Vec<Seen>>>,
    /// How many numbered chats it got (for a sender: its own that came back).
    numbered: Arc<AtomicUsize>,
    orders: mpsc::UnboundedSender<Order>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    fn spawn(server: &Server, node: usize, room: usize, name: String) -> Member {
        let log = Arc::new(Mutex::new(Vec::new()));
        let numbered = Arc::new(AtomicUsize::new(0));
        let (orders, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_member(
            server.ws_url("/ws"),
            format!("r{room}"),
            name.clone(),
            log.clone(),
            numbered.clone(),
            rx,
        ));
        Member {
            name,
            node,
            room,
            log,
            numbered,
            orders,
            task,
        }
    }

    fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// How many of its own numbered chats came back (a sender's acknowledgements).
    fn acked(&self) -> usize {
        self.numbered.load(Ordering::Relaxed)
    }

    fn joined(&self) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|s| matches!(s, Seen::Joined { .. }))
    }

    fn markers(&self) -> BTreeSet<String> {
        markers(&self.log())
    }
}

fn markers(log: &[Seen]) -> BTreeSet<String> {
    log.iter()
        .filter_map(|s| match s {
            Seen::Chat { text, .. } => {
                let marker = text.strip_prefix("end:")?;
                Some(marker.split(':').next()?.to_owned())
            }
            _ => None,
        })
        .collect()
}

async fn send(client: &mut Client, frame: Value) {
    // A failed write shows up as the end of the read side, which reconnects.
    let _ = client.ws.send(Message::text(frame.to_string())).await;
}

/// A new connection to `url` joining the room, with `since` the last position seen if any.
async fn resume(url: &str, join: &Value, position: &Position) -> Client {
    let mut client = Client::connect(url).await;
    let mut join = join.clone();
    if let Some(since) = position.since() {
        join["since"] = since;
    }
    send(&mut client, join).await;
    client
}

async fn run_member(
    url: String,
    room: String,
    user: String,
    log: Arc<Mutex<Vec<Seen>>>,
    numbered: Arc<AtomicUsize>,
    mut orders: mpsc::UnboundedReceiver<Order>,
) {
    let join = json!({"type":"join","room":room,"user":user});
    let mut position = Position::default();
    let mut client = resume(&url, &join, &position).await;
    let (mut in_room, mut sending, mut next, mut echoed) = (false, false, 1u64, 0u64);
    let mut stopping: Option<oneshot::Sender<()>> = None;
    let mut to_say: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = client.ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        log.lock().unwrap().push(Seen::Dropped);
                        client = resume(&url, &join, &position).await;
                        in_room = false;
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                let frame: Value = serde_json::from_str(text.as_str()).expect("frames are JSON");
                let Some(seen) = Seen::from_frame(&frame, &room) else {
                    if frame["type"] == "error" {
                        eprintln!("{user} in {room}: {frame}");
                    }
                    continue;
                };
                // The accounting names every problem afterwards, from the log.
                let _ = position.see(&seen);
                match &seen {
                    Seen::Joined { .. } => {
                        in_room = true;
                        for text in to_say.drain(..) {
                            send(&mut client, json!({"type":"chat","text":text})).await;
                        }
                    }
                    Seen::Chat { text, .. } => {
                        if let Some(n) = number(text) {
                            echoed = echoed.max(n);
                            numbered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
                log.lock().unwrap().push(seen);
                if echoed + 1 >= next {
                    if let Some(done) = stopping.take() {
                        let _ = done.send(());
                    }
                }
            }
            _ = tick.tick(), if sending && in_room => {
                send(&mut client, json!({"type":"chat","text":format!("m{next}")})).await;
                next += 1;
            }
            order = orders.recv() => match order {
                Some(Order::Start) => sending = true,
                Some(Order::Stop(done)) => {
                    sending = false;
                    if echoed + 1 >= next {
                        let _ = done.send(());
                    } else {
                        stopping = Some(done);
                    }
                }
                Some(Order::Say(text)) if in_room => {
                    send(&mut client, json!({"type":"chat","text":text})).await;
                }
                Some(Order::Say(text)) => to_say.push(text),
                Some(Order::Reconnect) => {
                    let _ = client.ws.close(None).await;
                    log.lock().unwrap().push(Seen::Dropped);
                    client = resume(&url, &join, &position).await;
                    in_room = false;
                }
                None => return,
            }
        }
    }
}

/// The rooms' members on the nodes, and their senders' traffic.
struct Load {
    members: Vec<Member>,
    nodes: usize,
}

impl Load {
    /// Joins every member (room `r`'s member `i` on node `(r + i) % nodes`, member 0 sending),
    /// then starts the senders.
    async fn start(nodes: &[Server]) -> Load {
        let mut members = Vec::new();
        for room in 0..ROOMS {
            for i in 0..MEMBERS {
                let node = (room + i) % nodes.len();
                let name = format!("r{room}-u{i}-n{node}");
                members.push(Member::spawn(&nodes[node], node, room, name));
            }
        }
        let load = Load {
            members,
            nodes: nodes.len(),
        };
        load.until("every member joined", Duration::from_secs(10), |l| {
            l.members.iter().all(Member::joined)
        })
        .await;
        for sender in load.senders() {
            let _ = sender.orders.send(Order::Start);
        }
        load
    }

    fn senders(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.name.contains("-u0-"))
    }

    /// Has member `i` of every room drop its connection and resume.
    fn reconnect(&self, i: usize) {
        let tag = format!("-u{i}-");
        for member in self.members.iter().filter(|m| m.name.contains(&tag)) {
            let _ = member.orders.send(Order::Reconnect);
        }
    }

    fn acked_total(&self) -> usize {
        self.senders().map(Member::acked).sum()
    }

    /// Waits until every sender has seen `more` more of its chats come back.
    async fn wait_acked(&self, more: usize, when: &str) {
        let want: Vec<usize> = self.senders().map(|s| s.acked() + more).collect();
        self.until(
            &format!("{more} chats came back to every sender {when}"),
            Duration::from_secs(20),
            |l| l.senders().zip(&want).all(|(s, w)| s.acked() >= *w),
        )
        .await;
    }

    /// Polls the members' logs (filled by their connections) until `done` holds.
    async fn until(&self, what: &str, within: Duration, done: impl Fn(&Load) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            if Instant::now() > deadline {
                let acked: Vec<usize> = self.senders().map(Member::acked).collect();
                panic!("never within {within:?}: {what} (senders' chats back: {acked:?})");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the senders once their last chat came back, then has one member per room and node
    /// send a marker chat until every member saw one from every node (a member told
    /// `recovered: false` about the stretch that held a round of markers gets the next round).
    /// The members' logs.
    async fn finish(self) -> Vec<(String, usize, Vec<Seen>)> {
        for sender in self.senders() {
            let (done, stopped) = oneshot::channel();
            let _ = sender.orders.send(Order::Stop(done));
            tokio::time::timeout(Duration::from_secs(15), stopped)
                .await
                .unwrap_or_else(|_| panic!("{}'s last chat never came back", sender.name))
                .expect("the member's task is running");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut round = 0;
        'rounds: loop {
            round += 1;
            for room in 0..ROOMS {
                for node in 0..self.nodes {
                    let one = self
                        .members
                        .iter()
                        .find(|m| m.room == room && m.node == node)
                        .expect("every node has a member of every room");
                    let _ = one.orders.send(Order::Say(format!("end:{node}:{round}")));
                }
            }
            let next_round = Instant::now() + Duration::from_secs(2);
            loop {
                let late: Vec<&Member> = self
                    .members
                    .iter()
                    .filter(|m| m.markers().len() < self.nodes)
                    .collect();
                if late.is_empty() {
                    break 'rounds;
                }
                if Instant::now() > deadline {
                    for m in &late {
                        eprintln!("what {} saw: {}", m.name, story(&m.log()));
                    }
                    let late: Vec<String> = late
                        .iter()
                        .map(|m| format!("{} saw markers of nodes {:?}", m.name, m.markers()))
                        .collect();
                    panic!(
                        "SILENT: members never got a marker chat from every node within 15 s \
                         ({round} rounds; what they saw is printed above): {late:?}"
                    );
                }
                if Instant::now() > next_round {
                    continue 'rounds;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let mut logs = Vec::new();
        for member in self.members {
            drop(member.orders);
            tokio::time::timeout(Duration::from_secs(5), member.task)
                .await
                .unwrap_or_else(|_| panic!("{} did not stop", member.name))
                .expect("a member's task failed");
            let log = member.log.lock().unwrap().clone();
            logs.push((member.name, member.room, log));
        }
        logs
    }
}

// ---- The accounting ---------------------------------------------------------------------------

/// Every way `log` breaks its stream's continuity.
fn gaps(who: &str, log: &[Seen]) -> Vec<String> {
    let mut position = Position::default();
    log.iter()
        .enumerate()
        .filter_map(|(i, seen)| {
            let problem = position.see(seen).err()?;
            Some(format!("{who}, frame {i} of its room: {problem}"))
        })
        .collect()
}

/// The sender's acknowledged chats that `log` neither shows nor covers with a `recovered:
/// false` between the chats around them, and chats it shows twice or out of order.
fn losses(who: &str, log: &[Seen], acked: &BTreeSet<u64>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut at: BTreeMap<u64, usize> = BTreeMap::new();
    let (mut twice, mut late, mut highest) = (Vec::new(), Vec::new(), 0);
    for (i, seen) in log.iter().enumerate() {
        let Seen::Chat { text, .. } = seen else {
            continue;
        };
        let Some(n) = number(text) else { continue };
        if at.insert(n, i).is_some() {
            twice.push(n);
        } else if n < highest {
            late.push(n);
        }
        highest = highest.max(n);
    }
    if !twice.is_empty() {
        problems.push(format!("DUPLICATE: {who} got {} twice", spans(&twice)));
    }
    if !late.is_empty() {
        problems.push(format!(
            "ORDER: {who} got {} after chats sent later",
            spans(&late)
        ));
    }
    let told: Vec<usize> = (0..log.len()).filter(|i| log[*i].tells_loss()).collect();
    let uncovered: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|n| !at.contains_key(n))
        .filter(|n| {
            let after_chat = at.range(..n).next_back().map(|(_, i)| *i);
            let before_chat = at.range(n + 1..).next().map_or(log.len(), |(_, i)| *i);
            !told
                .iter()
                .any(|t| after_chat.is_none_or(|a| *t > a) && *t < before_chat)
        })
        .collect();
    if !uncovered.is_empty() {
        problems.push(format!(
            "LOST SILENTLY: {who} never got {} chat(s) its sender saw come back ({}), and no \
             recovered:false came where they were missing",
            uncovered.len(),
            spans(&uncovered)
        ));
    }
    problems
}

/// A log in short: signals as they came, runs of chats whose offsets and numbers both follow
/// one another as one `m1-m40@1-40` (numbers @ offsets).
fn story(log: &[Seen]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(String, u64, u64, u64)> = None; // first text, last number, offsets
    let close = |run: &mut Option<(String, u64, u64, u64)>, out: &mut Vec<String>| {
        if let Some((first, last, from, to)) = run.take() {
            out.push(if from == to {
                format!("{first}@{from}")
            } else {
                format!("{first}-m{last}@{from}-{to}")
            });
        }
    };
    for seen in log {
        match seen {
            Seen::Chat { offset, text } => {
                let n = number(text);
                if let (Some((_, last, _, to)), Some(n)) = (&mut run, n) {
                    if n == *last + 1 && *offset == *to + 1 {
                        (*last, *to) = (n, *offset);
                        continue;
                    }
                }
                close(&mut run, &mut out);
                run = Some((text.clone(), n.unwrap_or(u64::MAX - 1), *offset, *offset));
            }
            other => {
                close(&mut run, &mut out);
                out.push(match other {
                    Seen::Joined {
                        epoch,
                        offset,
                        recovered,
                    } => format!("[room_joined {epoch}@{offset} recovered:{recovered:?}]"),
                    Seen::Resumed {
                        epoch,
                        offset,
                        recovered,
                    } => format!("[room_resumed {epoch}@{offset} recovered:{recovered}]"),
                    _ => "[dropped]".into(),
                });
            }
        }
    }
    close(&mut run, &mut out);
    out.join(" ")
}

/// `[3, 4, 5, 9]` as `m3-m5, m9`.
fn spans(numbers: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let mut j = i;
        while j + 1 < numbers.len() && numbers[j + 1] == numbers[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            format!("m{}", numbers[i])
        } else {
            format!("m{}-m{}", numbers[i], numbers[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

/// Checks every member's log against its room's sender's acknowledgements, prints a summary,
/// and fails naming every problem. `during` counts the chats that came back while Redis failed
/// over (`None` without a failover).
fn account(logs: &[(String, usize, Vec<Seen>)], during: Option<usize>) {
    let mut problems = Vec::new();
    for room in 0..ROOMS {
        let members: Vec<&(String, usize, Vec<Seen>)> =
            logs.iter().filter(|(_, r, _)| *r == room).collect();
        let (sender, _, sent) = members
            .iter()
            .find(|(name, _, _)| name.contains("-u0-"))
            .expect("every room has a sender");
        let acked: BTreeSet<u64> = sent
            .iter()
            .filter_map(|s| match s {
                Seen::Chat { text, .. } => number(text),
                _ => None,
            })
            .collect();
        eprintln!("room r{room}: {sender} saw {} chats come back", acked.len());
        for (name, _, log) in members {
            let chats = log
                .iter()
                .filter(|s| matches!(s, Seen::Chat { .. }))
                .count();
            let told = log.iter().filter(|s| s.tells_loss()).count();
            let drops = log.iter().filter(|s| **s == Seen::Dropped).count();
            eprintln!("  {name}: {chats} chats, {told} recovered:false, {drops} reconnections");
            let before = problems.len();
            problems.extend(gaps(name, log));
            if name != sender {
                problems.extend(losses(name, log, &acked));
            }
            if problems.len() > before {
                eprintln!("    what {name} saw: {}", story(log));
            }
        }
    }
    assert!(
        during != Some(0),
        "no chat came back while Redis failed over: the load did not run through it"
    );
    const SHOWN: usize = 40;
    assert!(
        problems.is_empty(),
        "{} problem(s){}:\n{}",
        problems.len(),
        if problems.len() > SHOWN {
            ", the first 40"
        } else {
            ""
        },
        problems[..problems.len().min(SHOWN)].join("\n")
    );
}

// ---- The accounting without sockets -----------------------------------------------------------

fn chat(offset: u64, text: &str) -> Seen {
    Seen::Chat {
        offset,
        text: text.into(),
    }
}

fn joined(epoch: &str, offset: u64, recovered: Option<bool>) -> Seen {
    Seen::Joined {
        epoch: epoch.into(),
        offset,
        recovered,
    }
}

fn resumed(epoch: &str, offset: u64, recovered: bool) -> Seen {
    Seen::Resumed {
        epoch: epoch.into(),
        offset,
        recovered,
    }
}

fn acked(numbers: std::ops::RangeInclusive<u64>) -> BTreeSet<u64> {
    numbers.collect()
}

#[test]
fn an_unbroken_stream_has_no_problem() {
    let log = [
        joined("e", 4, None),
        chat(5, "m1"),
        chat(6, "m2"),
        chat(7, "end:0"),
    ];
    assert!(gaps("c", &log).is_empty());
    assert!(losses("c", &log, &acked(1..=2)).is_empty());
}

#[test]
fn a_jump_without_a_signal_is_a_silent_gap() {
    // What a node does today when it goes on alone: a new epoch, offsets from 1, no frame.
    let log = [joined("e", 0, None), chat(1, "m1"), chat(1, "m2")];
    let problems = gaps("r0-u1-n1", &log);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("SILENT GAP") && problems[0].contains("offset 1 right after offset 1"),
        "{problems:?}"
    );
    let log = [joined("e", 0, None), chat(1, "m1"), chat(5, "m5")];
    assert_eq!(gaps("c", &log).len(), 1);
    // And the chats in between, which the sender saw, are lost without a word.
    let problems = losses("c", &log, &acked(1..=5));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("LOST SILENTLY") && problems[0].contains("(m2-m4)"));
}

#[test]
fn a_room_resumed_false_before_the_jump_covers_it() {
    let log = [
        joined("e", 0, None),
        chat(1, "m1"),
        resumed("f", 40, false),
        chat(41, "m5"),
        chat(42, "m6"),
    ];
    assert!(gaps("c", &log).is_empty());
    assert!(losses("c", &log, &acked(1..=6)).is_empty());
    // The stream must go on from where the frame says it stands.
    let log = [
        joined("e", 0, None),
        resumed("f", 40, false),
        chat(45, "m1"),
    ];
    assert!(gaps("c", &log)[0].contains("offset 45 right after offset 40"));
}

#[test]
fn a_room_resumed_true_is_followed_by_every_missed_chat() {
    // The frame gives the stream's position; what the client missed follows it.
    let log = [
        joined("e", 0, None),
        chat(1, "m1"),
        resumed("e", 3, true),
        chat(2, "m2"),
        chat(3, "m3"),
        chat(4, "m4"),
    ];
    assert!(gaps("c", &log).is_empty());
    assert!(losses("c", &log, &acked(1..=4)).is_empty());
    // A replay that leaves some out is a gap, and covers no loss.
    let log = [
        joined("e", 0, None),
        chat(1, "m1"),
        resumed("e", 3, true),
        chat(4, "m4"),
    ];
    assert_eq!(gaps("c", &log).len(), 1);
    assert!(losses("c", &log, &acked(1..=4))[0].contains("(m2-m3)"));
    // Into another epoch, or behind the client, it cannot continue the client's stream.
    let log = [joined("e", 0, None), chat(1, "m1"), resumed("f", 3, true)];
    assert!(gaps("c", &log)[0].contains("no replay can continue"));
    let log = [joined("e", 0, None), chat(1, "m1"), resumed("e", 0, true)];
    assert_eq!(gaps("c", &log).len(), 1);
}

#[test]
fn a_reconnection_resumes_or_is_told_it_lost() {
    let log = [
        joined("e", 0, None),
        chat(1, "m1"),
        Seen::Dropped,
        joined("e", 3, Some(true)),
        chat(2, "m2"),
        chat(3, "m3"),
    ];
    assert!(gaps("c", &log).is_empty());
    assert!(losses("c", &log, &acked(1..=3)).is_empty());
    let log = [
        joined("e", 0, None),
        chat(1, "m1"),
        Seen::Dropped,
        joined("f", 9, Some(false)),
        chat(10, "m7"),
    ];
    assert!(gaps("c", &log).is_empty());
    assert!(losses("c", &log, &acked(1..=7)).is_empty());
    // recovered:true into another epoch is no resume.
    let log = [
        joined("e", 0, None),
        Seen::Dropped,
        joined("f", 0, Some(true)),
    ];
    assert_eq!(gaps("c", &log).len(), 1);
}

#[test]
fn a_signal_covers_only_the_chats_missing_where_it_came() {
    // m2 went missing before the signal's place (between m1 and m3): the later signal does not
    // cover it; m4-m5 are covered.
    let log = [
        joined("e", 0, None),
        chat(1, "m1"),
        chat(2, "m3"),
        resumed("f", 7, false),
        chat(8, "m6"),
    ];
    let problems = losses("c", &log, &acked(1..=6));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("(m2)"), "{problems:?}");
}

#[test]
fn repeats_and_reordering_are_named() {
    let log = [
        joined("e", 0, None),
        chat(1, "m1"),
        chat(2, "m2"),
        chat(3, "m2"),
        chat(4, "m1"),
    ];
    let problems = losses("c", &log, &acked(1..=2));
    assert!(problems
        .iter()
        .any(|p| p.contains("DUPLICATE: c got m2, m1 twice")));
    let log = [
        joined("e", 0, None),
        chat(1, "m2"),
        resumed("f", 0, false),
        chat(1, "m1"),
    ];
    assert!(losses("c", &log, &acked(1..=2))[0].contains("ORDER"));
}

#[test]
fn frames_are_read_for_the_accounting() {
    let frame = json!({"type":"room_resumed","room":"r0","epoch":"E","offset":7,"recovered":false});
    assert_eq!(Seen::from_frame(&frame, "r0"), Some(resumed("E", 7, false)));
    assert_eq!(Seen::from_frame(&frame, "r1"), None);
    let frame = json!({"type":"room_joined","room":"r0","epoch":"E","offset":0,"users":[]});
    assert_eq!(Seen::from_frame(&frame, "r0"), Some(joined("E", 0, None)));
    let frame = json!({"type":"chat","room":"r0","user":"u","text":"m1","offset":3});
    assert_eq!(Seen::from_frame(&frame, "r0"), Some(chat(3, "m1")));
    assert_eq!(Seen::from_frame(&json!({"type":"user_joined"}), "r0"), None);
}

#[test]
#[should_panic(expected = "a room_resumed frame the test cannot read")]
fn a_room_resumed_without_its_position_fails_the_test() {
    Seen::from_frame(
        &json!({"type":"room_resumed","room":"r0","recovered":false}),
        "r0",
    );
}

#[test]
fn a_story_is_short() {
    let log = [
        joined("e", 0, None),
        chat(1, "m1"),
        chat(2, "m2"),
        chat(3, "m3"),
        resumed("f", 9, false),
        chat(10, "m7"),
        chat(11, "end:0"),
        Seen::Dropped,
    ];
    assert_eq!(
        story(&log),
        "[room_joined e@0 recovered:None] m1-m3@1-3 [room_resumed f@9 recovered:false] m7@10 \
         end:0@11 [dropped]"
    );
}

#[test]
fn spans_are_compact() {
    assert_eq!(spans(&[3, 4, 5, 9, 11, 12]), "m3-m5, m9, m11-m12");
}
