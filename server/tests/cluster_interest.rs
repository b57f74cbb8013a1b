//! Per-room interest on the Redis broker: a node listens only to the channels of rooms (and
//! users) it has a local member of, subscribes before a first join runs and unsubscribes after
//! the last leave, and a first join under traffic misses nothing and doubles nothing. Real
//! nodes on the machine's Redis (each test under its own key prefix, so its channels are its
//! own).

mod common;

use std::time::{Duration, Instant};

use common::cluster::{join, node, prefix, recv_of, redis_cli, wait_broker};
use common::metric;
use serde_json::json;

/// How many connections (nodes) Redis has subscribed to a channel.
fn subscribers(channel: &str) -> u64 {
    let out = redis_cli(6379, &["PUBSUB", "NUMSUB", channel]);
    out.lines().nth(1).unwrap_or("0").trim().parse().unwrap()
}

/// Waits (bounded) until `channel` has `want` subscribers.
async fn wait_subscribers(channel: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = subscribers(channel);
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{channel} has {n} subscribers, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_node_without_a_member_in_a_room_receives_none_of_its_traffic() {
    let p = prefix();
    let (a, b) = (node(&p), node(&p));
    wait_broker(&a, "up", Duration::from_secs(5)).await;
    wait_broker(&b, "up", Duration::from_secs(5)).await;
    // B has one member, in `quiet`; A has members in `quiet` and `busy`.
    let (mut carol, _) = join(&b, "quiet", "carol").await;
    let (mut dave, _) = join(&a, "quiet", "dave").await;
    recv_of(&mut carol, &["user_joined"]).await;
    let (mut alice, _) = join(&a, "busy", "alice").await;
    // Everything before this chat (alice's join included) reached B if B listened to it.
    dave.send(json!({"type":"chat","text":"sync 1"})).await;
    assert_eq!(recv_of(&mut carol, &["chat"]).await["text"], "sync 1");
    let b_before = metric(&b, "herald_broker_received_total").await;
    let a_before = metric(&a, "herald_broker_received_total").await;
    assert!(b_before >= 2.0, "B counts what it receives: {b_before}");
    // B listens to `quiet` and to carol's private channel, nothing else of theirs.
    assert_eq!(metric(&b, "herald_broker_channels").await, 2.0);
    assert_eq!(subscribers(&format!("{p}:room:busy:bus")), 1);
    assert_eq!(subscribers(&format!("{p}:room:quiet:bus")), 2);

    for i in 0..20 {
        alice
            .send(json!({"type":"chat","text":format!("busy {i}")}))
            .await;
    }
    alice.send(json!({"type":"typing"})).await;
    // A private message to a user with no connection on B does not reach B either.
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
    // Published after every busy message; B receives it, and had B received any busy message
    // it would have come first on B's one subscription connection.
    dave.send(json!({"type":"chat","text":"sync 2"})).await;
    assert_eq!(recv_of(&mut carol, &["chat"]).await["text"], "sync 2");
    let b_after = metric(&b, "herald_broker_received_total").await;
    assert_eq!(
        b_after - b_before,
        1.0,
        "B received only the quiet room's chat: none of busy's 20 chats, its typing, or dave's \
         private message"
    );
    let a_after = metric(&a, "herald_broker_received_total").await;
    assert!(
        a_after - a_before >= 21.0,
        "A received busy's chats and quiet's: {}",
        a_after - a_before
    );
}

#[tokio::test]
async fn subscriptions_follow_the_first_join_and_the_last_leave() {
    let p = prefix();
    let b = node(&p);
    wait_broker(&b, "up", Duration::from_secs(5)).await;
    let room = format!("{p}:room:lobby:bus");
    let user = format!("{p}:user:ann:bus");
    assert_eq!(subscribers(&room), 0);
    let (mut ann, _) = join(&b, "lobby", "ann").await;
    // Subscribed before the join ran, so by the time its answer is here.
    assert_eq!(subscribers(&room), 1, "subscribed before the join's answer");
    assert_eq!(subscribers(&user), 1, "ann's private channel");
    let (mut bob, _) = join(&b, "lobby", "bob").await;
    assert_eq!(
        subscribers(&room),
        1,
        "one subscription per node, not per member"
    );
    recv_of(&mut ann, &["user_joined"]).await;
    ann.send(json!({"type":"leave"})).await;
    ann.recv_type("room_left").await;
    recv_of(&mut bob, &["user_left"]).await;
    assert_eq!(subscribers(&room), 1, "bob still needs it");
    bob.send(json!({"type":"leave"})).await;
    bob.recv_type("room_left").await;
    wait_subscribers(&room, 0).await;
    drop(ann);
    wait_subscribers(&user, 0).await;
    assert_eq!(
        metric(&b, "herald_broker_channels").await,
        1.0,
        "bob's private channel only"
    );
}

#[tokio::test]
async fn first_joins_under_traffic_miss_nothing_and_double_nothing() {
    let p = prefix();
    let (a, b) = (node(&p), node(&p));
    wait_broker(&a, "up", Duration::from_secs(5)).await;
    wait_broker(&b, "up", Duration::from_secs(5)).await;
    let (mut alice, _) = join(&a, "stream", "alice").await;
    let room = format!("{p}:room:stream:bus");
    let mut sent = 0u64;
    for round in 0..5 {
        // Alice's chats are in flight when bob's join (B's first member, so B's first
        // subscription to the room) runs.
        for i in 0..40 {
            alice
                .send(json!({"type":"chat","text":format!("r{round} {i}")}))
                .await;
        }
        let mut bob = b.client().await;
        bob.send(json!({"type":"join","room":"stream","user":"bob"}))
            .await;
        for i in 40..80 {
            alice
                .send(json!({"type":"chat","text":format!("r{round} {i}")}))
                .await;
        }
        sent += 80;
        let joined = bob.recv_type("room_joined").await;
        let from = joined["offset"]
            .as_u64()
            .expect("room_joined has an offset");
        assert!(from <= sent);
        let mut next = from + 1;
        while next <= sent {
            let chat = recv_of(&mut bob, &["chat"]).await;
            assert_eq!(
                chat["offset"].as_u64(),
                Some(next),
                "round {round}: after offset {from}, every message once, in order"
            );
            next += 1;
        }
        bob.send(json!({"type":"ping"})).await;
        assert_eq!(
            recv_of(&mut bob, &["pong", "chat"]).await["type"],
            "pong",
            "nothing after the last message"
        );
        for _ in 0..80 {
            recv_of(&mut alice, &["chat"]).await;
        }
        bob.send(json!({"type":"leave"})).await;
        bob.recv_type("room_left").await;
        drop(bob);
        // B's last member left: B unsubscribes, and the next round subscribes again.
        wait_subscribers(&room, 1).await;
    }
}
