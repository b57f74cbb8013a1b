//! Clients that stay connected through their node's broker outage are never left with a silent
//! gap. Two real nodes on a redis-server of the test's own; node A reaches it through a TCP
//! proxy in the test that can cut A off (closing its connections and refusing new ones) while
//! node B keeps publishing. When A is back, its members get `room_resumed` with
//! `recovered: true` and every message B sent meanwhile, in order, once, then live ones. When
//! the stream itself is gone (Redis restarted empty, under a new replication id), they get
//! `room_resumed` with `recovered: false` before any message of the new stream.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cluster::{join, node_on, prefix, recv_of, wait_broker, OwnRedis};
use common::{Client, Server};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy to a Redis that the test can cut and restore.
struct Proxy {
    port: u16,
    open: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(to: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(watch::channel(true).0);
        let gate = open.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !*gate.borrow() {
                    // Cut off: refused (closed at once).
                    continue;
                }
                let mut cut = gate.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", to)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Proxy { port, open, task }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Closes every proxied connection and refuses new ones.
    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Node A on a private Redis through a proxy that can cut it off, node B on the same Redis
/// directly; Alice in room `ops` on A, Bob on B, and the room's epoch.
struct CutOff {
    _redis: OwnRedis,
    proxy: Proxy,
    a: Server,
    b: Server,
    alice: Client,
    bob: Client,
    epoch: String,
}

impl CutOff {
    async fn start() -> CutOff {
        let redis = OwnRedis::start();
        let proxy = Proxy::start(redis.port).await;
        let p = prefix();
        let a = node_on(&proxy.url(), &p, &[]);
        let b = node_on(&redis.url(), &p, &[]);
        wait_broker(&a, "up", Duration::from_secs(5)).await;
        wait_broker(&b, "up", Duration::from_secs(5)).await;
        let (mut alice, joined) = join(&a, "ops", "alice").await;
        let epoch = joined["epoch"].as_str().unwrap().to_owned();
        let (bob, _) = join(&b, "ops", "bob").await;
        recv_of(&mut alice, &["user_joined"]).await;
        CutOff {
            _redis: redis,
            proxy,
            a,
            b,
            alice,
            bob,
            epoch,
        }
    }
}

/// The next room frame (`room_resumed` or `chat`), skipping presence.
async fn next_room_frame(client: &mut Client) -> Value {
    recv_of(client, &["room_resumed", "chat"]).await
}

#[tokio::test]
async fn a_node_cut_off_from_a_healthy_redis_delivers_every_missed_message_when_back() {
    let CutOff {
        _redis,
        proxy,
        a,
        b: _b,
        mut alice,
        mut bob,
        epoch,
    } = CutOff::start().await;
    bob.send(json!({"type":"chat","text":"m1"})).await;
    let first = next_room_frame(&mut alice).await;
    assert_eq!(
        (first["text"].as_str(), first["offset"].as_u64()),
        (Some("m1"), Some(1))
    );
    assert_eq!(next_room_frame(&mut bob).await["offset"].as_u64(), Some(1));

    proxy.cut();
    wait_broker(&a, "down", Duration::from_secs(10)).await;
    // B numbers and stores these; A hears none of them while it is cut off.
    for n in 2..=6 {
        bob.send(json!({"type":"chat","text":format!("m{n}")}))
            .await;
        let echo = recv_of(&mut bob, &["chat"]).await;
        assert_eq!(echo["offset"].as_u64(), Some(n));
    }
    proxy.restore();
    wait_broker(&a, "up", Duration::from_secs(15)).await;

    // Alice stayed connected: she is told her stream was interrupted and resumed, with
    // nothing lost, then gets every missed message in order, once.
    let resumed = next_room_frame(&mut alice).await;
    assert_eq!(resumed["type"], "room_resumed", "{resumed}");
    assert_eq!(resumed["room"], "ops");
    assert_eq!(resumed["recovered"], true, "{resumed}");
    assert_eq!(
        resumed["epoch"],
        epoch.as_str(),
        "no failover: the same stream"
    );
    let upto = resumed["offset"].as_u64().unwrap();
    assert_eq!(upto, 6, "{resumed}");
    for n in 2..=6u64 {
        let chat = next_room_frame(&mut alice).await;
        assert_eq!(chat["type"], "chat", "{chat}");
        assert_eq!(chat["offset"].as_u64(), Some(n), "{chat}");
        assert_eq!(chat["text"], format!("m{n}"));
    }
    // Then live ones, from both nodes, still consecutive.
    bob.send(json!({"type":"chat","text":"m7"})).await;
    alice.send(json!({"type":"chat","text":"m8"})).await;
    for n in 7..=8u64 {
        let chat = next_room_frame(&mut alice).await;
        assert_eq!(chat["type"], "chat", "{chat}");
        assert_eq!(chat["offset"].as_u64(), Some(n), "{chat}");
    }
    // Bob was never cut off: he got no room_resumed, only the chats.
    for n in 7..=8u64 {
        let frame = next_room_frame(&mut bob).await;
        assert_eq!(frame["offset"].as_u64(), Some(n), "{frame}");
    }
}

#[tokio::test]
async fn a_stream_lost_with_its_redis_is_announced_before_the_new_one() {
    let mut redis = OwnRedis::start();
    let p = prefix();
    let a = node_on(&redis.url(), &p, &[]);
    let b = node_on(&redis.url(), &p, &[]);
    wait_broker(&a, "up", Duration::from_secs(5)).await;
    wait_broker(&b, "up", Duration::from_secs(5)).await;
    let (mut alice, joined) = join(&a, "ops", "alice").await;
    let epoch_before = joined["epoch"].as_str().unwrap().to_owned();
    let (mut bob, _) = join(&b, "ops", "bob").await;
    recv_of(&mut alice, &["user_joined"]).await;
    for n in 1..=3u64 {
        bob.send(json!({"type":"chat","text":format!("old {n}")}))
            .await;
        assert_eq!(
            next_room_frame(&mut alice).await["offset"].as_u64(),
            Some(n)
        );
        assert_eq!(next_room_frame(&mut bob).await["offset"].as_u64(), Some(n));
    }

    // Redis goes away and comes back empty (no persistence; a new replication id): the room's
    // stream and its history are gone.
    redis.stop();
    wait_broker(&a, "down", Duration::from_secs(10)).await;
    wait_broker(&b, "down", Duration::from_secs(10)).await;
    redis.resume();
    wait_broker(&a, "up", Duration::from_secs(15)).await;
    wait_broker(&b, "up", Duration::from_secs(15)).await;

    let mut epochs = Vec::new();
    for client in [&mut alice, &mut bob] {
        let resumed = next_room_frame(client).await;
        assert_eq!(resumed["type"], "room_resumed", "{resumed}");
        assert_eq!(resumed["recovered"], false, "{resumed}");
        assert_ne!(resumed["epoch"], epoch_before.as_str(), "{resumed}");
        assert_eq!(resumed["offset"].as_u64(), Some(0), "{resumed}");
        epochs.push(resumed["epoch"].clone());
    }
    assert_eq!(epochs[0], epochs[1], "one new stream for the cluster");
    // The new stream's messages follow its position, on both nodes.
    bob.send(json!({"type":"chat","text":"new 1"})).await;
    alice.send(json!({"type":"chat","text":"new 2"})).await;
    for client in [&mut alice, &mut bob] {
        for n in 1..=2u64 {
            let chat = next_room_frame(client).await;
            assert_eq!(chat["type"], "chat", "{chat}");
            assert_eq!(chat["offset"].as_u64(), Some(n), "{chat}");
        }
    }
}

#[tokio::test]
async fn chats_sent_while_cut_off_are_refused_and_the_stream_is_caught_up_when_back() {
    let CutOff {
        _redis,
        proxy,
        a,
        b: _b,
        mut alice,
        mut bob,
        epoch: cluster_epoch,
    } = CutOff::start().await;
    bob.send(json!({"type":"chat","text":"m1"})).await;
    assert_eq!(
        next_room_frame(&mut alice).await["offset"].as_u64(),
        Some(1)
    );

    proxy.cut();
    wait_broker(&a, "down", Duration::from_secs(10)).await;
    // Cut off, node A never numbers a chat itself (Bob's node would never see it, a silent gap
    // for him): Alice is told hers was not sent, and it reaches nobody.
    alice.send(json!({"type":"chat","text":"alone"})).await;
    let refused = recv_of(&mut alice, &["error", "chat", "room_resumed"]).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "overloaded", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("not sent"),
        "{refused}"
    );
    bob.send(json!({"type":"chat","text":"m2"})).await;
    assert_eq!(recv_of(&mut bob, &["chat"]).await["text"], "m1");
    assert_eq!(
        recv_of(&mut bob, &["chat"]).await["offset"].as_u64(),
        Some(2)
    );

    proxy.restore();
    wait_broker(&a, "up", Duration::from_secs(15)).await;
    // Back in the cluster, her position is still in the cluster's stream: she is caught up with
    // what Bob sent meanwhile, then gets the live chats.
    let resumed = next_room_frame(&mut alice).await;
    assert_eq!(resumed["type"], "room_resumed", "{resumed}");
    assert_eq!(resumed["recovered"], true, "{resumed}");
    assert_eq!(resumed["epoch"], cluster_epoch.as_str(), "{resumed}");
    assert_eq!(resumed["offset"].as_u64(), Some(2), "{resumed}");
    let missed = next_room_frame(&mut alice).await;
    assert_eq!(
        (missed["text"].as_str(), missed["offset"].as_u64()),
        (Some("m2"), Some(2)),
        "{missed}"
    );
    bob.send(json!({"type":"chat","text":"m3"})).await;
    let chat = next_room_frame(&mut alice).await;
    assert_eq!(chat["type"], "chat", "{chat}");
    assert_eq!(chat["offset"].as_u64(), Some(3), "{chat}");
}
