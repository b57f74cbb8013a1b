//! A Redis Cluster primary failing over under two real nodes: six `redis-server
//! --cluster-enabled yes` of the test's own (three primaries, a replica each, free local ports,
//! a temp dir, killed at the end). When the primary holding a room dies, the nodes report
//! `degraded`, and once its replica has taken over they reconnect, re-register their members,
//! resubscribe and report `ok` again; the room shows a new epoch, so a resume from before the
//! failover answers `recovered: false` (never a silent gap), and one from after it replays every
//! message by offset.

mod common;

use std::time::Duration;

use common::cluster::{
    eventually, join, names, node_on, prefix, recv_of, redis_cli, repl_offset, wait_broker,
    ReplicatedCluster,
};
use common::health;
use serde_json::json;

#[tokio::test]
async fn a_cluster_primary_failing_over_degrades_then_recovers() {
    let mut cluster = ReplicatedCluster::start().await;
    let url = cluster.url();
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
    let slot = cluster.slot(&format!("{p}:room:{{ops}}"));
    let (primary, replica) = cluster.shard_of(slot);
    eventually(
        "the replica has the primary's writes",
        Duration::from_secs(5),
        || {
            repl_offset(primary, "master_repl_offset:")
                == repl_offset(replica, "slave_repl_offset:")
        },
    )
    .await;

    cluster.kill(primary);
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
