//! Redis Sentinel failover under two real nodes: a primary, its replica and a sentinel of the
//! test's own (free local ports, a temp dir, killed at the end). When the primary dies the nodes
//! report `degraded`, find the promoted replica through the sentinel, re-register their members,
//! resubscribe to their rooms, and report `ok` again; nothing stays silently unsubscribed.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{
    eventually, free_port, join, names, node_on, prefix, recv_of, redis_cli, wait_broker, Proc,
    TempDir,
};
use common::health;
use serde_json::json;

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn redis_server(port: u16, dir: &std::path::Path, extra: &[&str]) -> Proc {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    wait_port(port);
    Proc(child)
}

#[tokio::test]
async fn a_sentinel_failover_degrades_then_recovers_on_the_new_primary() {
    let dir = std::env::temp_dir().join(format!("herald-sentinel-{}", prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = TempDir(dir.clone());
    let (primary_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
    let primary_dir = dir.join("primary");
    let replica_dir = dir.join("replica");
    std::fs::create_dir_all(&primary_dir).unwrap();
    std::fs::create_dir_all(&replica_dir).unwrap();
    let mut primary = Some(redis_server(primary_port, &primary_dir, &[]));
    let _replica = redis_server(
        replica_port,
        &replica_dir,
        &["--replicaof", "127.0.0.1", &primary_port.to_string()],
    );
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor herald 127.0.0.1 {primary_port} 1\n\
             sentinel down-after-milliseconds herald 500\n\
             sentinel failover-timeout herald 3000\n",
            dir.display()
        ),
    )
    .unwrap();
    let _sentinel = Proc(
        Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs as a sentinel"),
    );
    wait_port(sentinel_port);
    // The sentinel knows the replica before the primary goes (it learns it from the primary).
    eventually(
        "the sentinel sees the replica",
        Duration::from_secs(15),
        || {
            redis_cli(sentinel_port, &["SENTINEL", "replicas", "herald"])
                .contains(&replica_port.to_string())
        },
    )
    .await;

    let url = format!("redis+sentinel://127.0.0.1:{sentinel_port}/herald");
    let p = prefix();
    let (a, b) = (node_on(&url, &p, &[]), node_on(&url, &p, &[]));
    wait_broker(&a, "up", Duration::from_secs(5)).await;
    wait_broker(&b, "up", Duration::from_secs(5)).await;
    let (mut alice, joined) = join(&a, "ops", "alice").await;
    let epoch_before = joined["epoch"].as_str().unwrap().to_owned();
    let (mut bob, _) = join(&b, "ops", "bob").await;
    recv_of(&mut alice, &["user_joined"]).await;
    alice.send(json!({"type":"chat","text":"before"})).await;
    let before = recv_of(&mut bob, &["chat"]).await;
    assert_eq!(before["text"], "before");
    assert_eq!(recv_of(&mut alice, &["chat"]).await["text"], "before");
    // The write reached the replica before the primary dies (a replica behind its primary
    // loses the tail, which resuming clients are told with `recovered: false`).
    eventually("the replica has the chat", Duration::from_secs(5), || {
        redis_cli(replica_port, &["GET", &format!("{p}:room:ops:offset")]).trim() == "1"
    })
    .await;

    drop(primary.take());
    wait_broker(&a, "down", Duration::from_secs(10)).await;
    assert_eq!(health(&a).await["status"], "degraded");
    wait_broker(&a, "up", Duration::from_secs(30)).await;
    wait_broker(&b, "up", Duration::from_secs(30)).await;
    assert_eq!(health(&a).await["status"], "ok");
    assert_eq!(health(&b).await["status"], "ok");
    let role = redis_cli(replica_port, &["ROLE"]);
    assert!(
        role.starts_with("master"),
        "the replica was promoted: {role}"
    );

    // Alice and Bob stayed connected: the promoted replica's stream is another epoch (it may
    // lack the primary's last writes), so each is told, before any message of it, that their
    // stream resumed without a replay.
    for client in [&mut alice, &mut bob] {
        let resumed = recv_of(client, &["room_resumed", "chat"]).await;
        assert_eq!(resumed["type"], "room_resumed", "{resumed}");
        assert_eq!(resumed["room"], "ops");
        assert_eq!(resumed["recovered"], false, "{resumed}");
        assert_ne!(resumed["epoch"], epoch_before.as_str(), "{resumed}");
    }

    // Both nodes resubscribed to the room: cross-node delivery works both ways again, and
    // presence was re-registered on the new primary.
    alice.send(json!({"type":"chat","text":"after"})).await;
    assert_eq!(recv_of(&mut bob, &["chat"]).await["text"], "after");
    assert_eq!(recv_of(&mut alice, &["chat"]).await["text"], "after");
    bob.send(json!({"type":"chat","text":"back"})).await;
    assert_eq!(recv_of(&mut alice, &["chat"]).await["text"], "back");
    let (_carol, joined) = join(&b, "ops", "carol").await;
    let mut users = names(&joined["users"]);
    users.sort();
    assert_eq!(users, ["alice", "bob", "carol"]);

    // The promoted replica may have missed the primary's last writes, so a position from before
    // the failover is never replayed (all or nothing): the room shows a new epoch, and a resume
    // from the old one says `recovered: false`.
    let since = before["offset"].as_u64().unwrap();
    let (_probe, probe) = join(&a, "ops", "probe").await;
    let epoch_after = probe["epoch"].as_str().unwrap().to_owned();
    assert_ne!(epoch_after, epoch_before, "a failover starts a new epoch");
    let mut dave = b.client().await;
    dave.send(json!({"type":"join","room":"ops","user":"dave",
        "since":{"offset":since,"epoch":epoch_before}}))
        .await;
    let joined = dave.recv_type("room_joined").await;
    assert_eq!(joined["recovered"], false, "{joined}");
    assert_eq!(joined["epoch"], epoch_after.as_str());
    // A position from after the failover resumes with every message after it.
    let mut erin = a.client().await;
    erin.send(json!({"type":"join","room":"ops","user":"erin",
        "since":{"offset":since,"epoch":epoch_after}}))
        .await;
    let joined = erin.recv_type("room_joined").await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let latest = joined["offset"].as_u64().unwrap();
    assert!(latest > since);
    for want in since + 1..=latest {
        assert_eq!(
            recv_of(&mut erin, &["chat"]).await["offset"].as_u64(),
            Some(want)
        );
    }
}
