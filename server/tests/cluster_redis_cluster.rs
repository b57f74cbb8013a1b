//! Three real `herald` nodes on a real three-shard Redis Cluster (three `redis-server
//! --cluster-enabled yes` of the test's own on free ports, joined by `redis-cli --cluster
//! create`): the scenarios of `cluster.rs` (order and presence, private messages and
//! notifications, resume on another node, a killed node, backend topics), a shared document and
//! a long-polling session whose requests land on other nodes pass on it, and a node receives
//! nothing of a room it has no member in. The
//! redis-servers are killed when the test ends. Without redis-server the test fails.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{free_port, join, names, node_on, prefix, recv_of, redis_cli};
use common::poller::Poller;
use common::{health, metric, post, Client, Server};
use serde_json::{json, Value};

/// Three primaries, no replicas, in a temporary directory.
struct RedisCluster {
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let dir = std::env::temp_dir().join(format!("herald-rcluster-{}", prefix()));
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut children = Vec::new();
        for port in &ports {
            let own = dir.join(port.to_string());
            std::fs::create_dir_all(&own).unwrap();
            let child = Command::new("redis-server")
                .current_dir(&own)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server is installed (the Redis Cluster test needs it)");
            children.push(child);
        }
        let cluster = RedisCluster {
            ports,
            children,
            dir,
        };
        for port in &cluster.ports {
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(str::to_owned));
        let out = Command::new("redis-cli")
            .args(&args)
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in &cluster.ports {
            while !redis_cli(*port, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "the cluster never became ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn node(cluster: &RedisCluster, p: &str, extra: &[&str]) -> Server {
    node_on(&cluster.url(), p, extra)
}

#[tokio::test]
async fn three_nodes_on_a_three_shard_redis_cluster() {
    let cluster = RedisCluster::start();
    order_and_presence(&cluster).await;
    private_messages_and_notifications(&cluster).await;
    resume_on_another_node(&cluster).await;
    backend_topics(&cluster).await;
    documents(&cluster).await;
    polling_across_nodes(&cluster).await;
    a_node_reads_only_its_rooms(&cluster).await;
    a_killed_node_leaves_no_ghosts(&cluster).await;
}

async fn order_and_presence(cluster: &RedisCluster) {
    let p = prefix();
    let (a, b, c) = (
        node(cluster, &p, &[]),
        node(cluster, &p, &[]),
        node(cluster, &p, &[]),
    );
    assert_eq!(health(&a).await["broker"], "up");
    // Rooms on every shard (their names hash to different slots).
    for room in ["lobby", "r-1", "r-2", "r-3", "r-4", "r-5"] {
        let (mut alice, joined) = join(&a, room, "alice").await;
        assert_eq!(names(&joined["users"]), ["alice"]);
        let (mut bob, joined) = join(&b, room, "bob").await;
        assert_eq!(
            names(&joined["users"]),
            ["alice", "bob"],
            "presence is cluster-wide"
        );
        let (mut carol, _) = join(&c, room, "carol").await;
        assert_eq!(alice.recv_type("user_joined").await["user"], "bob");
        for i in 0..10 {
            alice
                .send(json!({"type":"chat","text":format!("a{i}")}))
                .await;
            bob.send(json!({"type":"chat","text":format!("b{i}")}))
                .await;
        }
        let mut orders = Vec::new();
        for client in [&mut alice, &mut bob, &mut carol] {
            let mut order = Vec::new();
            for _ in 0..20 {
                let chat = recv_of(client, &["chat"]).await;
                order.push((chat["offset"].as_u64().unwrap(), chat["text"].to_string()));
            }
            orders.push(order);
        }
        assert_eq!(orders[0], orders[1], "every member sees one order");
        assert_eq!(orders[0], orders[2], "every member sees one order");
        let offsets: Vec<u64> = orders[0].iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (1..=20).collect::<Vec<_>>());
        // The room's traffic is on a sharded channel, on its shard only, with the three nodes
        // subscribed (a ping on each client first: every join's subscription is in place).
        let channel = format!("{p}:room:{{{room}}}:bus");
        let counts: Vec<u64> = cluster
            .ports
            .iter()
            .map(|port| {
                let out = redis_cli(*port, &["PUBSUB", "SHARDNUMSUB", &channel]);
                out.lines().nth(1).unwrap_or("0").trim().parse().unwrap()
            })
            .collect();
        assert_eq!(counts.iter().sum::<u64>(), 3, "{channel}: {counts:?}");
        assert_eq!(counts.iter().filter(|c| **c > 0).count(), 1, "{counts:?}");
        bob.send(json!({"type":"typing","isTyping":true})).await;
        assert_eq!(recv_of(&mut carol, &["typing"]).await["user"], "bob");
        bob.send(json!({"type":"leave"})).await;
        bob.recv_type("room_left").await;
        assert_eq!(recv_of(&mut alice, &["user_left"]).await["user"], "bob");
        assert_eq!(recv_of(&mut carol, &["user_left"]).await["user"], "bob");
    }
    // Storage is spread: every shard holds some of the rooms' keys.
    for port in &cluster.ports {
        let keys = redis_cli(*port, &["--scan", "--pattern", &format!("{p}:room:*")]);
        assert!(!keys.trim().is_empty(), "shard {port} holds no room");
    }
}

async fn private_messages_and_notifications(cluster: &RedisCluster) {
    let p = prefix();
    let (a, b) = (node(cluster, &p, &[]), node(cluster, &p, &[]));
    let (mut alice, _) = join(&a, "r1", "alice").await;
    // A user id with braces must not break the hash tag.
    for target in ["bob", "{b}ob"] {
        let (mut bob, _) = join(&b, "r2", target).await;
        alice
            .send(json!({"type":"private_message","target":target,"text":"psst"}))
            .await;
        let pm = recv_of(&mut bob, &["private_message"]).await;
        assert_eq!(pm["from"], "alice");
        assert_eq!(pm["text"], "psst");
        let (status, body) = post(
            &a.url("/notifications"),
            &json!({"userId":target,"message":"hi"}).to_string(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let n = recv_of(&mut bob, &["notification"]).await;
        assert_eq!(n["content"]["message"], "hi");
    }
    alice
        .send(json!({"type":"private_message","target":"nobody","text":"hello?"}))
        .await;
    assert_eq!(
        recv_of(&mut alice, &["error"]).await["code"],
        "user_not_found"
    );
    let (status, _) = post(&b.url("/notifications"), r#"{"message":"all hands"}"#).await;
    assert_eq!(status, 200);
    let n = recv_of(&mut alice, &["notification"]).await;
    assert_eq!(n["content"]["message"], "all hands");
}

async fn resume_on_another_node(cluster: &RedisCluster) {
    let p = prefix();
    let (a, b) = (node(cluster, &p, &[]), node(cluster, &p, &[]));
    let (mut alice, _) = join(&a, "news", "alice").await;
    let (mut bob, joined) = join(&b, "news", "bob").await;
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    recv_of(&mut alice, &["user_joined"]).await;
    alice.send(json!({"type":"chat","text":"one"})).await;
    let since = recv_of(&mut bob, &["chat"]).await["offset"]
        .as_u64()
        .unwrap();
    drop(bob);
    recv_of(&mut alice, &["user_left"]).await;
    for text in ["two", "three"] {
        alice.send(json!({"type":"chat","text":text})).await;
        recv_of(&mut alice, &["chat"]).await;
    }
    let mut bob = a.client().await;
    bob.send(json!({"type":"join","room":"news","user":"bob",
        "since":{"offset":since,"epoch":epoch}}))
        .await;
    let joined = bob.recv_type("room_joined").await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(bob.recv_type("chat").await["text"], "two");
    assert_eq!(bob.recv_type("chat").await["text"], "three");
    alice.send(json!({"type":"chat","text":"four"})).await;
    assert_eq!(recv_of(&mut bob, &["chat"]).await["text"], "four");
    let mut carol = b.client().await;
    carol
        .send(json!({"type":"join","room":"news","user":"carol",
            "since":{"offset":1,"epoch":"not-this-one"}}))
        .await;
    assert_eq!(carol.recv_type("room_joined").await["recovered"], false);
}

async fn backend_topics(cluster: &RedisCluster) {
    let p = prefix();
    let (a, b) = (node(cluster, &p, &[]), node(cluster, &p, &[]));
    let (mut alice, _) = join(&a, "ops", "alice").await;
    let (mut bob, _) = join(&b, "ops", "bob").await;
    recv_of(&mut alice, &["user_joined"]).await;
    // A backend publishes on any shard; plain PUBLISH reaches the whole cluster.
    let publish = |topic: &str, payload: &str| {
        let out = Command::new("redis-cli")
            .args(["-p", &cluster.ports[2].to_string()])
            .args(["PUBLISH", &format!("{p}.{topic}"), payload])
            .output()
            .expect("redis-cli");
        assert!(out.status.success());
    };
    publish("room.messages", r#"{"room":"ops","text":"deploy done"}"#);
    for client in [&mut alice, &mut bob] {
        let chat = recv_of(client, &["chat"]).await;
        assert_eq!(chat["user"], "system");
        assert_eq!(chat["offset"], 1, "delivered once");
    }
    publish(
        "user.notifications",
        r#"{"userId":"bob","message":"your build"}"#,
    );
    assert_eq!(
        recv_of(&mut bob, &["notification"]).await["content"]["message"],
        "your build"
    );
    alice.send(json!({"type":"chat","text":"still here"})).await;
    assert_eq!(recv_of(&mut bob, &["chat"]).await["offset"], 2);
}

async fn a_killed_node_leaves_no_ghosts(cluster: &RedisCluster) {
    let p = prefix();
    let a = node(cluster, &p, &["--presence-ttl", "4s"]);
    let mut doomed = node(cluster, &p, &["--presence-ttl", "4s"]);
    let (mut alice, _) = join(&a, "room", "alice").await;
    let (_ghost, joined) = join(&doomed, "room", "ghost").await;
    assert_eq!(names(&joined["users"]), ["alice", "ghost"]);
    recv_of(&mut alice, &["user_joined"]).await;
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    // A hang guard far above the 4 s TTL, not a measurement.
    let left = loop {
        match tokio::time::timeout(Duration::from_secs(20), alice.recv()).await {
            Ok(frame) if frame["type"] == "user_left" => break frame,
            Ok(_) => continue,
            Err(_) => panic!("no user_left within 20 s of the kill (presence TTL 4 s)"),
        }
    };
    assert_eq!(left["user"], "ghost");
    let (_bob, joined) = join(&a, "room", "bob").await;
    assert_eq!(names(&joined["users"]), ["alice", "bob"]);
}

/// The next frame, skipping who opened or closed a document.
async fn next_doc(client: &mut Client) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"] != "doc_joined" && frame["type"] != "doc_left" {
            return frame;
        }
    }
}

async fn documents(cluster: &RedisCluster) {
    let p = prefix();
    let (a, b) = (node(cluster, &p, &[]), node(cluster, &p, &[]));
    let mut ann = a.client().await;
    let mut bob = b.client().await;
    for (client, doc) in [(&mut ann, "shared"), (&mut bob, "shared")] {
        client.send(json!({"type":"doc_open","doc":doc})).await;
        assert_eq!(next_doc(client).await["type"], "doc_opened");
    }
    // Both against version 0, from two nodes: one order, versions 1 then 2 for both.
    ann.send(
        json!({"type":"doc_op","doc":"shared","client":"ann","seq":1,"base":0,
        "op":[{"insert":"ab"}]}),
    )
    .await;
    bob.send(
        json!({"type":"doc_op","doc":"shared","client":"bob","seq":1,"base":0,
        "op":[{"insert":"cd"}]}),
    )
    .await;
    for client in [&mut ann, &mut bob] {
        let first = next_doc(client).await;
        let second = next_doc(client).await;
        assert_eq!(
            (first["version"].as_u64(), second["version"].as_u64()),
            (Some(1), Some(2)),
            "{first} {second}"
        );
    }
    let mut carol = a.client().await;
    carol.send(json!({"type":"doc_open","doc":"shared"})).await;
    let opened = next_doc(&mut carol).await;
    let text = opened["text"].as_str().unwrap();
    assert!(text == "abcd" || text == "cdab", "{opened}");
}

async fn polling_across_nodes(cluster: &RedisCluster) {
    let p = prefix();
    let (a, b) = (node(cluster, &p, &[]), node(cluster, &p, &[]));
    let mut ws = b.client().await;
    ws.send(json!({"type":"join","room":"spread","user":"wes"}))
        .await;
    ws.recv_type("room_joined").await;
    // Opened on A; joined and sent through B, which does not hold it (the relay carries them).
    let mut poller = Poller::open(&format!("http://{}", a.addr)).await;
    poller.base = format!("http://{}", b.addr);
    poller.join("spread", json!("pat")).await;
    assert_eq!(ws.recv_type("user_joined").await["user"], "pat");
    poller.send(json!({"type":"chat","text":"via b"})).await;
    assert_eq!(ws.recv_type("chat").await["text"], "via b");
    assert_eq!(poller.recv_type("chat").await["text"], "via b");
}

async fn a_node_reads_only_its_rooms(cluster: &RedisCluster) {
    let p = prefix();
    let (a, b) = (node(cluster, &p, &[]), node(cluster, &p, &[]));
    // B has one member, in `quiet`; A has members in `quiet` and `busy`.
    let (mut carol, _) = join(&b, "quiet", "carol").await;
    let (mut dave, _) = join(&a, "quiet", "dave").await;
    recv_of(&mut carol, &["user_joined"]).await;
    let (mut alice, _) = join(&a, "busy", "alice").await;
    dave.send(json!({"type":"chat","text":"sync 1"})).await;
    assert_eq!(recv_of(&mut carol, &["chat"]).await["text"], "sync 1");
    let before = metric(&b, "herald_broker_received_total").await;
    // B listens to `quiet` and to carol's private channel, nothing else of theirs.
    assert_eq!(metric(&b, "herald_broker_channels").await, 2.0);
    for i in 0..20 {
        alice
            .send(json!({"type":"chat","text":format!("busy {i}")}))
            .await;
    }
    alice
        .send(json!({"type":"private_message","target":"dave","text":"psst"}))
        .await;
    for _ in 0..20 {
        recv_of(&mut alice, &["chat"]).await;
    }
    assert_eq!(
        recv_of(&mut dave, &["private_message"]).await["text"],
        "psst"
    );
    // Every busy chat was delivered on A before this one is sent; B never subscribed to busy's
    // sharded channel (nor dave's), so none of them can reach it.
    dave.send(json!({"type":"chat","text":"sync 2"})).await;
    assert_eq!(recv_of(&mut carol, &["chat"]).await["text"], "sync 2");
    assert_eq!(
        metric(&b, "herald_broker_received_total").await - before,
        1.0,
        "B received only the quiet room's chat"
    );
}
