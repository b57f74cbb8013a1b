//! Redis Sentinel failover under two real nodes: a primary, its replica and a sentinel of the
//! test's own (free local ports, a temp dir, killed at the end). When the primary dies the nodes
//! report `degraded`, find the promoted replica through the sentinel, re-register their members,
//! resubscribe to their rooms, and report `ok` again; nothing stays silently unsubscribed.

mod common;

use std::time::Duration;

use common::cluster::{
    eventually, join, names, node_on, prefix, recv_of, redis_cli, wait_broker, SentinelSet,
};
use common::health;
use serde_json::json;

#[tokio::test]
async fn a_sentinel_failover_degrades_then_recovers_on_the_new_primary() {
    let mut redis = SentinelSet::start().await;
    let replica_port = redis.replica_port;
    let url = redis.url();
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

    redis.kill_primary();
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
