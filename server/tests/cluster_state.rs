//! The cluster broker's own robustness, against real Redis servers: what it leaves in Redis,
//! what it does with garbage on its bus, a slow Redis, a bad URL, and presence under a join
//! storm.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{join, node_on, prefix, recv_of, redis_cli, wait_broker, OwnRedis, REDIS};
use common::Client;
use common::{health, metric};
use serde_json::json;

fn keys(port: u16, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis_cli(port, &["--scan", "--pattern", pattern])
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn garbage_on_the_bus_neither_stops_the_broker_nor_hides_it() {
    let p = prefix();
    let (a, b) = (node_on(REDIS, &p, &[]), node_on(REDIS, &p, &[]));
    wait_broker(&a, "up", Duration::from_secs(5)).await;
    wait_broker(&b, "up", Duration::from_secs(5)).await;
    let (mut ann, _) = join(&a, "lobby", "ann").await;
    let (mut bob, _) = join(&b, "lobby", "bob").await;
    recv_of(&mut ann, &["user_joined"]).await;
    // Anyone who can reach Redis can publish on the bus: a multi-byte character where the old
    // format split its kind, the old format itself, headers that lie, not even UTF-8.
    let bus = format!("{p}:bus");
    for garbage in [
        "xé",
        "R\nlobby\ne\n1\n{}",
        "h1 R lobby",
        "h1 U 999\nbob{}",
        "h1 P lobby 1 n/s +\nnot json",
        "h9 V lobby -\n{}",
    ] {
        redis_cli(6379, &["PUBLISH", &bus, garbage]);
    }
    // The bus keeps flowing after the garbage, in order.
    ann.send(json!({"type":"chat","text":"still here"})).await;
    assert_eq!(recv_of(&mut bob, &["chat"]).await["text"], "still here");
    for node in [&a, &b] {
        assert_eq!(health(node).await["broker"], "up");
        assert!(metric(node, "herald_broker_unreadable_total").await >= 6.0);
        assert_eq!(metric(node, "herald_broker_restarts_total").await, 0.0);
    }
}

#[tokio::test]
async fn a_rooms_keys_go_when_its_last_member_leaves() {
    let p = prefix();
    let a = node_on(REDIS, &p, &["--history-ttl", "2s"]);
    wait_broker(&a, "up", Duration::from_secs(5)).await;
    let (mut ann, _) = join(&a, "tidy", "ann").await;
    let (mut bob, _) = join(&a, "tidy", "bob").await;
    ann.send(json!({"type":"chat","text":"hi"})).await;
    recv_of(&mut bob, &["chat"]).await;
    let room = format!("{p}:room:tidy");
    assert!(keys(6379, &format!("{room}:*")).contains(&format!("{room}:members")));
    assert_eq!(keys(6379, &format!("{p}:user:*")).len(), 2);
    drop(ann);
    recv_of(&mut bob, &["user_left"]).await;
    bob.send(json!({"type":"leave"})).await;
    bob.recv_type("room_left").await;
    drop(bob);
    // Synchronise on Redis: wait until both users' entries are gone (each disconnect is one
    // script), with a bound so a server that never removes them fails.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !keys(6379, &format!("{p}:user:*")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "user entries stay after disconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = keys(6379, &format!("{room}:*"));
    assert_eq!(
        left,
        [
            format!("{room}:epoch"),
            format!("{room}:history"),
            format!("{room}:offset")
        ],
        "presence keys are deleted with the last member"
    );
    for key in &left {
        let ttl: i64 = redis_cli(6379, &["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
    let history_ttl: i64 = redis_cli(6379, &["PTTL", &format!("{room}:history")])
        .trim()
        .parse()
        .unwrap();
    assert!(
        history_ttl <= 2000,
        "history expires with its lifetime: {history_ttl}"
    );
    for node_key in keys(6379, &format!("{p}:node:*")) {
        if node_key.ends_with(":rooms") || node_key.ends_with(":users") {
            let len = redis_cli(6379, &["HLEN", &node_key]);
            assert_eq!(len.trim(), "0", "{node_key} still lists something");
        }
    }
}

#[tokio::test]
async fn a_paused_redis_sheds_messages_past_the_queue_bound() {
    let redis = OwnRedis::start();
    let p = prefix();
    let a = node_on(&redis.url(), &p, &["--broker-queue", "50"]);
    wait_broker(&a, "up", Duration::from_secs(5)).await;
    let (mut ann, _) = join(&a, "flood", "ann").await;
    // Redis answers nothing for 3 s (shorter than the broker's 5 s answer timeout, so the
    // node stays connected and its queue is all that grows).
    redis_cli(redis.port, &["CLIENT", "PAUSE", "3000", "ALL"]);
    for i in 0..2000 {
        ann.send(json!({"type":"chat","text":format!("m{i}")}))
            .await;
    }
    // A ping answered means the node has taken every chat before it.
    ann.send(json!({"type":"ping"})).await;
    recv_of(&mut ann, &["pong"]).await;
    let queued = metric(&a, "herald_broker_queued").await;
    assert!(queued <= 50.0, "the queue stays within its bound: {queued}");
    assert!(metric(&a, "herald_broker_shed_total").await >= 1000.0);
    // When Redis answers again the queue drains and the node carries on.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&a, "herald_broker_queued").await > 0.0 {
        assert!(Instant::now() < deadline, "the queue never drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(health(&a).await["broker"], "up");
    ann.send(json!({"type":"chat","text":"after"})).await;
    loop {
        let chat = recv_of(&mut ann, &["chat"]).await;
        if chat["text"] == "after" {
            break;
        }
    }
}

#[test]
fn a_malformed_redis_url_is_a_configuration_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--broker",
            "redis://host:notaport",
        ])
        .env("HERALD_LOG", "error")
        .output()
        .expect("running herald");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("broker URL"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

/// Every member's last presence list, once joins settle, is the room's whole membership.
async fn presence_converges(nodes: &[&common::Server]) {
    const CLIENTS: usize = 200;
    let mut joins = Vec::new();
    for i in 0..CLIENTS {
        let server = nodes[i % nodes.len()];
        let url = server.ws_url("/ws");
        joins.push(tokio::spawn(async move {
            let mut c = Client::connect(&url).await;
            c.send(json!({"type":"join","room":"storm","user":format!("u{i}")}))
                .await;
            c
        }));
    }
    let mut clients = Vec::new();
    for j in joins {
        clients.push(j.await.unwrap());
    }
    let mut waits = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        waits.push(tokio::spawn(async move {
            // Presence frames keep coming while others join; each carries the whole list. The
            // deadline only bounds a server whose list never completes.
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut last = 0;
            while last < CLIENTS {
                assert!(
                    Instant::now() < deadline,
                    "client u{i}'s last presence list has {last} of {CLIENTS} members"
                );
                let frame = recv_of(&mut c, &["room_joined", "user_joined"]).await;
                last = frame["users"].as_array().unwrap().len();
            }
            assert_eq!(last, CLIENTS);
            c
        }));
    }
    for w in waits {
        w.await.unwrap();
    }
}

#[tokio::test]
async fn presence_converges_under_a_join_storm_on_one_redis_node() {
    let p = prefix();
    let a = node_on(REDIS, &p, &[]);
    wait_broker(&a, "up", Duration::from_secs(5)).await;
    presence_converges(&[&a]).await;
}

#[tokio::test]
async fn presence_converges_under_a_join_storm_on_two_redis_nodes() {
    let p = prefix();
    let (a, b) = (node_on(REDIS, &p, &[]), node_on(REDIS, &p, &[]));
    wait_broker(&a, "up", Duration::from_secs(5)).await;
    wait_broker(&b, "up", Duration::from_secs(5)).await;
    presence_converges(&[&a, &b]).await;
}
