//! Issue 18 with `--broker redis://`: two nodes commit to one document in one order, cursors
//! and presence cross nodes, and a document survives a node restart (op log and snapshots in
//! Redis). Each test runs under its own key prefix on the machine's Redis.

mod common;

use common::cluster::{node_on, prefix, redis_cli, wait_broker, REDIS};
use common::{Client, Server, WAIT};
use serde_json::{json, Value};

async fn node(prefix: &str) -> Server {
    let server = node_on(REDIS, prefix, &[]);
    wait_broker(&server, "up", WAIT).await;
    server
}

/// The next frame, skipping who opened or closed the document meanwhile.
async fn next_any(client: &mut Client) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"] != "doc_joined" && frame["type"] != "doc_left" {
            return frame;
        }
    }
}

/// The next frame, which must be of type `kind` (presence skipped).
async fn next(client: &mut Client, kind: &str) -> Value {
    let frame = next_any(client).await;
    assert_eq!(frame["type"], kind, "expected a {kind} frame, got {frame}");
    frame
}

async fn open(client: &mut Client, doc: &str, since: Option<u64>) -> Value {
    let mut frame = json!({"type":"doc_open","doc":doc});
    if let Some(since) = since {
        frame["since"] = json!(since);
    }
    client.send(frame).await;
    next(client, "doc_opened").await
}

fn insert(at: u64, text: &str, len: u64) -> Value {
    let mut op = Vec::new();
    if at > 0 {
        op.push(json!({"retain": at}));
    }
    op.push(json!({"insert": text}));
    if len > at {
        op.push(json!({"retain": len - at}));
    }
    Value::Array(op)
}

#[tokio::test]
async fn two_nodes_commit_concurrent_operations_in_one_order() {
    let p = prefix();
    let (a, b) = (node(&p).await, node(&p).await);
    let mut ann = a.client().await;
    let mut bob = b.client().await;
    open(&mut ann, "shared", None).await;
    let opened = open(&mut bob, "shared", None).await;
    assert_eq!(opened["participants"][0]["peer"], ann.client_id.as_str());
    assert_eq!(
        ann.recv_type("doc_joined").await["peer"],
        bob.client_id.as_str()
    );

    // Both against version 0, at once, from two nodes.
    ann.send(json!({"type":"doc_op","doc":"shared","client":"ann","seq":1,"base":0,"op":insert(0, "漢字", 0)}))
        .await;
    bob.send(json!({"type":"doc_op","doc":"shared","client":"bob","seq":1,"base":0,"op":insert(0, "👍", 0)}))
        .await;
    // Each gets its ack and the other's op, versions 1 then 2, whichever committed first.
    for client in [&mut ann, &mut bob] {
        let first = next_any(client).await;
        let second = next_any(client).await;
        assert_eq!(
            (first["version"].as_u64(), second["version"].as_u64()),
            (Some(1), Some(2))
        );
        let mut kinds = [
            first["type"].as_str().unwrap(),
            second["type"].as_str().unwrap(),
        ];
        kinds.sort();
        assert_eq!(kinds, ["doc_ack", "doc_op"]);
    }
    // The text is the same through either node.
    let mut c1 = a.client().await;
    let mut c2 = b.client().await;
    let t1 = open(&mut c1, "shared", None).await["text"].clone();
    let t2 = open(&mut c2, "shared", None).await["text"].clone();
    assert_eq!(t1, t2);
    assert!(t1 == "漢字👍" || t1 == "👍漢字", "{t1}");

    // A cursor on node A reaches node B, moved to the current version.
    ann.send(
        json!({"type":"doc_cursor","doc":"shared","version":1,"cursor":{"anchor":0,"head":0}}),
    )
    .await;
    let cursor = next(&mut bob, "doc_cursor").await;
    assert_eq!(cursor["peer"], ann.client_id.as_str());
    assert_eq!(cursor["version"], 2);
}

#[tokio::test]
async fn a_document_survives_a_node_restart() {
    let p = prefix();
    let a = node(&p).await;
    // 150 operations (past a snapshot at 100), from three writers within the operation rate.
    let mut expected = String::new();
    let mut version = 0u64;
    for w in 0..3 {
        let mut c = a.client().await;
        open(&mut c, "kept", None).await;
        for seq in 1..=50u64 {
            let piece = ["é", "👍", "漢", "a"][(seq % 4) as usize];
            let len = expected.chars().count() as u64;
            c.send(
                json!({"type":"doc_op","doc":"kept","client":format!("w{w}"),"seq":seq,
                "base":version,"op":insert(len, piece, len)}),
            )
            .await;
            version = next(&mut c, "doc_ack").await["version"].as_u64().unwrap();
            expected.push_str(piece);
        }
    }
    assert_eq!(version, 150);
    let port = REDIS.rsplit(':').next().unwrap().parse().unwrap();
    let snap = redis_cli(port, &["HGET", &format!("{p}:{{doc:kept}}:meta"), "snap"]);
    assert_eq!(snap.trim(), "100", "a snapshot was taken");
    drop(a);

    let b = node(&p).await;
    let mut c = b.client().await;
    let opened = open(&mut c, "kept", None).await;
    assert_eq!(opened["version"], 150);
    assert_eq!(opened["text"], expected.as_str());
    let caught_up = open(&mut c, "kept", Some(140)).await;
    assert_eq!(caught_up["recovered"], true);
    assert_eq!(caught_up["ops"].as_array().unwrap().len(), 10);
    // A resend of an operation committed before the restart is still recognised.
    c.send(json!({"type":"doc_op","doc":"kept","client":"w2","seq":50,"base":149,"op":insert(0, "x", 149)}))
        .await;
    assert_eq!(next(&mut c, "doc_ack").await["version"], 150);
    // And new edits go on from there.
    c.send(json!({"type":"doc_op","doc":"kept","client":"w9","seq":1,"base":150,"op":insert(0, "!", 150)}))
        .await;
    assert_eq!(next(&mut c, "doc_ack").await["version"], 151);
}
