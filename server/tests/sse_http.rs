//! The SSE stream and the HTTP endpoints of WIRE.md, over real sockets against the real binary.

mod common;

use std::time::Duration;

use common::{post, Events, Server};
use serde_json::json;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn stream_starts_with_connect_and_has_the_chapter_headers() {
    let server = Server::start();
    let mut events = Events::open(&server.url("/events")).await;
    let h = &events.response_headers;
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["cache-control"], "no-cache");
    assert!(h.contains_key("access-control-allow-origin"));
    let first = events.next().await;
    assert_eq!(first.name, "connect");
    assert_eq!(first.data["type"], "connected");
    assert!(first.data["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn pings_arrive_on_the_configured_interval() {
    // Each ping carries the server's own timestamp (milliseconds), so the gaps are read off the
    // server's clock, not the test's, and how late this test reads the stream does not matter.
    // - Every gap is at least the interval (a timer never fires early), less 10 ms for the
    //   millisecond timestamps and the timer's few milliseconds of tolerance.
    // - The shortest of five gaps is under twice the interval: a loaded machine makes some gaps
    //   longer, but all five more than 250 ms late would take a stall no test here survives,
    //   while a server that ignores the setting (30 s) or pings at a third of the rate fails.
    const INTERVAL_MS: u64 = 250;
    let server = Server::with(&["--sse-ping-interval", "250ms"], &[]);
    let mut events = Events::open(&server.url("/events")).await;
    events.next_named("connect").await;
    let mut stamps = Vec::new();
    while stamps.len() < 6 {
        let ping = events.next().await;
        assert_eq!(
            ping.name, "ping",
            "nothing but pings on an idle stream: {ping:?}"
        );
        let stamp = ping.data["timestamp"].as_str().expect("a timestamp");
        stamps.push(humantime::parse_rfc3339(stamp).expect("an RFC 3339 timestamp"));
    }
    let gaps: Vec<u64> = stamps
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).expect("in order").as_millis() as u64)
        .collect();
    assert!(
        gaps.iter().all(|g| *g + 10 >= INTERVAL_MS),
        "a ping came early: gaps {gaps:?} ms"
    );
    assert!(
        gaps.iter().min().unwrap() < &(2 * INTERVAL_MS),
        "no two pings an interval apart: gaps {gaps:?} ms"
    );
}

