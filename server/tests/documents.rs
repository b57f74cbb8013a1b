//! Issue 18: shared documents (capability `documents`) over real sockets against the real
//! binary: open and snapshot, concurrent operations transformed in code points (emoji,
//! combining marks, CJK), acknowledgements and broadcasts in order, exactly once per
//! `(client, seq)` across reconnections, cursors moved by operations and gone with their
//! participant, catch-up by version (every missed op or a snapshot), and every limit with its
//! error while the document stays intact and other connections are undisturbed.
//!
//! Synchronisation is on the protocol only: an author's `doc_ack` is queued after the `doc_op`
//! every other participant gets, and a `ping` is answered after everything queued before it.

mod common;

use common::{Client, Server};
use serde_json::{json, Value};

/// A server whose per-connection message rate does not get in the way (the documents' own
/// operation rate still applies).
fn server() -> Server {
    Server::with(&[], &[("HERALD_MESSAGE_RATE", "0")])
}

/// Every frame queued for `client` before its `ping` arrived.
async fn drain(client: &mut Client) -> Vec<Value> {
    client.send(json!({"type":"ping"})).await;
    let mut frames = Vec::new();
    loop {
        let frame = client.recv().await;
        if frame["type"] == "pong" {
            return frames;
        }
        frames.push(frame);
    }
}

/// The next frame of type `kind`, skipping who opened or closed the document meanwhile.
async fn next(client: &mut Client, kind: &str) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"] != "doc_joined" && frame["type"] != "doc_left" {
            assert_eq!(frame["type"], kind, "expected a {kind} frame, got {frame}");
            return frame;
        }
    }
}

async fn open(client: &mut Client, doc: &str) -> Value {
    client.send(json!({"type":"doc_open","doc":doc})).await;
    // A participant's earlier connection may still be leaving (`doc_left`) as this one opens.
    next(client, "doc_opened").await
}

/// An insert of `text` at code point `at` in a document of `len` code points.
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

async fn send_op(client: &mut Client, doc: &str, who: &str, seq: u64, base: u64, op: Value) {
    client
        .send(json!({"type":"doc_op","doc":doc,"client":who,"seq":seq,"base":base,"op":op}))
        .await;
}

