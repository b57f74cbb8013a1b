//! Capability `presence-diff`, and presence in rooms larger than the full-list size, over real
//! sockets, on one node and across two nodes on Redis.

mod common;

use std::time::Duration;

use common::cluster::{node_on, prefix, wait_broker, REDIS};
use common::{Client, Server};
use serde_json::{json, Value};

async fn join(server: &Server, user: &str, diff: bool) -> (Client, Value) {
    let mut c = server.client().await;
    let mut frame = json!({"type":"join","room":"r","user":user});
    if diff {
        frame["presence"] = json!("diff");
    }
    c.send(frame).await;
    let joined = c.recv_type("room_joined").await;
    (c, joined)
}

/// The next frames up to and including the first that `last` accepts.
async fn until(client: &mut Client, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let f = client.recv().await;
        let done = last(&f);
        frames.push(f);
        if done {
            return frames;
        }
    }
}

/// The next frames up to the answer of an app ping: everything queued before it.
async fn until_pong(client: &mut Client) -> Vec<Value> {
    client.send(json!({"type":"ping"})).await;
    let mut frames = Vec::new();
    loop {
        let f = client.recv().await;
        if f["type"] == "pong" {
            return frames;
        }
        frames.push(f);
    }
}

#[tokio::test]
async fn diff_members_hear_who_changed_and_core_members_get_whole_lists() {
    let server = Server::start();
    let (mut ann, welcome_room) = join(&server, "ann", true).await;
    assert_eq!(welcome_room["users"], json!(["ann"]));
    let (mut core, _) = join(&server, "cat", false).await;
    let (bob, joined) = join(&server, "bob", false).await;
    assert_eq!(joined["users"], json!(["ann", "cat", "bob"]));
    drop(bob);
    // The server notices bob's disconnect on its own time: read up to his leave.
    let a = until(&mut ann, |f| f["leaves"] == json!(["bob"])).await;
    assert_eq!(
        a,
        [
            json!({"type":"presence_diff","room":"r","joins":["cat"],"leaves":[]}),
            json!({"type":"presence_diff","room":"r","joins":["bob"],"leaves":[]}),
            json!({"type":"presence_diff","room":"r","joins":[],"leaves":["bob"]}),
        ]
    );
    let c = until(&mut core, |f| f["type"] == "user_left").await;
    assert_eq!(c[0]["type"], "user_joined");
    assert_eq!(c[0]["users"], json!(["ann", "cat", "bob"]));
    assert_eq!(c[1], json!({"type":"user_left","user":"bob","room":"r"}));
    // The whole list on request.
    ann.send(json!({"type":"presence"})).await;
    assert_eq!(
        ann.recv().await,
        json!({"type":"presence_state","room":"r","users":["ann","cat"]})
    );
    // Outside a room there is nothing to list.
    let mut lone = server.client().await;
    lone.send(json!({"type":"presence"})).await;
    assert_eq!(lone.recv_type("error").await["code"], "not_in_room");
}

#[tokio::test]
async fn core_members_of_rooms_over_the_full_list_size_are_not_sent_lists() {
    let server = Server::with(&["--presence-full-list-max", "2"], &[]);
    let (mut ann, _) = join(&server, "ann", false).await;
    let (mut dan, _) = join(&server, "dan", true).await;
    let (_bob, _) = join(&server, "bob", false).await;
    let (_cat, joined) = join(&server, "cat", false).await;
    // room_joined still lists everyone.
    assert_eq!(joined["users"], json!(["ann", "dan", "bob", "cat"]));
    // ann (core) heard of dan (2 members), not of bob (3) or cat (4).
    let a = until_pong(&mut ann).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["user"], "dan");
    // dan (diff) heard of both.
    let d = until_pong(&mut dan).await;
    let joins: Vec<&Value> = d.iter().map(|f| &f["joins"][0]).collect();
    assert_eq!(joins, [&json!("bob"), &json!("cat")]);
}

#[tokio::test]
async fn diffs_and_member_lists_span_nodes_on_redis() {
    let p = prefix();
    let (a, b) = (node_on(REDIS, &p, &[]), node_on(REDIS, &p, &[]));
    wait_broker(&a, "up", Duration::from_secs(5)).await;
    wait_broker(&b, "up", Duration::from_secs(5)).await;
    let (mut ann, _) = join(&a, "ann", true).await;
    let (mut core, _) = join(&b, "cat", false).await;
    let (bob, joined) = join(&b, "bob", false).await;
    assert_eq!(joined["users"], json!(["ann", "cat", "bob"]));
    drop(bob);
    // Presence crosses the bus: wait for the leave, the last change.
    let mut seen = Vec::new();
    while seen.last()
        != Some(&json!({"type":"presence_diff","room":"r","joins":[],"leaves":["bob"]}))
    {
        seen.push(ann.recv().await);
    }
    assert_eq!(
        seen,
        [
            json!({"type":"presence_diff","room":"r","joins":["cat"],"leaves":[]}),
            json!({"type":"presence_diff","room":"r","joins":["bob"],"leaves":[]}),
            json!({"type":"presence_diff","room":"r","joins":[],"leaves":["bob"]}),
        ]
    );
    assert_eq!(
        core.recv_type("user_joined").await["users"],
        json!(["ann", "cat", "bob"])
    );
    assert_eq!(core.recv_type("user_left").await["user"], "bob");
    ann.send(json!({"type":"presence"})).await;
    assert_eq!(
        ann.recv_type("presence_state").await["users"],
        json!(["ann", "cat"])
    );
}
