//! Long polling (issue 17, capability `long-polling`) over real HTTP against the real binary:
//! every feature between a polling client and a WebSocket one, lost answers and retried sends,
//! the one-at-a-time rule, expiry, admission, and refusals of bad envelopes.

mod common;

use common::poller::{answer, Poller};
use common::{metric, Server};
use serde_json::{json, Value};

fn base(server: &Server) -> String {
    format!("http://{}", server.addr)
}

#[tokio::test]
async fn opening_answers_a_welcome_that_announces_long_polling() {
    let server = Server::start();
    let (status, body) = Poller::try_open(&base(&server), &[]).await;
    assert_eq!(status, 200);
    assert!(body["session"].as_str().unwrap().len() >= 24);
    assert_eq!(body["cursor"], 1);
    let welcome = &body["frames"][0];
    assert_eq!(welcome["type"], "welcome");
    let names: Vec<&str> = welcome["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(names.contains(&"long-polling"), "{welcome}");
    assert!(body["holdMs"].as_u64().unwrap() > 0);
    assert!(body["idleMs"].as_u64().unwrap() > body["holdMs"].as_u64().unwrap());
    let mut p = Poller::open(&base(&server)).await;
    assert_ne!(json!(p.client_id), welcome["clientId"]);
    assert!(p.sync().await.is_empty());
}

#[tokio::test]
async fn a_polling_client_chats_with_a_websocket_client() {
    let server = Server::start();
    let mut ws = server.joined("lobby", json!("ann")).await;
    let mut p = Poller::open(&base(&server)).await;
    let joined = p.join("lobby", json!({"id":"bob","name":"Bob"})).await;
    assert_eq!(joined["users"].as_array().unwrap().len(), 2);
    let seen = ws.recv_type("user_joined").await;
    assert_eq!(seen["user"]["id"], "bob");

    p.send(json!({"type":"chat","text":"hello from <b>polling</b><script>x</script>"}))
        .await;
    let from_p = ws.recv_type("chat").await;
    assert_eq!(from_p["text"], "hello from <b>polling</b>");
    assert_eq!(from_p["user"]["id"], "bob");
    let echo = p.recv_type("chat").await;
    assert_eq!(echo["id"], from_p["id"]);

    ws.send(json!({"type":"chat","text":"hi bob"})).await;
    ws.recv_type("chat").await;
    let to_p = p.recv_type("chat").await;
    assert_eq!(to_p["text"], "hi bob");
    assert_eq!(to_p["user"], "ann");
    assert_eq!(
        to_p["offset"].as_u64().unwrap(),
        from_p["offset"].as_u64().unwrap() + 1
    );

    // Typing goes both ways, never echoed.
    p.send(json!({"type":"typing","isTyping":true})).await;
    let typing = ws.recv_type("typing").await;
    assert_eq!(typing["isTyping"], true);
    ws.send(json!({"type":"typing","isTyping":false})).await;
    assert_eq!(p.recv_type("typing").await["isTyping"], false);
    assert!(p.sync().await.is_empty());
}

#[tokio::test]
async fn presence_follows_polling_joins_leaves_and_closes() {
    let server = Server::start();
    let mut ws = server.joined("room", json!("ann")).await;
    let mut p = Poller::open(&base(&server)).await;
    p.join("room", json!("bob")).await;
    let joined = ws.recv_type("user_joined").await;
    assert_eq!(joined["users"], json!(["ann", "bob"]));

    p.send(json!({"type":"leave"})).await;
    assert_eq!(p.recv_type("room_left").await["room"], "room");
    assert_eq!(ws.recv_type("user_left").await["user"], "bob");

    // A WebSocket joining is seen by the poller.
    p.join("room", json!("bob")).await;
    ws.recv_type("user_joined").await;
    let mut cat = server.joined("room", json!("cat")).await;
    let seen = p.recv_type("user_joined").await;
    assert_eq!(seen["user"], "cat");
    ws.recv_type("user_joined").await;

    // Closing the session (DELETE) is a disconnect: the others hear user_left.
    assert_eq!(p.delete().await, 204);
    assert_eq!(ws.recv_type("user_left").await["user"], "bob");
    assert_eq!(cat.recv_type("user_left").await["user"], "bob");
    let (status, body) = p.poll_raw(p.cursor).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_session");
}

#[tokio::test]
async fn private_messages_go_both_ways() {
    let server = Server::start();
    let mut ws = server.joined("dm", json!({"id":"u1","name":"One"})).await;
    let mut p = Poller::open(&base(&server)).await;
    p.join("dm", json!({"id":"u2","name":"Two"})).await;
    ws.recv_type("user_joined").await;

    ws.send(json!({"type":"private_message","target":"u2","text":"psst"}))
        .await;
    let got = p.recv_type("private_message").await;
    assert_eq!(got["text"], "psst");
    assert_eq!(got["from"]["id"], "u1");

    p.send(json!({"type":"private_message","target":"u1","text":"back"}))
        .await;
    let got = ws.recv_type("private_message").await;
    assert_eq!(got["text"], "back");
    assert_eq!(got["from"]["id"], "u2");

    // An offline target is an error frame on the poll.
    p.send(json!({"type":"private_message","target":"nobody","text":"?"}))
        .await;
    assert_eq!(p.recv_type("error").await["code"], "user_not_found");
}

#[tokio::test]
async fn notifications_reach_polling_sessions() {
    let server = Server::start();
    let mut p = Poller::open(&base(&server)).await;
    p.join("n", json!({"id":"u9","name":"Nine"})).await;
    let (status, body) = common::post(
        &server.url("/notifications"),
        r#"{"userId":"u9","message":"for you","type":"info"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let n = p.recv_type("notification").await;
    assert_eq!(n["content"]["id"], body["notificationId"]);
    assert_eq!(n["content"]["message"], "for you");
    let (status, _) = common::post(&server.url("/notifications"), r#"{"message":"all"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(
        p.recv_type("notification").await["content"]["message"],
        "all"
    );
}

#[tokio::test]
async fn a_lost_answer_is_answered_again_and_acknowledged_frames_are_not() {
    let server = Server::start();
    let mut ws = server.joined("loss", json!("ann")).await;
    let mut p = Poller::open(&base(&server)).await;
    p.join("loss", json!("bob")).await;
    ws.recv_type("user_joined").await;
    for i in 0..3 {
        ws.send(json!({"type":"chat","text":format!("m{i}")})).await;
    }
    // Wait (on the WebSocket) until all three are published: the poller's queue holds them.
    for _ in 0..3 {
        ws.recv_type("chat").await;
    }
    let before = p.cursor;
    // The first answer is "lost": the client never takes it and polls again with the same ack.
    let (status, first) = p.poll_raw(before).await;
    assert_eq!(status, 200);
    let (status, again) = p.poll_raw(before).await;
    assert_eq!(status, 200);
    assert_eq!(first, again, "a repeated poll gets the same frames");
    let texts: Vec<&str> = again["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2"]);
    assert_eq!(again["cursor"].as_u64().unwrap(), before + 3);
    // Acknowledged now: the next poll starts after them.
    p.take(&again);
    let pending: Vec<Value> = p.pending.drain(..).collect();
    assert_eq!(pending.len(), 3);
    ws.send(json!({"type":"chat","text":"m3"})).await;
    assert_eq!(p.recv_type("chat").await["text"], "m3");
    // Going back behind an acknowledged frame is refused.
    let (status, body) = p.poll_raw(before).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "invalid_request");
    // So is acknowledging a frame never answered.
    let (status, body) = p.poll_raw(p.cursor + 5).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn a_retried_send_is_applied_once_and_answered_the_same() {
    let server = Server::start();
    let mut ws = server.joined("dup", json!("ann")).await;
    let mut p = Poller::open(&base(&server)).await;
    p.join("dup", json!("bob")).await;
    ws.recv_type("user_joined").await;
    p.seq += 1;
    let frames = vec![json!({"type":"chat","text":"once"})];
    let first = p.send_seq(p.seq, frames.clone()).await;
    let retry = p.send_seq(p.seq, frames).await;
    assert_eq!(first.0, 200);
    assert_eq!(first, retry);
    assert_eq!(retry.1, json!({"seq": p.seq, "accepted": 1}));
    // A gap is refused, nothing applied.
    let (status, body) = p
        .send_seq(p.seq + 2, vec![json!({"type":"chat","text":"gap"})])
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "invalid_request");
    p.send(json!({"type":"chat","text":"twice"})).await;
    assert_eq!(ws.recv_type("chat").await["text"], "once");
    assert_eq!(ws.recv_type("chat").await["text"], "twice");
    let texts: Vec<Value> = p
        .sync()
        .await
        .into_iter()
        .map(|f| f["text"].clone())
        .collect();
    assert_eq!(texts, [json!("once"), json!("twice")]);
}

