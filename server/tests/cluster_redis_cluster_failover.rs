//! A Redis Cluster primary failing over under two real nodes: six `redis-server
//! --cluster-enabled yes` of the test's own (three primaries, a replica each, free local ports,
//! a temp dir, killed at the end). When the primary holding a room dies, the nodes report
//! `degraded`, and once its replica has taken over they reconnect, re-register their members,
//! resubscribe and report `ok` again; the room shows a new epoch, so a resume from before the
//! failover answers `recovered: false` (never a silent gap), and one from after it replays every
//! message by offset.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{
    eventually, free_port, join, names, node_on, prefix, recv_of, redis_cli, wait_broker, Proc,
    TempDir,
};
use common::health;
use serde_json::json;

fn cluster_node(port: u16, dir: &std::path::Path) -> Proc {
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
            "--cluster-node-timeout",
            "1000",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (the Redis Cluster failover test needs it)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

/// The port of the primary serving `slot`, and of its replica, from `CLUSTER NODES`.
fn shard_of(nodes: &str, slot: u16) -> (u16, u16) {
    let port_of = |addr: &str| -> u16 { addr.split([':', '@']).nth(1).unwrap().parse().unwrap() };
    let lines: Vec<Vec<&str>> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let primary = lines
        .iter()
        .find(|f| {
            f.len() > 8
                && f[2].contains("master")
                && f[8..].iter().any(|range| {
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    (a.parse::<u16>().unwrap()..=b.parse::<u16>().unwrap()).contains(&slot)
                })
        })
        .expect("a primary serves the slot");
    let replica = lines
        .iter()
        .find(|f| f.len() > 3 && f[2].contains("slave") && f[3] == primary[0])
        .expect("the primary has a replica");
    (port_of(primary[1]), port_of(replica[1]))
}

fn repl_offset(port: u16, field: &str) -> Option<u64> {
    redis_cli(port, &["INFO", "replication"])
        .lines()
        .find_map(|l| l.trim().strip_prefix(field))
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_cluster_primary_failing_over_degrades_then_recovers() {
    let dir = std::env::temp_dir().join(format!("herald-rcluster-fo-{}", prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = TempDir(dir.clone());
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let mut servers: Vec<Option<Proc>> =
        ports.iter().map(|p| Some(cluster_node(*p, &dir))).collect();
    let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
    create.extend(ports.iter().map(|p| format!("127.0.0.1:{p}")));
    create.extend(["--cluster-replicas", "1", "--cluster-yes"].map(str::to_owned));
    let out = Command::new("redis-cli").args(&create).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    eventually(
        "the cluster is ok with its replicas",
        Duration::from_secs(20),
        || {
            ports
                .iter()
                .all(|p| redis_cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                && redis_cli(ports[0], &["CLUSTER", "NODES"])
                    .matches("slave")
                    .count()
                    == 3
        },
    )
    .await;

    let seeds: Vec<String> = ports[..3]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let url = format!("redis+cluster://{}", seeds.join(","));
    let p = prefix();
    let extra = ["--presence-ttl", "2s"];
    let (a, b) = (node_on(&url, &p, &extra), node_on(&url, &p, &extra));
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

    // The shard holding the room, and its replica caught up with it.
    let slot: u16 = redis_cli(
        ports[0],
        &["CLUSTER", "KEYSLOT", &format!("{p}:room:{{ops}}")],
    )
    .trim()
    .parse()
    .unwrap();
    let (primary, replica) = shard_of(&redis_cli(ports[0], &["CLUSTER", "NODES"]), slot);
    eventually(
        "the replica has the primary's writes",
        Duration::from_secs(5),
        || {
            repl_offset(primary, "master_repl_offset:")
                == repl_offset(replica, "slave_repl_offset:")
        },
    )
    .await;

    let index = ports.iter().position(|p| *p == primary).unwrap();
    drop(servers[index].take());
    wait_broker(&a, "down", Duration::from_secs(10)).await;
    assert_eq!(health(&a).await["status"], "degraded");
    wait_broker(&a, "up", Duration::from_secs(30)).await;
    wait_broker(&b, "up", Duration::from_secs(30)).await;
    assert_eq!(health(&a).await["status"], "ok");
    assert_eq!(health(&b).await["status"], "ok");
    let role = redis_cli(replica, &["ROLE"]);
    assert!(
        role.starts_with("master"),
        "the replica was promoted: {role}"
    );

    // Alice and Bob stayed connected: the room's stream on the promoted replica is another
    // epoch, and each is told so (room_resumed, recovered: false) before any message of it.
    for client in [&mut alice, &mut bob] {
        let resumed = recv_of(client, &["room_resumed", "chat"]).await;
        assert_eq!(resumed["type"], "room_resumed", "{resumed}");
        assert_eq!(resumed["recovered"], false, "{resumed}");
        assert_ne!(resumed["epoch"], epoch_before.as_str(), "{resumed}");
    }

    // Both nodes resubscribed: cross-node delivery works both ways again, presence is back.
    alice.send(json!({"type":"chat","text":"after"})).await;
    assert_eq!(recv_of(&mut bob, &["chat"]).await["text"], "after");
    assert_eq!(recv_of(&mut alice, &["chat"]).await["text"], "after");
    bob.send(json!({"type":"chat","text":"back"})).await;
    assert_eq!(recv_of(&mut alice, &["chat"]).await["text"], "back");
    let (_carol, joined) = join(&b, "ops", "carol").await;
    let mut users = names(&joined["users"]);
    users.sort();
    assert_eq!(users, ["alice", "bob", "carol"]);

    // A position from before the failover is never partly replayed; one from after it is.
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