/// The document's text and version, as a fresh connection opening it sees them.
async fn snapshot(server: &Server, doc: &str) -> (String, u64) {
    let mut c = server.client().await;
    let opened = open(&mut c, doc).await;
    (
        opened["text"].as_str().unwrap().to_owned(),
        opened["version"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn opening_gives_the_snapshot_the_participants_and_announces_the_opener() {
    let server = server();
    let mut ann = server.joined("r", json!("ann")).await;
    let opened = open(&mut ann, "notes").await;
    assert_eq!(opened["version"], 0);
    assert_eq!(opened["text"], "");
    assert_eq!(opened["participants"], json!([]));
    assert!(opened.get("recovered").is_none());

    let mut bob = server.client().await;
    let opened = open(&mut bob, "notes").await;
    assert_eq!(
        opened["participants"],
        json!([{"peer": ann.client_id, "user": "ann"}])
    );
    let joined = ann.recv_type("doc_joined").await;
    assert_eq!(joined["peer"], bob.client_id.as_str());
    assert!(joined.get("user").is_none(), "bob never joined a room");
}

#[tokio::test]
async fn the_welcome_announces_documents() {
    let server = server();
    let mut raw = tokio_tungstenite::connect_async(server.ws_url("/ws"))
        .await
        .unwrap()
        .0;
    use futures_util::StreamExt;
    let welcome = raw.next().await.unwrap().unwrap();
    let welcome: Value = serde_json::from_str(welcome.to_text().unwrap()).unwrap();
    let caps = welcome["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("documents")), "{welcome}");
}

#[tokio::test]
async fn concurrent_edits_in_code_points_converge_and_are_acknowledged_in_order() {
    let server = server();
    let mut ann = server.client().await;
    let mut bob = server.client().await;
    open(&mut ann, "d").await;
    open(&mut bob, "d").await;
    ann.recv_type("doc_joined").await;

    // "e" + combining acute, a thumbs-up (two UTF-16 units), and two CJK characters: 5 code
    // points.
    let start = "e\u{301}👍漢字";
    send_op(&mut ann, "d", "ann", 1, 0, insert(0, start, 0)).await;
    let ack = next(&mut ann, "doc_ack").await;
    assert_eq!(
        (ack["seq"].as_u64(), ack["version"].as_u64()),
        (Some(1), Some(1))
    );
    let op = next(&mut bob, "doc_op").await;
    assert_eq!(op["version"], 1);
    assert_eq!(
        (op["client"].as_str(), op["seq"].as_u64()),
        (Some("ann"), Some(1))
    );

    // Both edit version 1 at once: ann inserts after the 👍 (position 3), bob deletes the
    // combining mark (position 1) and inserts at the end (position 5).
    send_op(&mut ann, "d", "ann", 2, 1, insert(3, "🎉", 5)).await;
    send_op(
        &mut bob,
        "d",
        "bob",
        1,
        1,
        json!([{"retain":1},{"delete":1},{"retain":3},{"insert":"é"}]),
    )
    .await;
    let a = ann.recv().await;
    let b = bob.recv().await;
    // Whoever committed first, each gets the other's op transformed, and its own ack.
    let (text, version) = snapshot(&server, "d").await;
    assert_eq!(version, 3);
    assert_eq!(text, "e👍🎉漢字é");
    let mut ann_frames = vec![a];
    ann_frames.extend(drain(&mut ann).await);
    let mut bob_frames = vec![b];
    bob_frames.extend(drain(&mut bob).await);
    let kinds = |f: &mut Vec<Value>| {
        f.retain(|f| f["type"] == "doc_ack" || f["type"] == "doc_op");
        let mut k: Vec<String> = f
            .iter()
            .map(|f| f["type"].as_str().unwrap().to_owned())
            .collect();
        k.sort();
        k
    };
    assert_eq!(kinds(&mut ann_frames), ["doc_ack", "doc_op"]);
    assert_eq!(kinds(&mut bob_frames), ["doc_ack", "doc_op"]);
    // Versions come in order on each connection.
    for frames in [&ann_frames, &bob_frames] {
        let versions: Vec<u64> = frames
            .iter()
            .map(|f| f["version"].as_u64().unwrap())
            .collect();
        assert_eq!(versions, [2, 3]);
    }
}

#[tokio::test]
async fn a_resend_is_acknowledged_again_and_applied_once_even_after_a_reconnect() {
    let server = server();
    let mut ann = server.client().await;
    let mut bob = server.client().await;
    open(&mut ann, "once").await;
    open(&mut bob, "once").await;
    ann.recv_type("doc_joined").await;

    send_op(&mut ann, "once", "ann-1", 1, 0, insert(0, "hi", 0)).await;
    assert_eq!(next(&mut ann, "doc_ack").await["version"], 1);
    send_op(&mut ann, "once", "ann-1", 1, 0, insert(0, "hi", 0)).await;
    let again = next(&mut ann, "doc_ack").await;
    assert_eq!(
        (again["seq"].as_u64(), again["version"].as_u64()),
        (Some(1), Some(1))
    );
    let bob_frames = drain(&mut bob).await;
    assert_eq!(bob_frames.len(), 1, "one doc_op only: {bob_frames:?}");

    // The same client id on a new connection: a resend after catching up is recognised.
    drop(ann);
    let mut ann = server.client().await;
    ann.send(json!({"type":"doc_open","doc":"once","since":0}))
        .await;
    let opened = next(&mut ann, "doc_opened").await;
    assert_eq!(opened["recovered"], true);
    assert_eq!(opened["ops"][0]["client"], "ann-1");
    send_op(&mut ann, "once", "ann-1", 1, 0, insert(0, "hi", 0)).await;
    assert_eq!(next(&mut ann, "doc_ack").await["version"], 1);
    assert_eq!(snapshot(&server, "once").await, ("hi".to_owned(), 1));
    let bob_frames = drain(&mut bob).await;
    assert!(
        bob_frames.iter().all(|f| f["type"] != "doc_op"),
        "never applied twice: {bob_frames:?}"
    );
}

#[tokio::test]
async fn a_bad_operation_gets_an_error_and_the_document_stays_intact() {
    let server = server();
    let mut ann = server.client().await;
    let mut bob = server.client().await;
    open(&mut ann, "safe").await;
    open(&mut bob, "safe").await;
    send_op(&mut ann, "safe", "a", 1, 0, insert(0, "漢字", 0)).await;
    next(&mut ann, "doc_ack").await;

    // Past the end of the document.
    send_op(
        &mut ann,
        "safe",
        "a",
        2,
        1,
        json!([{"retain":5},{"insert":"x"}]),
    )
    .await;
    let e = next(&mut ann, "doc_error").await;
    assert_eq!(
        (e["code"].as_str(), e["seq"].as_u64()),
        (Some("invalid_op"), Some(2))
    );
    assert_eq!(e["doc"], "safe");
    // Shorter than the document.
    send_op(&mut ann, "safe", "a", 3, 1, json!([{"delete":1}])).await;
    assert_eq!(next(&mut ann, "doc_error").await["code"], "invalid_op");
    // A version the document never had.
    send_op(&mut ann, "safe", "a", 4, 9, insert(0, "x", 2)).await;
    assert_eq!(next(&mut ann, "doc_error").await["code"], "version_unknown");
    // Malformed components are refused by the schema.
    for op in [
        json!([{"retain":0}]),
        json!([{"move":1}]),
        json!([{"insert":""}]),
        json!("x"),
    ] {
        send_op(&mut ann, "safe", "a", 5, 1, op).await;
        assert_eq!(next(&mut ann, "error").await["code"], "invalid_message");
    }
    // A document this connection has not opened.
    send_op(&mut ann, "other", "a", 5, 0, insert(0, "x", 0)).await;
    assert_eq!(next(&mut ann, "doc_error").await["code"], "doc_not_open");
    ann.send(json!({"type":"doc_cursor","doc":"other","version":0,"cursor":null}))
        .await;
    assert_eq!(next(&mut ann, "doc_error").await["code"], "doc_not_open");

    assert_eq!(snapshot(&server, "safe").await, ("漢字".to_owned(), 1));
    let bob_frames = drain(&mut bob).await;
    assert_eq!(
        bob_frames.iter().filter(|f| f["type"] == "doc_op").count(),
        1,
        "bob saw only the good op: {bob_frames:?}"
    );
    // The refused sequence numbers were not used up: seq 2 still commits.
    send_op(&mut ann, "safe", "a", 2, 1, insert(2, "!", 2)).await;
    assert_eq!(next(&mut ann, "doc_ack").await["version"], 2);
}

#[tokio::test]
async fn limits_on_operation_size_document_size_rate_and_open_documents() {
    let server = server();
    let mut ann = server.client().await;
    open(&mut ann, "big").await;
    let limit = herald_protocol::document::MAX_OP_INSERT_CHARS as usize;
    let max_doc = herald_protocol::document::MAX_DOC_CHARS;

    send_op(
        &mut ann,
        "big",
        "a",
        1,
        0,
        insert(0, &"x".repeat(limit + 1), 0),
    )
    .await;
    let e = next(&mut ann, "doc_error").await;
    assert_eq!(e["code"], "op_too_large");

    // Fill the document to its limit in operations of the largest size, one connection each
    // (the operation rate is per connection; these are few anyway).
    let mut len = 0u64;
    let mut seq = 1;
    while len < max_doc {
        let n = (max_doc - len).min(limit as u64);
        send_op(
            &mut ann,
            "big",
            "a",
            seq,
            seq - 1,
            insert(len, &"y".repeat(n as usize), len),
        )
        .await;
        assert_eq!(next(&mut ann, "doc_ack").await["version"], seq);
        len += n;
        seq += 1;
    }
    send_op(&mut ann, "big", "a", seq, seq - 1, insert(0, "z", len)).await;
    let e = next(&mut ann, "doc_error").await;
    assert_eq!(e["code"], "doc_too_large");
    let (text, version) = snapshot(&server, "big").await;
    assert_eq!((text.chars().count() as u64, version), (max_doc, seq - 1));

    // Rate: a burst well over the per-second allowance, pipelined, gets `rate_limited` for
    // some, and everything committed is acknowledged.
    let mut fast = server.client().await;
    let opened = open(&mut fast, "fast").await;
    assert_eq!(opened["version"], 0);
    let burst = 3 * herald_protocol::document::MAX_DOC_OPS_PER_SECOND as u64;
    for seq in 1..=burst {
        send_op(&mut fast, "fast", "f", seq, 0, insert(0, "·", 0)).await;
    }
    let (mut acks, mut limited) = (0, 0);
    for _ in 0..burst {
        let frame = fast.recv().await;
        match frame["code"].as_str() {
            Some("rate_limited") => limited += 1,
            Some(other) => panic!("unexpected error {other}: {frame}"),
            None => {
                assert_eq!(frame["type"], "doc_ack");
                acks += 1;
            }
        }
    }
    assert!(limited > 0 && acks > 0, "acks {acks}, limited {limited}");
    assert_eq!(snapshot(&server, "fast").await.1, acks);

    // Open documents per connection.
    let mut many = server.client().await;
    for i in 0..herald_protocol::document::MAX_OPEN_DOCS {
        open(&mut many, &format!("m{i}")).await;
    }
    many.send(json!({"type":"doc_open","doc":"one-too-many"}))
        .await;
    assert_eq!(next(&mut many, "doc_error").await["code"], "too_many_docs");
    // Reopening one already open is not a new one.
    open(&mut many, "m0").await;
}

#[tokio::test]
async fn cursors_move_with_operations_and_go_with_their_participant() {
    let server = server();
    let mut ann = server.joined("r", json!({"id":"ann","name":"Ann"})).await;
    let mut bob = server.client().await;
    open(&mut ann, "c").await;
    open(&mut bob, "c").await;
    ann.recv_type("doc_joined").await;
    send_op(&mut bob, "c", "b", 1, 0, insert(0, "héllo", 0)).await;
    next(&mut bob, "doc_ack").await;
    next(&mut ann, "doc_op").await;

    ann.send(json!({"type":"doc_cursor","doc":"c","version":1,"cursor":{"anchor":1,"head":4}}))
        .await;
    let cursor = next(&mut bob, "doc_cursor").await;
    assert_eq!(cursor["peer"], ann.client_id.as_str());
    assert_eq!(cursor["user"]["name"], "Ann");
    assert_eq!(cursor["cursor"], json!({"anchor":1,"head":4}));
    assert_eq!(cursor["version"], 1);

    // Bob inserts two emoji at the start; a newcomer sees ann's selection moved by two.
    send_op(&mut bob, "c", "b", 2, 1, insert(0, "👍👍", 5)).await;
    next(&mut bob, "doc_ack").await;
    // A cursor sent against version 1 after that is moved through version 2 as well.
    ann.send(json!({"type":"doc_cursor","doc":"c","version":1,"cursor":{"anchor":0,"head":0}}))
        .await;
    let moved = next(&mut bob, "doc_cursor").await;
    assert_eq!(moved["version"], 2);
    assert_eq!(moved["cursor"], json!({"anchor":2,"head":2}));
    ann.send(json!({"type":"doc_cursor","doc":"c","version":1,"cursor":{"anchor":1,"head":4}}))
        .await;
    next(&mut bob, "doc_cursor").await;
    let mut cat = server.client().await;
    let opened = open(&mut cat, "c").await;
    let participants = opened["participants"].as_array().unwrap();
    let of_ann = participants
        .iter()
        .find(|p| p["peer"] == ann.client_id.as_str())
        .unwrap();
    assert_eq!(of_ann["cursor"], json!({"anchor":3,"head":6}));

    // Closing answers doc_closed and tells the others; a disconnect tells them too.
    ann.send(json!({"type":"doc_close","doc":"c"})).await;
    let frames = drain(&mut ann).await;
    assert!(
        frames.iter().any(|f| f["type"] == "doc_closed"),
        "{frames:?}"
    );
    let left = loop {
        let f = bob.recv().await;
        if f["type"] == "doc_left" {
            break f;
        }
    };
    assert_eq!(left["peer"], ann.client_id.as_str());
    drop(cat);
    let left = loop {
        let f = bob.recv().await;
        if f["type"] == "doc_left" {
            break f;
        }
    };
    assert_ne!(left["peer"], ann.client_id.as_str());
    // After closing, ann gets nothing more of the document.
    send_op(&mut bob, "c", "b", 3, 2, insert(0, "x", 7)).await;
    next(&mut bob, "doc_ack").await;
    assert!(drain(&mut ann).await.is_empty());
}

#[tokio::test]
async fn catch_up_brings_every_missed_op_or_a_fresh_snapshot() {
    let server = server();
    let mut ann = server.client().await;
    open(&mut ann, "log").await;
    send_op(&mut ann, "log", "a", 1, 0, insert(0, "ab", 0)).await;
    next(&mut ann, "doc_ack").await;
    drop(ann);

    // Others edit while ann is away.
    let mut bob = server.client().await;
    open(&mut bob, "log").await;
    send_op(&mut bob, "log", "b", 1, 1, insert(2, "c", 2)).await;
    next(&mut bob, "doc_ack").await;
    send_op(
        &mut bob,
        "log",
        "b",
        2,
        2,
        json!([{"delete":1},{"retain":2}]),
    )
    .await;
    next(&mut bob, "doc_ack").await;

    let mut ann = server.client().await;
    ann.send(json!({"type":"doc_open","doc":"log","since":1}))
        .await;
    let opened = next(&mut ann, "doc_opened").await;
    assert_eq!(opened["recovered"], true);
    assert_eq!(opened["version"], 3);
    assert!(opened.get("text").is_none());
    let ops = opened["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0]["version"], 2);
    assert_eq!(ops[1]["op"], json!([{"delete":1},{"retain":2}]));

    // Up to date: recovered with nothing to replay.
    ann.send(json!({"type":"doc_open","doc":"log","since":3}))
        .await;
    let opened = next(&mut ann, "doc_opened").await;
    assert_eq!(
        (
            opened["recovered"].as_bool(),
            opened["ops"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0))
    );

    // Ahead of the document (it never had that version): a snapshot, not recovered.
    ann.send(json!({"type":"doc_open","doc":"log","since":99}))
        .await;
    let opened = next(&mut ann, "doc_opened").await;
    assert_eq!(opened["recovered"], false);
    assert_eq!(opened["text"], "bc");
    assert!(opened.get("ops").is_none());

    // Further behind than the log reaches: a snapshot. Writers in turn, each a pipelined burst
    // within the per-connection operation rate.
    let log = herald_protocol::document::DOC_LOG_OPS as u64;
    let per = u64::from(herald_protocol::document::MAX_DOC_OPS_PER_SECOND) / 2;
    let mut version = 3;
    let mut writer_no = 0;
    while version < log + 10 {
        writer_no += 1;
        let mut w = server.client().await;
        let opened = open(&mut w, "log").await;
        let base = opened["version"].as_u64().unwrap();
        let len = opened["text"].as_str().unwrap().chars().count() as u64;
        let who = format!("w{writer_no}");
        for seq in 1..=per {
            send_op(&mut w, "log", &who, seq, base, insert(0, "·", len)).await;
        }
        for _ in 0..per {
            version = next(&mut w, "doc_ack").await["version"].as_u64().unwrap();
        }
    }
    ann.send(json!({"type":"doc_open","doc":"log","since":3}))
        .await;
    let opened = loop {
        let f = ann.recv().await;
        if f["type"] == "doc_opened" {
            break f;
        }
    };
    assert_eq!(opened["recovered"], false);
    assert_eq!(opened["version"], version);
    let text = opened["text"].as_str().unwrap();
    assert_eq!(text.chars().count() as u64, 2 + version - 3);
    assert!(text.ends_with("bc"));
}