#[tokio::test]
async fn a_send_carries_several_frames_in_order() {
    let server = Server::start();
    let mut p = Poller::open(&base(&server)).await;
    let (status, _) = p
        .send_frames(vec![
            json!({"type":"join","room":"batch","user":"bob"}),
            json!({"type":"chat","text":"a"}),
            json!({"type":"chat","text":"b"}),
            json!({"type":"ping"}),
        ])
        .await;
    assert_eq!(status, 200);
    p.recv_type("room_joined").await;
    assert_eq!(p.recv_type("chat").await["text"], "a");
    assert_eq!(p.recv_type("chat").await["text"], "b");
    p.recv_type("pong").await;
}

#[tokio::test]
async fn overlapping_polls_and_sends_are_refused() {
    let server = Server::start();
    let mut p = Poller::open(&base(&server)).await;
    // Two polls with nothing to answer: whichever arrives second finds the first held.
    let (a, b) = tokio::join!(
        async {
            let r = p.poll_raw(p.cursor).await;
            if r.0 == 409 {
                // The other one is held: wake it with a frame.
                let _ = p.send_seq(1, vec![json!({"type":"ping"})]).await;
            }
            r
        },
        async {
            let r = p.poll_raw(p.cursor).await;
            if r.0 == 409 {
                let _ = p.send_seq(1, vec![json!({"type":"ping"})]).await;
            }
            r
        },
    );
    let (refused, held) = if a.0 == 409 { (a, b) } else { (b, a) };
    assert_eq!(refused.0, 409, "{refused:?} {held:?}");
    assert_eq!(refused.1["error"]["code"], "overlapping_request");
    assert_eq!(held.0, 200);
    assert_eq!(held.1["frames"][0]["type"], "pong");
    p.seq = 1;
    p.take(&held.1);
    p.recv_type("pong").await;

    // A send whose body is still arriving holds the send slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    // Its own connection: a pooled one the server has just closed would fail a body that cannot
    // be sent again, and the slot would never be held.
    let slow = reqwest::Client::new()
        .post(p.url())
        .header("content-type", "application/json")
        .body(body)
        .send();
    let slow = tokio::spawn(slow);
    tx.send(Ok(br#"{"seq":2,"frames":["#.to_vec()))
        .await
        .unwrap();
    // Until the slow one holds the slot, a quick send with a bad body is refused for its body
    // (and changes nothing); once it does, the quick one is refused for overlapping.
    let refused = tokio::time::timeout(common::WAIT * 4, async {
        loop {
            assert!(
                !slow.is_finished(),
                "the slow send ended before its body was complete"
            );
            let (status, body) = p.post_body("not json".into()).await;
            if status == 409 {
                return Some(body);
            }
            assert_eq!(body["error"]["code"], "invalid_json", "{body}");
        }
    })
    .await
    .expect("the slow send never held the slot");
    let refused = refused.expect("a refusal");
    assert_eq!(refused["error"]["code"], "overlapping_request");
    tx.send(Ok(br#"{"type":"chat","text":"slow"}]}"#.to_vec()))
        .await
        .unwrap();
    drop(tx);
    let done = answer(slow.await.unwrap().unwrap()).await;
    assert_eq!(done.0, 200, "{:?}", done.1);
    assert_eq!(done.1["seq"], 2);
    p.seq = 2;
    assert_eq!(p.recv_type("error").await["code"], "not_in_room");
}

/// A stream over an mpsc receiver (for a request body that arrives in parts).
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

#[tokio::test]
async fn an_idle_session_expires_and_its_user_leaves() {
    let server = Server::with(&["--poll-hold", "200ms", "--poll-idle-timeout", "1s"], &[]);
    let mut ws = server.joined("idle", json!("ann")).await;
    let mut p = Poller::open(&base(&server)).await;
    p.join("idle", json!("bob")).await;
    ws.recv_type("user_joined").await;
    assert_eq!(
        metric(&server, "herald_connections{transport=\"polling\"}").await,
        1.0
    );
    // A held poll is not idleness: polls answered empty keep it alive past the timeout.
    for _ in 0..8 {
        let body = p.poll().await;
        assert!(body["frames"].as_array().unwrap().is_empty(), "{body}");
    }
    // The client stops polling: the session ends and the others hear it.
    let left = ws.recv_type("user_left").await;
    assert_eq!(left["user"], "bob");
    assert_eq!(left["room"], "idle");
    assert_eq!(
        metric(&server, "herald_connections{transport=\"polling\"}").await,
        0.0
    );
    // The next poll hears why (unless the entry, kept one hold time for that, is gone already);
    // after that the id is unknown.
    let (status, body) = p.poll_raw(p.cursor).await;
    if status == 200 {
        assert_eq!(body["closed"], json!({"code":1001,"reason":"idle timeout"}));
    } else {
        assert_eq!(status, 404, "{body}");
    }
    let (status, body) = p.poll_raw(p.cursor).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_session");
}

#[tokio::test]
async fn bad_envelopes_are_refused_with_clear_errors() {
    let server = Server::with(&["--max-frame-bytes", "2048"], &[]);
    let base = base(&server);
    let mut p = Poller::open(&base).await;
    let http = reqwest::Client::new();
    let expect = |(status, body): (u16, Value), want_status: u16, code: &str| {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 5);
    };
    expect(p.post_body("not json".into()).await, 400, "invalid_json");
    expect(p.post_body("[1,2]".into()).await, 400, "invalid_request");
    expect(
        p.post_body(r#"{"seq":1}"#.into()).await,
        400,
        "invalid_request",
    );
    expect(
        p.post_body(r#"{"seq":1,"frames":[],"more":1}"#.into())
            .await,
        400,
        "invalid_request",
    );
    expect(
        p.post_body(r#"{"seq":0,"frames":[{"type":"ping"}]}"#.into())
            .await,
        400,
        "invalid_request",
    );
    let big = json!({"seq":1,"frames":[{"type":"chat","text":"x".repeat(3000)}]}).to_string();
    expect(p.post_body(big).await, 413, "payload_too_large");
    let huge = format!(r#"{{"seq":1,"frames":["{}"]}}"#, "x".repeat(20_000));
    expect(p.post_body(huge).await, 413, "payload_too_large");
    let wrong_type = http
        .post(p.url())
        .header("content-type", "text/plain")
        .body(r#"{"seq":1,"frames":[{"type":"ping"}]}"#)
        .send()
        .await
        .unwrap();
    expect(answer(wrong_type).await, 415, "unsupported_media_type");
    // Polls: the cursor is required and must be a number.
    let no_ack = http.get(p.url()).send().await.unwrap();
    expect(answer(no_ack).await, 400, "invalid_request");
    let bad_ack = http
        .get(format!("{}?ack=-1", p.url()))
        .send()
        .await
        .unwrap();
    expect(answer(bad_ack).await, 400, "invalid_request");
    // Unknown sessions, paths and methods.
    let unknown = http
        .get(format!("{base}/poll/nope?ack=0"))
        .send()
        .await
        .unwrap();
    expect(answer(unknown).await, 404, "unknown_session");
    let deeper = http
        .get(format!("{}/x?ack=0", p.url()))
        .send()
        .await
        .unwrap();
    expect(answer(deeper).await, 404, "not_found");
    let put = http.put(p.url()).send().await.unwrap();
    expect(answer(put).await, 405, "method_not_allowed");
    let get_open = http.get(format!("{base}/poll")).send().await.unwrap();
    expect(answer(get_open).await, 405, "method_not_allowed");
    // None of that applied anything; a bad frame inside a good envelope is an error frame, as on
    // a WebSocket, and the session goes on.
    p.send(json!("just a string")).await;
    let e = p.recv_type("error").await;
    assert_eq!(e["code"], "invalid_format");
    assert_eq!(e["message"], "Invalid message format");
    p.send(json!({"type":"nope"})).await;
    assert_eq!(p.recv_type("error").await["code"], "unknown_type");
    p.send(json!({"type":"chat","text":"x"})).await;
    assert_eq!(p.recv_type("error").await["message"], "Not in a room");
    assert!(p.sync().await.is_empty());
    assert_eq!(p.seq, 4);
}

#[tokio::test]
async fn admission_is_the_websockets() {
    // Origins.
    let server = Server::with(&["--allowed-origins", "https://app.test"], &[]);
    let (status, body) = Poller::try_open(&base(&server), &[("origin", "https://evil.test")]).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    let mut p = Poller::open_with(&base(&server), &[("origin", "https://app.test")]).await;
    let foreign = p
        .http
        .get(format!("{}?ack={}", p.url(), p.cursor))
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(answer(foreign).await.0, 403);
    assert!(p.sync().await.is_empty());

    // The message bucket: a flood gets rate_limited errors, then the session is closed.
    let server = Server::with(&["--message-rate", "1", "--message-burst", "2"], &[]);
    let mut p = Poller::open(&base(&server)).await;
    let frames: Vec<Value> = (0..20).map(|_| json!({"type":"ping"})).collect();
    let (status, _) = p.send_frames(frames).await;
    assert_eq!(status, 200);
    let mut limited = 0;
    loop {
        let body = p.poll().await;
        if body.get("closed").is_some() {
            assert_eq!(body["closed"]["code"], 1008, "{body}");
            break;
        }
    }
    for frame in p.pending.drain(..) {
        if frame["code"] == "rate_limited" {
            limited += 1;
        }
    }
    assert!(limited >= 1);
    let (status, body) = p.send_frames(vec![json!({"type":"ping"})]).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn tokens_are_required_and_name_the_user() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    const SECRET: &str = "test-secret-that-is-long-enough-for-hs256";
    let server = Server::with(&[], &[("HERALD_JWT_SECRET", SECRET)]);
    let (status, body) = Poller::try_open(&base(&server), &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub":"carol","exp":exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let bearer = format!("Bearer {token}");
    let mut p = Poller::open_with(&base(&server), &[("authorization", &bearer)]).await;
    let joined = p.join("t", json!("mallory")).await;
    assert_eq!(joined["users"], json!(["carol"]));
}

#[tokio::test]
async fn polling_can_be_turned_off() {
    let server = Server::with(&["--no-long-polling"], &[]);
    let (status, body) = Poller::try_open(&base(&server), &[]).await;
    assert_eq!(status, 404, "{body}");
    let mut ws = server.client().await;
    ws.send(json!({"type":"ping"})).await;
    ws.recv_type("pong").await;
}

#[tokio::test]
async fn a_session_that_stops_polling_in_a_busy_room_is_closed_as_a_slow_consumer() {
    let server = Server::with(
        &[
            "--max-frame-bytes",
            "2048",
            "--outbound-queue-bytes",
            "2048",
            "--slow-consumer-grace",
            "1h",
        ],
        &[("HERALD_MESSAGE_RATE", "0")],
    );
    let mut ws = server.joined("busy", json!("ann")).await;
    let mut p = Poller::open(&base(&server)).await;
    p.join("busy", json!("bob")).await;
    ws.recv_type("user_joined").await;
    // The poller stops polling; past 16 times its queue limit it is dropped at once.
    let text = "x".repeat(1500);
    let mut left = None;
    for _ in 0..40 {
        ws.send(json!({"type":"chat","text":text})).await;
        let frame = ws.recv().await;
        match frame["type"].as_str() {
            Some("chat") => {}
            Some("user_left") => left = Some(frame),
            _ => panic!("unexpected {frame}"),
        }
        if left.is_some() {
            break;
        }
    }
    let left = left.expect("the poller was never dropped");
    assert_eq!(left["user"], "bob");
    let (status, body) = p.poll_raw(p.cursor).await;
    if status == 200 {
        assert_eq!(
            body["closed"],
            json!({"code":1008,"reason":"slow consumer"})
        );
    } else {
        assert_eq!(body["error"]["code"], "unknown_session", "{body}");
    }
    if status == 200 {
        assert_eq!(
            metric(&server, "herald_slow_consumers_dropped_total").await,
            1.0
        );
    }
}

#[tokio::test]
async fn shutdown_answers_a_held_poll_with_its_close() {
    let mut server = Server::start();
    let mut p = Poller::open(&base(&server)).await;
    p.join("bye", json!("bob")).await;
    let held = {
        let http = p.http.clone();
        let url = format!("{}?ack={}", p.url(), p.cursor);
        tokio::spawn(async move { answer(http.get(url).send().await.unwrap()).await })
    };
    // The poll is held once the server has it; a ping through the send slot proves the session
    // is being served, and it is answered on the held poll.
    p.send(json!({"type":"ping"})).await;
    let (status, first) = held.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(first["frames"][0]["type"], "pong");
    p.take(&first);
    p.pending.clear();
    let held = {
        let http = p.http.clone();
        let url = format!("{}?ack={}", p.url(), p.cursor);
        tokio::spawn(async move { answer(http.get(url).send().await.unwrap()).await })
    };
    // A probe with an impossible ack is refused for overlapping once the poll is held, and for
    // its ack (holding nothing) before.
    tokio::time::timeout(common::WAIT, async {
        loop {
            let (status, body) = p.poll_raw(p.cursor + 1000).await;
            if status == 409 {
                assert_eq!(body["error"]["code"], "overlapping_request");
                break;
            }
            assert_eq!(status, 400, "{body}");
        }
    })
    .await
    .unwrap();
    let pid = server.child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let (status, body) = held.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["closed"]["code"], 1001, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "did not exit in time");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn with_a_linger_every_frame_still_arrives_once_in_order() {
    let server = Server::with(&["--poll-linger", "50ms"], &[]);
    let mut ws = server.joined("linger", json!("ann")).await;
    let mut p = Poller::open(&base(&server)).await;
    p.join("linger", json!("bob")).await;
    ws.recv_type("user_joined").await;
    for i in 0..20 {
        ws.send(json!({"type":"chat","text":format!("m{i}")})).await;
    }
    // The sender's own copies: every chat is in the room's stream (and so queued for the
    // poller) before the poller's ping goes out.
    for i in 0..20 {
        assert_eq!(ws.recv_type("chat").await["text"], format!("m{i}"));
    }
    let texts: Vec<Value> = p
        .sync()
        .await
        .into_iter()
        .map(|f| f["text"].clone())
        .collect();
    let want: Vec<Value> = (0..20).map(|i| json!(format!("m{i}"))).collect();
    assert_eq!(texts, want);
}
