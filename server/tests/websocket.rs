//! Every WebSocket row of WIRE.md, over real sockets against the real binary.

mod common;

use std::time::Duration;

use common::{Client, RawClient, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn welcome_comes_first_on_both_paths() {
    let server = Server::start();
    let a = Client::connect(&server.ws_url("/")).await;
    let b = Client::connect(&server.ws_url("/ws")).await;
    assert!(!a.client_id.is_empty());
    assert_ne!(a.client_id, b.client_id);
}

#[tokio::test]
async fn join_lists_members_and_tells_the_others() {
    let server = Server::start();
    let ann = json!({"id":"u1","name":"Ann","avatar":"https://example.com/a.png","color":"red","prefs":{"x":[1,2]}});
    let mut a = server.client().await;
    a.send(json!({"type":"join","room":"general","user":ann}))
        .await;
    let joined = a.recv_type("room_joined").await;
    assert_eq!(joined["users"], json!([ann]));
    assert_eq!(joined["offset"], 0);
    assert!(joined["epoch"].is_string());
    assert!(joined.get("recovered").is_none());

    let mut b = server.client().await;
    b.send(json!({"type":"join","room":"general","user":"Bob"}))
        .await;
    let joined = b.recv_type("room_joined").await;
    assert_eq!(joined["users"], json!([ann, "Bob"]));
    let told = a.recv_type("user_joined").await;
    assert_eq!(told["user"], "Bob");
    assert_eq!(told["users"], json!([ann, "Bob"]));
    assert_eq!(told["room"], "general");
    b.expect_silence(QUIET).await; // the joiner gets no user_joined about itself
}

#[tokio::test]
async fn object_user_without_avatar_gets_none_added() {
    let server = Server::start();
    let mut a = server.client().await;
    a.send(json!({"type":"join","room":"r","user":{"id":"u9","name":"Nia"}}))
        .await;
    let joined = a.recv_type("room_joined").await;
    assert_eq!(joined["users"][0], json!({"id":"u9","name":"Nia"}));
}

#[tokio::test]
async fn chat_reaches_everyone_with_id_timestamp_and_offset() {
    let server = Server::start();
    let mut a = server.joined("general", json!("Ann")).await;
    let mut b = server.joined("general", json!("Bob")).await;
    a.recv_type("user_joined").await;
    let mut outsider = server.joined("elsewhere", json!("Out")).await;

    a.send(
        json!({"type":"chat","text":"hello <b onclick=\"x()\">world</b><script>alert(1)</script>"}),
    )
    .await;
    let at_a = a.recv_type("chat").await;
    let at_b = b.recv_type("chat").await;
    assert_eq!(at_a, at_b, "every member gets the same frame");
    assert_eq!(at_a["user"], "Ann");
    assert_eq!(at_a["text"], "hello <b>world</b>");
    assert_eq!(at_a["room"], "general");
    assert_eq!(at_a["offset"], 1);
    assert!(at_a["id"].as_str().is_some_and(|s| !s.is_empty()));
    let ts = at_a["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.contains('T'), "RFC 3339: {ts}");
    outsider.expect_silence(QUIET).await;

    b.send(json!({"type":"chat","text":"second"})).await;
    assert_eq!(a.recv_type("chat").await["offset"], 2);
    assert_eq!(b.recv_type("chat").await["offset"], 2);
}

#[tokio::test]
async fn typing_goes_to_the_others_only() {
    let server = Server::start();
    let mut a = server.joined("general", json!("Ann")).await;
    let mut b = server.joined("general", json!("Bob")).await;
    a.recv_type("user_joined").await;
    b.send(json!({"type":"typing","isTyping":true})).await;
    let t = a.recv_type("typing").await;
    assert_eq!(t["user"], "Bob");
    assert_eq!(t["isTyping"], true);
    b.send(json!({"type":"typing","isTyping":false})).await;
    assert_eq!(a.recv_type("typing").await["isTyping"], false);
    b.expect_silence(QUIET).await;
}

#[tokio::test]
async fn leave_answers_and_tells_the_others() {
    let server = Server::start();
    let mut a = server.joined("general", json!("Ann")).await;
    let mut b = server.joined("general", json!("Bob")).await;
    a.recv_type("user_joined").await;
    b.send(json!({"type":"leave"})).await;
    assert_eq!(b.recv_type("room_left").await["room"], "general");
    let left = a.recv_type("user_left").await;
    assert_eq!(left["user"], "Bob");
    // Out of the room now: chat is refused.
    b.send(json!({"type":"chat","text":"hi"})).await;
    let err = b.recv_type("error").await;
    assert_eq!(err["message"], "Not in a room");
    assert_eq!(err["code"], "not_in_room");
    b.send(json!({"type":"leave"})).await;
    assert_eq!(b.recv_type("error").await["code"], "not_in_room");
}

#[tokio::test]
async fn joining_another_room_leaves_the_first() {
    let server = Server::start();
    let mut a = server.joined("one", json!("Ann")).await;
    let mut b = server.joined("one", json!("Bob")).await;
    a.recv_type("user_joined").await;
    let mut c = server.joined("two", json!("Cy")).await;
    b.send(json!({"type":"join","room":"two","user":"Bob"}))
        .await;
    assert_eq!(b.recv_type("room_left").await["room"], "one");
    let joined = b.recv_type("room_joined").await;
    assert_eq!(joined["users"], json!(["Cy", "Bob"]));
    assert_eq!(a.recv_type("user_left").await["user"], "Bob");
    assert_eq!(c.recv_type("user_joined").await["user"], "Bob");
    // Bob's chat now goes to room two only.
    b.send(json!({"type":"chat","text":"moved"})).await;
    assert_eq!(c.recv_type("chat").await["room"], "two");
    a.expect_silence(QUIET).await;
}

#[tokio::test]
async fn abrupt_disconnect_is_a_leave() {
    let server = Server::start();
    let mut a = server.joined("general", json!("Ann")).await;
    let b = server
        .joined("general", json!({"id":"b1","name":"Bob"}))
        .await;
    a.recv_type("user_joined").await;
    // Drop the TCP connection without a close handshake.
    drop(b);
    let left = a.recv_type("user_left").await;
    assert_eq!(left["user"], json!({"id":"b1","name":"Bob"}));
    let mut c = server.joined("general", json!("Cy")).await;
    let _ = &mut c;
    let joined = a.recv_type("user_joined").await;
    assert_eq!(joined["users"], json!(["Ann", "Cy"]));
}

#[tokio::test]
async fn private_message_reaches_every_connection_of_the_target() {
    let server = Server::start();
    let mut t1 = server.joined("a", json!({"id":"target","name":"T"})).await;
    let mut t2 = server.joined("b", json!({"id":"target","name":"T"})).await;
    let mut s = server.joined("c", json!("Sender")).await;
    s.send(json!({"type":"private_message","target":"target","text":"psst <i>x</i><img src=x>"}))
        .await;
    for t in [&mut t1, &mut t2] {
        let pm = t.recv_type("private_message").await;
        assert_eq!(pm["from"], "Sender");
        assert_eq!(pm["text"], "psst <i>x</i>");
        assert!(pm["id"].is_string() && pm["timestamp"].is_string());
    }
    s.expect_silence(QUIET).await;
    s.send(json!({"type":"private_message","target":"nobody","text":"hi"}))
        .await;
    let err = s.recv_type("error").await;
    assert_eq!(err["code"], "user_not_found");
}

#[tokio::test]
async fn chapter_errors_keep_their_texts_and_the_connection() {
    let server = Server::start();
    let mut c = server.client().await;
    c.send_raw(Message::text("this is not json")).await;
    let e = c.recv_type("error").await;
    assert_eq!(
        (e["message"].as_str(), e["code"].as_str()),
        (Some("Invalid message format"), Some("invalid_format"))
    );
    c.send_raw(Message::text("{\"kind\":\"chat\"}")).await;
    assert_eq!(
        c.recv_type("error").await["message"],
        "Invalid message format"
    );
    c.send_raw(Message::text("[]")).await;
    assert_eq!(c.recv_type("error").await["code"], "invalid_format");
    c.send(json!({"type":"dance"})).await;
    let e = c.recv_type("error").await;
    assert_eq!(
        (e["message"].as_str(), e["code"].as_str()),
        (Some("Unknown message type"), Some("unknown_type"))
    );
    c.send(json!({"type":"chat","text":"early"})).await;
    assert_eq!(c.recv_type("error").await["message"], "Not in a room");
    c.send(json!({"type":"typing","isTyping":true})).await;
    assert_eq!(c.recv_type("error").await["message"], "Not in a room");
    c.send(json!({"type":"chat","text":5})).await;
    let e = c.recv_type("error").await;
    assert_eq!(e["code"], "invalid_message");
    assert!(e["message"].as_str().unwrap().contains("/text"), "{e}");
    c.send(json!({"type":"join","room":"bad room!","user":"x"}))
        .await;
    let e = c.recv_type("error").await;
    assert!(e["message"].as_str().unwrap().contains("/room"), "{e}");
    // No text cap below the frame limit (protocol 1.1): a long chat is refused only for the room.
    c.send(json!({"type":"chat","text":"x".repeat(9000)})).await;
    assert_eq!(c.recv_type("error").await["code"], "not_in_room");
    c.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    assert_eq!(c.recv_type("error").await["code"], "invalid_format");
    // Still open and working.
    c.send(json!({"type":"ping"})).await;
    c.recv_type("pong").await;
}

#[tokio::test]
async fn oversized_frame_closes_with_1009_and_disturbs_no_one() {
    let server = Server::start();
    let mut a = server.joined("general", json!("Ann")).await;
    let mut big = server.joined("general", json!("Big")).await;
    a.recv_type("user_joined").await;
    let payload = format!(
        "{{\"type\":\"chat\",\"text\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    big.send_raw(Message::text(payload)).await;
    let (code, reason) = big.expect_close().await;
    assert_eq!(code, 1009);
    assert_eq!(reason, "message too big");
    assert_eq!(a.recv_type("user_left").await["user"], "Big");
    a.send(json!({"type":"chat","text":"still here"})).await;
    assert_eq!(a.recv_type("chat").await["text"], "still here");
}

#[tokio::test]
async fn invalid_utf8_closes_only_that_connection_with_1007() {
    let server = Server::start();
    let mut a = server.joined("general", json!("Ann")).await;
    // A raw socket sending a masked text frame holding invalid UTF-8.
    let mut raw = RawClient::connect(&server.addr).await;
    raw.send(&common::masked_text_frame(&[0xff, 0xfe, 0xfd]))
        .await;
    // The server ends that connection with a close frame saying why (1007, invalid payload
    // data), then closes the socket...
    let mut code = None;
    while let Some(frame) = raw.next().await {
        if let Some(c) = frame.close_code() {
            code = Some(c);
            break;
        }
        if frame.opcode == 0x1 {
            let text = String::from_utf8_lossy(&frame.payload).into_owned();
            assert!(
                text.contains("\"welcome\""),
                "only the welcome comes first: {text}"
            );
        }
    }
    assert_eq!(code, Some(1007), "close code for invalid UTF-8");
    assert!(
        raw.next().await.is_none(),
        "nothing follows the close frame"
    );
    // ...and everyone else carries on.
    a.send(json!({"type":"chat","text":"fine"})).await;
    assert_eq!(a.recv_type("chat").await["text"], "fine");
}

#[tokio::test]
async fn garbage_burst_then_normal_traffic() {
    // A burst past the default message rate: this test is about parsing, not rate limits.
    let server = Server::with(&[], &[("HERALD_MESSAGE_RATE", "0")]);
    let mut a = server.joined("general", json!("Ann")).await;
    let mut g = server.joined("general", json!("Garbage")).await;
    a.recv_type("user_joined").await;
    for i in 0..200 {
        let msg = match i % 4 {
            0 => Message::binary(vec![0u8; 100]),
            1 => Message::text("{{{{"),
            2 => Message::text("{\"type\":null}"),
            _ => Message::text("{\"type\":\"chat\",\"text\":[1]}"),
        };
        g.ws.feed(msg).await.unwrap();
    }
    g.ws.flush().await.unwrap();
    for _ in 0..200 {
        g.recv_type("error").await;
    }
    g.send(json!({"type":"chat","text":"after the storm"}))
        .await;
    assert_eq!(a.recv_type("chat").await["text"], "after the storm");
    assert_eq!(g.recv_type("chat").await["text"], "after the storm");
}

#[tokio::test]
async fn notifications_reach_the_users_websockets() {
    let server = Server::start();
    let mut u1 = server.joined("r", json!({"id":"u1","name":"One"})).await;
    let mut u2 = server.joined("r", json!({"id":"u2","name":"Two"})).await;
    u1.recv_type("user_joined").await;
    let (status, body) = common::post(
        &server.url("/notifications"),
        r#"{"userId":"u1","message":"hi","type":"info"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let n = u1.recv_type("notification").await;
    assert_eq!(n["content"]["id"], body["notificationId"]);
    assert_eq!(n["content"]["userId"], "u1");
    assert_eq!(n["content"]["message"], "hi");
    assert_eq!(n["content"]["type"], "info");
    u2.expect_silence(QUIET).await;
    let (status, _) = common::post(&server.url("/notifications"), r#"{"message":"all"}"#).await;
    assert_eq!(status, 200);
    for c in [&mut u1, &mut u2] {
        let n = c.recv_type("notification").await;
        assert_eq!(n["content"]["message"], "all");
        assert!(n["content"].get("userId").is_none());
    }
}

#[tokio::test]
async fn hundreds_joining_at_once_end_with_one_consistent_list() {
    let server = Server::start();
    let n = 200;
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = server.ws_url("/ws");
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&url).await;
            c.send(json!({"type":"join","room":"crowd","user":format!("user{i}")}))
                .await;
            c.recv_type("room_joined").await;
            c
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    let mut last = server.joined("crowd", json!("last")).await;
    let _ = &mut last;
    // Every member's final user_joined lists the same n + 1 users.
    let mut lists = Vec::new();
    for c in clients.iter_mut() {
        let mut frame = c.recv().await;
        while frame["user"] != "last" {
            frame = c.recv().await;
        }
        lists.push(frame["users"].clone());
    }
    let first = &lists[0];
    assert_eq!(first.as_array().unwrap().len(), n + 1);
    assert!(lists.iter().all(|l| l == first));
    let mut names: Vec<String> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n + 1);
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_and_the_room_keeps_up() {
    let server = Server::with(
        &[],
        &[
            ("HERALD_OUTBOUND_QUEUE_BYTES", "131072"),
            ("HERALD_SLOW_CONSUMER_GRACE", "300ms"),
            ("HERALD_MESSAGE_RATE", "0"),
        ],
    );
    let mut reader = server.joined("busy", json!("Reader")).await;
    let mut slow = server.joined("busy", json!("Slow")).await;
    reader.recv_type("user_joined").await;
    let mut sender = server.joined("busy", json!("Sender")).await;
    reader.recv_type("user_joined").await;
    // Slow stops reading: its socket buffers and then its queue fill up.
    let text = "y".repeat(4000);
    let mut received = 0;
    let mut slow_gone = false;
    for i in 0..4000 {
        sender.send(json!({"type":"chat","text":text})).await;
        // Reader and sender keep up as they go.
        let frame = reader.recv().await;
        if frame["type"] == "user_left" {
            assert_eq!(frame["user"], "Slow");
            slow_gone = true;
            continue;
        }
        assert_eq!(frame["type"], "chat", "at {i}");
        received += 1;
        sender.recv().await;
        if slow_gone && received > 100 {
            break;
        }
    }
    assert!(slow_gone, "the slow consumer was never dropped");
    // The server closed it: draining what it had buffered ends in close 1008 "slow consumer",
    // or a reset when even the close frame could not be written.
    let mut got_close = None;
    loop {
        match tokio::time::timeout(common::WAIT, futures_util::StreamExt::next(&mut slow.ws)).await
        {
            Ok(Some(Ok(Message::Close(frame)))) => {
                got_close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                break;
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Ok(None) => break,
            Err(_) => panic!("the slow connection was not closed"),
        }
    }
    if let Some((code, reason)) = got_close {
        assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    }
}

#[tokio::test]
async fn app_level_ping_gets_pong() {
    let server = Server::start();
    let mut c = server.client().await;
    c.send(json!({"type":"ping"})).await;
    assert_eq!(c.recv().await, json!({"type":"pong"}));
}

#[tokio::test]
async fn silent_connection_is_closed_and_leaves_its_room() {
    let server = Server::with(&["--ping-interval", "200ms", "--ping-timeout", "1s"], &[]);
    let mut watcher = server.joined("live", json!("Watcher")).await;
    // A raw client that completes the handshake, joins, then never answers pings.
    let mut ghost = RawClient::connect(&server.addr).await;
    let join = br#"{"type":"join","room":"live","user":"Ghost"}"#;
    ghost.send(&common::masked_text_frame(join)).await;
    assert_eq!(watcher.recv_type("user_joined").await["user"], "Ghost");
    // The watcher answers pings (tungstenite does it while reading) and stays; Ghost is dropped.
    // No stopwatch: the watcher counts the server's ping rounds instead. One pinger visits every
    // connection once per round (one interval), so Ghost, silent since its join, is closed on one
    // of its first 1 s / 200 ms + 1 = 6 visits after it; that is within 7 rounds of the watcher's
    // own visits. 15 rounds leave room for the close and the leave to reach the watcher however
    // slowly the machine runs (they race only the pinger, which runs on the same runtime).
    let mut rounds = 0;
    let left = loop {
        let msg = tokio::time::timeout(common::WAIT, watcher.ws.next())
            .await
            .expect("pings every 200 ms")
            .expect("watcher open")
            .expect("frame");
        match msg {
            Message::Ping(_) => {
                rounds += 1;
                assert!(
                    rounds <= 15,
                    "Ghost still in the room after {rounds} ping rounds"
                );
            }
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v["type"], "user_left", "{v}");
                break v;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(left["user"], "Ghost");
    // Ghost got a close frame for the timeout (1001) after its pings.
    let mut code = None;
    while let Some(frame) = ghost.next().await {
        if let Some(c) = frame.close_code() {
            code = Some(c);
            break;
        }
    }
    assert_eq!(code, Some(1001));
    watcher.send(json!({"type":"ping"})).await;
    watcher.recv_type("pong").await;
}

/// How many pings an unanswering connection gets before the server closes it for silence, and the
/// close code it gets.
async fn pings_until_closed(server: &Server) -> (u32, u16) {
    let mut raw = RawClient::connect(&server.addr).await;
    let mut pings = 0;
    while let Some(frame) = raw.next().await {
        match frame.opcode {
            0x9 => {
                assert!(frame.payload.is_empty(), "pings carry no payload");
                pings += 1;
            }
            0x8 => return (pings, frame.close_code().unwrap()),
            0x1 => {} // welcome
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
    panic!("closed without a close frame after {pings} pings");
}

#[tokio::test]
async fn the_server_pings_on_the_configured_interval() {
    // The reference clock is the server's own ping timeout, not the test's: a connection that
    // never answers is pinged every interval until it has been silent for the timeout, then
    // closed (1001). So the number of pings it gets before the close is timeout / interval,
    // measured by the server alone (10 here), whatever the test's own scheduling.
    // - At most 10 + 1: a connection is visited at most once per interval (timers never fire
    //   early), so 12 pings would need 11 intervals inside the 10-interval timeout. A pinger
    //   pinging on every one of its 16 slot ticks, or a shorter interval, would exceed it.
    // - At least 4: a load that stretches the server's timers can only lower the count (fewer
    //   visits fit in the timeout), so the floor is loose on purpose (the pinger would have to
    //   run 3 times slower than its interval for 3 s to miss it); 4 still fails an interval 4
    //   times too long (at most 3 pings fit), and a server that ignores --ping-interval (30 s)
    //   never closes within the reader's hang guard.
    let server = Server::with(&["--ping-interval", "300ms", "--ping-timeout", "3s"], &[]);
    let (pings, code) = pings_until_closed(&server).await;
    assert_eq!(code, 1001, "a ping timeout closes with 1001");
    assert!(
        (4..=11).contains(&pings),
        "{pings} pings in a 3 s timeout at a 300 ms interval"
    );
}

#[tokio::test]
async fn every_connection_is_pinged_when_a_slot_holds_several_groups() {
    // 16 slots per interval and groups of 32: 600 connections put 37 or 38 in each slot, so
    // every slot is pinged in two groups, the second after a pause. All must be pinged.
    let server = Server::with(&["--ping-interval", "1s", "--ping-timeout", "30s"], &[]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..600 {
        let mut raw = RawClient::connect(&server.addr).await;
        let tx = tx.clone();
        tokio::spawn(async move {
            // No hang guard of its own: the witness below decides when this has taken too long.
            while let Some(frame) = raw.next_within(Duration::from_secs(600)).await {
                if frame.opcode == 0x9 {
                    // Kept open (in the channel) until every reader is done.
                    let _ = tx.send(raw);
                    return;
                }
            }
            panic!("closed before a ping");
        });
    }
    drop(tx);
    // A witness connected after the others counts the pinger's rounds: once it has had its
    // second ping, the pinger has gone round every slot since the last reader connected. It
    // may have 4 before the test gives up, slack for readers' tasks to catch up however slowly
    // the machine runs; there is no stopwatch.
    let mut witness = RawClient::connect(&server.addr).await;
    let mut rounds = 0;
    let mut pinged = Vec::new();
    while pinged.len() < 600 {
        tokio::select! {
            raw = rx.recv() => pinged.push(raw.expect("a reader ended without a ping")),
            frame = witness.next() => {
                if frame.expect("witness open").opcode == 0x9 {
                    rounds += 1;
                    assert!(
                        rounds <= 4,
                        "{} of 600 connections pinged after {rounds} ping rounds",
                        pinged.len()
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn resume_replays_what_was_missed_or_says_it_cannot() {
    let server = Server::start();
    let mut a = server.client().await;
    a.send(json!({"type":"join","room":"hist","user":"A"}))
        .await;
    let joined = a.recv_type("room_joined").await;
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    for i in 1..=3 {
        a.send(json!({"type":"chat","text":format!("m{i}")})).await;
        a.recv_type("chat").await;
    }
    let mut b = server.client().await;
    b.send(json!({"type":"join","room":"hist","user":"B","since":{"offset":1,"epoch":epoch}}))
        .await;
    let joined = b.recv_type("room_joined").await;
    assert_eq!(joined["recovered"], true);
    assert_eq!(joined["offset"], 3);
    assert_eq!(b.recv_type("chat").await["text"], "m2");
    assert_eq!(b.recv_type("chat").await["text"], "m3");
    let mut c = server.client().await;
    c.send(json!({"type":"join","room":"hist","user":"C","since":{"offset":1,"epoch":"other"}}))
        .await;
    assert_eq!(c.recv_type("room_joined").await["recovered"], false);
    c.expect_silence(QUIET).await;
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits() {
    let mut server = Server::start();
    let mut c = server.joined("bye", json!("A")).await;
    let pid = server.child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 1001);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "did not exit in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_reader_briefly_behind_a_burst_is_not_dropped() {
    let server = Server::with(
        &[],
        &[
            ("HERALD_OUTBOUND_QUEUE_BYTES", "65536"),
            ("HERALD_MESSAGE_RATE", "0"),
        ],
    );
    let mut reader = server.joined("burst", json!("Reader")).await;
    let mut sender = server.joined("burst", json!("Sender")).await;
    reader.recv_type("user_joined").await;
    // 200 chats of 4 KB: far over the 64 KiB queue size, under 16 times it, sent while neither
    // member reads. Both are behind for a moment, then catch up well within the grace period.
    let text = "z".repeat(4000);
    for _ in 0..200 {
        sender
            .ws
            .feed(Message::text(
                json!({"type":"chat","text":text}).to_string(),
            ))
            .await
            .unwrap();
    }
    sender.ws.flush().await.unwrap();
    for client in [&mut reader, &mut sender] {
        for i in 0..200 {
            let frame = client.recv().await;
            assert_eq!(frame["type"], "chat", "frame {i}: {frame}");
            assert_eq!(frame["offset"], i + 1);
        }
    }
}