#[tokio::test]
async fn notifications_go_to_their_user_or_to_everyone() {
    let server = Server::start();
    let mut u1 = Events::open(&server.url("/events?userId=u1")).await;
    let mut u2 = Events::open(&server.url("/events?userId=u2")).await;
    let mut anon = Events::open(&server.url("/events")).await;
    for e in [&mut u1, &mut u2, &mut anon] {
        e.next_named("connect").await;
    }
    let (status, body) = post(
        &server.url("/notifications"),
        r#"{"userId":"u1","message":"hi","type":"info"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    let n = u1.next_named("notification").await;
    assert_eq!(n.data["id"], body["notificationId"]);
    assert_eq!(n.data["userId"], "u1");
    assert_eq!(n.data["message"], "hi");
    assert_eq!(n.data["type"], "info");
    assert!(n.data["timestamp"].is_string());
    u2.expect_silence(QUIET).await;
    anon.expect_silence(Duration::from_millis(10)).await;

    let (status, _) = post(
        &server.url("/notifications"),
        r#"{"message":"everyone","type":"warning"}"#,
    )
    .await;
    assert_eq!(status, 200);
    for e in [&mut u1, &mut u2, &mut anon] {
        let n = e.next_named("notification").await;
        assert_eq!(n.data["message"], "everyone");
        assert!(n.data.get("userId").is_none());
    }
}

#[tokio::test]
async fn updates_go_to_every_stream() {
    let server = Server::start();
    let mut a = Events::open(&server.url("/events")).await;
    let mut b = Events::open(&server.url("/events?userId=x")).await;
    a.next_named("connect").await;
    b.next_named("connect").await;
    let (status, body) = post(
        &server.url("/updates"),
        r#"{"resource":"order","action":"created","data":{"id":42,"items":[1,2]}}"#,
    )
    .await;
    assert_eq!((status, body), (200, json!({"success":true})));
    for e in [&mut a, &mut b] {
        let u = e.next_named("update").await;
        assert_eq!(u.data["resource"], "order");
        assert_eq!(u.data["action"], "created");
        assert_eq!(u.data["data"], json!({"id":42,"items":[1,2]}));
        assert!(u.data["timestamp"].is_string());
    }
}

#[tokio::test]
async fn bad_bodies_get_400_and_nothing_is_broadcast() {
    let server = Server::start();
    let mut e = Events::open(&server.url("/events")).await;
    e.next_named("connect").await;
    let cases = [
        ("/notifications", "{not json", "invalid_json"),
        ("/notifications", r#"{"userId":"u1"}"#, "invalid_request"),
        ("/notifications", r#"{"message":5}"#, "invalid_request"),
        (
            "/notifications",
            r#"{"message":"x","userID":"typo"}"#,
            "invalid_request",
        ),
        ("/updates", r#"{"resource":"order"}"#, "invalid_request"),
        ("/updates", "[]", "invalid_request"),
        ("/updates", "", "invalid_json"),
    ];
    for (path, body, code) in cases {
        let (status, answer) = post(&server.url(path), body).await;
        assert_eq!(status, 400, "{path} {body}");
        assert_eq!(answer["success"], false);
        assert_eq!(answer["error"]["code"], code, "{path} {body}: {answer}");
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, answer) = post(&server.url("/notifications"), r#"{"message":5}"#).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/message"),
        "{answer}"
    );
    e.expect_silence(QUIET).await;
}

#[tokio::test]
async fn wrong_content_type_and_huge_bodies_are_refused() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let r = client
        .post(server.url("/notifications"))
        .header("content-type", "text/plain")
        .body(r#"{"message":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let body = "x".repeat(100 * 1024);
    let (status, answer) = post(
        &server.url("/updates"),
        &format!(r#"{{"resource":"a","action":"b","data":"{body}"}}"#),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(answer["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn cors_preflight_lets_another_origin_post_json() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let r = client
        .request(reqwest::Method::OPTIONS, server.url("/notifications"))
        .header("origin", "http://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "http://app.example");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase()
        .contains("content-type"));
    let r = client
        .post(server.url("/notifications"))
        .header("origin", "http://app.example")
        .header("content-type", "application/json")
        .body(r#"{"message":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://app.example"
    );
}

#[tokio::test]
async fn health_metrics_demo_page_and_unknown_paths() {
    let server = Server::start();
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "herald_connections",
        "herald_frames_in_total",
        "herald_frames_out_total",
        "herald_slow_consumers_dropped_total",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    let page = reqwest::get(server.url("/")).await.unwrap();
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("<html"));
    let r = reqwest::get(server.url("/nope")).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let r = reqwest::Client::new()
        .delete(server.url("/updates"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn demo_mode_runs_the_stock_feed_and_plain_mode_does_not() {
    let server = Server::with(&["--demo"], &[]);
    let mut e = Events::open(&server.url("/events")).await;
    e.next_named("connect").await;
    let mut saw_stock = false;
    for _ in 0..3 {
        let ev = e.next().await;
        if ev.name == "stock_update" {
            assert!(ev.data["symbol"].is_string() && ev.data["price"].is_number());
            saw_stock = true;
            break;
        }
    }
    assert!(saw_stock);
    let plain = Server::start();
    let mut e = Events::open(&plain.url("/events")).await;
    e.next_named("connect").await;
    e.expect_silence(Duration::from_millis(2500)).await;
}

#[tokio::test]
async fn closed_streams_are_forgotten() {
    let server = Server::start();
    let mut e = Events::open(&server.url("/events?userId=gone")).await;
    e.next_named("connect").await;
    drop(e);
    // The server stops counting the stream once it notices the close (polled: nothing on the
    // wire tells a client when the server has noticed; the deadline is only a hang guard).
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let health: serde_json::Value = reqwest::get(server.url("/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["connections"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stream still counted: {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Notifying the departed user then must not fail.
    let (status, _) = post(
        &server.url("/notifications"),
        r#"{"userId":"gone","message":"x"}"#,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_stream_outlives_the_keep_alive_timeout() {
    // The keep-alive timeout is for idle HTTP connections; an admitted stream is not idle. Ten
    // pings at 200 ms span twice the 1 s timeout: a stream closed by it ends before the tenth.
    let server = Server::with(
        &["--keep-alive-timeout", "1s", "--sse-ping-interval", "200ms"],
        &[],
    );
    let mut events = Events::open(&server.url("/events")).await;
    assert_eq!(events.next().await.name, "connect");
    for _ in 0..10 {
        events.next_named("ping").await;
    }
}
