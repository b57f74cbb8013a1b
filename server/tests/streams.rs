//! Capability `streams` over real sockets: streams from the configuration file and from the
//! API, snapshots, live points and window results with offsets, resume, SSE subscriptions,
//! refusals, and conflation: a subscriber that never reads keeps a flat queue while 10,000
//! points/s flow, and a normal subscriber sees every point.

mod common;

use std::time::Duration;

use common::{post, Client, Events, Server};
use serde_json::{json, Value};

/// A server with `cpu` declared in a configuration file (windows of 100 ms, no grace).
fn server_with_config() -> (Server, tempfile_path::TempPath) {
    let path = tempfile_path::TempPath::new("streams.toml");
    std::fs::write(
        &path.0,
        "[[streams]]\nid = \"cpu\"\nmaxDataPoints = 20\nwindowMs = 100\naggregates = [\"count\", \"avg\", \"max\"]\n",
    )
    .unwrap();
    let server = Server::with(&["--config", path.0.to_str().unwrap()], &[]);
    (server, path)
}

/// A temporary file removed when dropped.
mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);

    impl TempPath {
        pub fn new(name: &str) -> TempPath {
            let unique = format!(
                "herald-{}-{}-{name}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            );
            TempPath(std::env::temp_dir().join(unique))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

async fn points(server: &Server, stream: &str, body: Value) -> (u16, Value) {
    post(
        &server.url(&format!("/streams/{stream}/points")),
        &body.to_string(),
    )
    .await
}

/// Sends an app-level ping and reads frames up to its pong: everything queued before it.
async fn until_pong(client: &mut Client) -> Vec<Value> {
    client.send(json!({"type":"ping"})).await;
    let mut out = Vec::new();
    loop {
        let frame = client.recv().await;
        if frame["type"] == "pong" {
            return out;
        }
        out.push(frame);
    }
}

#[tokio::test]
async fn websocket_subscribers_get_a_snapshot_live_points_windows_and_resume() {
    let (server, _file) = server_with_config();
    // Twenty-five points at 0, 10, ..., 240 ms: twenty are kept.
    let batch: Vec<Value> = (0..25)
        .map(|i| json!({"timestamp": i * 10, "value": i}))
        .collect();
    let (status, answer) = points(&server, "cpu", json!({ "points": batch })).await;
    assert_eq!((status, &answer["accepted"]), (200, &json!(25)), "{answer}");

    let mut c = server.client().await;
    c.send(json!({"type":"stream_subscribe","stream":"cpu","maxPoints":5}))
        .await;
    let snap = c.recv_type("stream_subscribed").await;
    let pts = snap["points"].as_array().unwrap();
    assert_eq!(pts.len(), 5, "{snap}");
    assert_eq!(pts[0]["timestamp"], 50, "the oldest kept point: {snap}");
    assert_eq!(pts[4]["timestamp"], 240, "the newest point: {snap}");
    // Windows [0,100) and [100,200) closed when 240 arrived (grace 0).
    let windows = snap["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2, "{snap}");
    assert_eq!(windows[0]["count"], 10);
    assert_eq!(windows[0]["fields"]["value"]["avg"], 4.5);
    assert_eq!(windows[0]["fields"]["value"]["max"], 9.0);
    assert!(windows[0]["fields"]["value"].get("sum").is_none());
    let epoch = snap["epoch"].as_str().unwrap().to_owned();
    let offset = snap["offset"].as_u64().unwrap();
    assert_eq!(offset, 27, "25 points and 2 windows");

    // Live: one point, then one that closes [200,300).
    points(&server, "cpu", json!({"timestamp": 250, "value": 100})).await;
    points(&server, "cpu", json!({"timestamp": 300, "value": 1})).await;
    let got = until_pong(&mut c).await;
    let kinds: Vec<(&str, u64)> = got
        .iter()
        .map(|f| (f["type"].as_str().unwrap(), f["offset"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("stream_point", 28),
            ("stream_point", 29),
            ("stream_window", 30)
        ]
    );
    assert_eq!(got[2]["window"]["start"], 200);
    assert_eq!(got[2]["window"]["count"], 6);
    assert_eq!(got[2]["window"]["fields"]["value"]["max"], 100.0);

    // A late point (window [0,100) is long closed) is counted, not dropped silently.
    points(&server, "cpu", json!({"timestamp": 5, "value": 7})).await;
    points(&server, "cpu", json!({"timestamp": 400, "value": 1})).await;
    let got = until_pong(&mut c).await;
    let window = got.iter().find(|f| f["type"] == "stream_window").unwrap();
    assert_eq!(window["window"]["late"], 1, "{window}");
    let last = got.last().unwrap()["offset"].as_u64().unwrap();

    // Resume on a new connection after missing two points: both follow, nothing else.
    drop(c);
    points(&server, "cpu", json!({"timestamp": 410, "value": 2})).await;
    points(&server, "cpu", json!({"timestamp": 420, "value": 3})).await;
    let mut c = server.client().await;
    c.send(json!({"type":"stream_subscribe","stream":"cpu",
                  "since":{"offset": last, "epoch": epoch}}))
        .await;
    let snap = c.recv_type("stream_subscribed").await;
    assert_eq!(snap["recovered"], true);
    assert!(snap["points"].as_array().unwrap().is_empty());
    let got = until_pong(&mut c).await;
    let offsets: Vec<u64> = got.iter().map(|f| f["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, [last + 1, last + 2]);
    assert_eq!(got[1]["value"], 3.0);

    // From a position the stream never gave out: all or nothing, so a snapshot instead.
    c.send(json!({"type":"stream_subscribe","stream":"cpu",
                  "since":{"offset": 999, "epoch": epoch}}))
        .await;
    let snap = c.recv_type("stream_subscribed").await;
    assert_eq!(snap["recovered"], false);
    assert_eq!(snap["points"].as_array().unwrap().len(), 20);
    assert!(until_pong(&mut c).await.is_empty());

    // Unsubscribed: nothing more.
    c.send(json!({"type":"stream_unsubscribe","stream":"cpu"}))
        .await;
    c.recv_type("stream_unsubscribed").await;
    points(&server, "cpu", json!({"timestamp": 430, "value": 4})).await;
    assert!(until_pong(&mut c).await.is_empty());
}

#[tokio::test]
async fn streams_created_through_the_api_reach_sse_subscribers() {
    let server = Server::start();
    let spec = json!({"id":"perf","maxDataPoints":50,"fields":["rt","err"]});
    let (status, answer) = post(&server.url("/streams"), &spec.to_string()).await;
    assert_eq!(
        (status, &answer["created"]),
        (201, &json!(true)),
        "{answer}"
    );
    let (status, answer) = post(&server.url("/streams"), &spec.to_string()).await;
    assert_eq!(
        (status, &answer["created"]),
        (200, &json!(false)),
        "{answer}"
    );
    let other = json!({"id":"perf","maxDataPoints":10});
    let (status, answer) = post(&server.url("/streams"), &other.to_string()).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (409, &json!("stream_conflict"))
    );

    points(&server, "perf", json!({"value": {"rt": 120.5, "err": 0.1}})).await;
    let mut events = Events::open(&server.url("/events?stream=perf&maxPoints=10")).await;
    events.next_named("connect").await;
    let snap = events.next_named("stream_subscribed").await;
    assert_eq!(snap.data["type"], "stream_subscribed");
    assert_eq!(snap.data["fields"], json!(["rt", "err"]));
    assert_eq!(snap.data["points"][0]["value"]["rt"], 120.5);
    points(
        &server,
        "perf",
        json!({"points":[{"value":{"rt":99.0}},{"value":{"err":2.0}}]}),
    )
    .await;
    let p1 = events.next_named("stream_point").await;
    let p2 = events.next_named("stream_point").await;
    assert_eq!(
        (p1.data["offset"].as_u64(), p2.data["offset"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(p2.data["value"], json!({"err": 2.0}));
    // The server stamps arrival time on points without one.
    assert!(p1.data["timestamp"].as_i64().unwrap() > 1_600_000_000_000);

    // SSE resume: since=STREAM:EPOCH:OFFSET.
    let epoch = snap.data["epoch"].as_str().unwrap();
    let mut resumed =
        Events::open(&server.url(&format!("/events?stream=perf&since=perf:{epoch}:1"))).await;
    resumed.next_named("connect").await;
    let answer = resumed.next_named("stream_subscribed").await;
    assert_eq!(answer.data["recovered"], true);
    assert_eq!(resumed.next_named("stream_point").await.data["offset"], 2);
    assert_eq!(resumed.next_named("stream_point").await.data["offset"], 3);

    let info: Value = reqwest::get(server.url("/streams/perf"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (info["offset"].as_u64(), info["subscribers"].as_u64()),
        (Some(3), Some(2))
    );
    let list: Value = reqwest::get(server.url("/streams"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["id"], "perf");
}

#[tokio::test]
async fn bad_stream_requests_get_clear_errors_and_disturb_nobody() {
    let server = Server::start();
    post(
        &server.url("/streams"),
        &json!({"id":"n","maxDataPoints":5}).to_string(),
    )
    .await;
    let mut watcher = server.client().await;
    watcher
        .send(json!({"type":"stream_subscribe","stream":"n"}))
        .await;
    watcher.recv_type("stream_subscribed").await;

    let cases = [
        (
            "/streams/none/points",
            json!({"value": 1}),
            404,
            "stream_not_found",
        ),
        (
            "/streams/n/points",
            json!({"value": {"a": 1}}),
            400,
            "invalid_request",
        ),
        (
            "/streams/n/points",
            json!({"value": "x"}),
            400,
            "invalid_request",
        ),
        (
            "/streams/n/points",
            json!({"points": []}),
            400,
            "invalid_request",
        ),
        (
            "/streams/n/points",
            json!({"value": 1, "extra": true}),
            400,
            "invalid_request",
        ),
        (
            "/streams/n/points",
            json!({"timestamp": -5, "value": 1}),
            400,
            "invalid_request",
        ),
        ("/streams", json!({"id": "bad id!"}), 400, "invalid_request"),
        (
            "/streams",
            json!({"id": "g", "graceMs": 10}),
            400,
            "invalid_request",
        ),
    ];
    for (path, body, status, code) in cases {
        let (got, answer) = post(&server.url(path), &body.to_string()).await;
        assert_eq!(
            (got, &answer["error"]["code"]),
            (status, &json!(code)),
            "{path} {body}: {answer}"
        );
    }
    let (got, answer) = post(&server.url("/streams/n/points"), "{not json").await;
    assert_eq!(
        (got, &answer["error"]["code"]),
        (400, &json!("invalid_json"))
    );
    let response = reqwest::get(server.url("/events?stream=none"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = reqwest::get(server.url("/events?stream=n&maxRate=0"))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let mut c = server.client().await;
    for (frame, code) in [
        (
            json!({"type":"stream_subscribe","stream":"none"}),
            "stream_not_found",
        ),
        (
            json!({"type":"stream_subscribe","stream":"n","maxRate":"fast"}),
            "invalid_message",
        ),
        (
            json!({"type":"stream_subscribe","stream":"n","maxPoints":1e12}),
            "invalid_message",
        ),
        (
            json!({"type":"stream_unsubscribe","stream":"n"}),
            "subscription_refused",
        ),
    ] {
        c.send(frame.clone()).await;
        let error = c.recv_type("error").await;
        assert_eq!(error["code"], code, "{frame}: {error}");
    }
    // The watcher saw none of it, and still gets points.
    points(&server, "n", json!({"value": 1})).await;
    assert_eq!(watcher.recv_type("stream_point").await["offset"], 1);
}

/// 10,000 points/s for two seconds, in batches of 100 every 10 ms (load generation: the
/// pacing is not what the test checks).
async fn flood(server: &Server, stream: &str, seconds: u64) -> u64 {
    let client = reqwest::Client::new();
    let url = server.url(&format!("/streams/{stream}/points"));
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0;
    for _ in 0..seconds * 100 {
        tick.tick().await;
        let batch: Vec<Value> = (0..100)
            .map(|i| json!({"value": (sent + i) as f64}))
            .collect();
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(json!({ "points": batch }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        sent += 100;
    }
    sent
}

#[tokio::test]
async fn a_subscriber_that_never_reads_keeps_a_flat_queue_and_a_normal_one_sees_every_point() {
    let server = Server::start();
    post(
        &server.url("/streams"),
        &json!({"id":"flood","maxDataPoints":1000}).to_string(),
    )
    .await;
    // The normal subscriber reads everything, in a task of its own.
    let mut normal = server.client().await;
    normal
        .send(json!({"type":"stream_subscribe","stream":"flood"}))
        .await;
    normal.recv_type("stream_subscribed").await;
    // The slow one asks for 20 frames/s, then never reads while the flood lasts.
    let mut slow = server.client().await;
    slow.send(json!({"type":"stream_subscribe","stream":"flood","maxRate":20}))
        .await;
    slow.recv_type("stream_subscribed").await;

    let total: u64 = 20_000;
    let reader = tokio::spawn(async move {
        let mut expected = 1;
        while expected <= total {
            let frame = normal.recv().await;
            assert_eq!(frame["type"], "stream_point", "{frame}");
            assert_eq!(frame["offset"], expected, "every point, in order");
            assert!(frame.get("conflated").is_none());
            expected += 1;
        }
        expected - 1
    });
    // Sample the server's view of the subscribers' queues while the flood runs.
    let sampler_url = server.url("/streams/flood");
    let stop = tokio_util_like::Stop::default();
    let stop_flag = stop.clone();
    let sampler = tokio::spawn(async move {
        let mut largest = 0;
        let mut samples = 0;
        while !stop_flag.is_set() {
            let info: Value = reqwest::get(&sampler_url)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            largest = largest.max(info["maxQueuedBytesRateLimited"].as_u64().unwrap());
            samples += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (largest, samples)
    });
    assert_eq!(flood(&server, "flood", 2).await, total);
    stop.set();
    let (largest, samples) = sampler.await.unwrap();
    assert!(samples > 5, "sampled {samples} times");
    assert!(
        largest <= 64 * 1024,
        "the rate-limited subscriber's queue reached {largest} bytes"
    );
    assert_eq!(reader.await.unwrap(), total);

    // Now the slow one reads: a few frames, the latest point last, and every point accounted
    // for (each frame stands for `conflated` points, or one).
    let mut frames = 0;
    let mut accounted = 0;
    loop {
        let frame = slow.recv().await;
        assert_eq!(frame["type"], "stream_point", "{frame}");
        frames += 1;
        accounted += frame["conflated"].as_u64().unwrap_or(1);
        if frame["offset"] == total {
            assert_eq!(frame["value"], (total - 1) as f64);
            break;
        }
    }
    assert_eq!(accounted, total);
    assert!(frames < 200, "{frames} frames for a subscriber at 20/s");
    assert!(frames >= 2, "{frames} frames");
}

/// A flag shared between tasks.
mod tokio_util_like {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[derive(Clone, Default)]
    pub struct Stop(Arc<AtomicBool>);

    impl Stop {
        pub fn set(&self) {
            self.0.store(true, Ordering::Release);
        }

        pub fn is_set(&self) -> bool {
            self.0.load(Ordering::Acquire)
        }
    }
}

/// Reads frames up to the next `stream_window`, returning `(type, offset, value or count)`.
async fn until_window(client: &mut Client) -> Vec<(String, u64, Value)> {
    let mut out = Vec::new();
    loop {
        let f = client.recv().await;
        let kind = f["type"].as_str().unwrap().to_owned();
        let what = match kind.as_str() {
            "stream_point" => f["value"].clone(),
            "stream_window" => f["window"]["count"].clone(),
            _ => panic!("unexpected {f}"),
        };
        out.push((kind.clone(), f["offset"].as_u64().unwrap(), what));
        if kind == "stream_window" {
            return out;
        }
    }
}

#[tokio::test]
async fn two_nodes_on_redis_deliver_the_same_points_and_one_window_result_in_one_order() {
    use common::cluster::{node_on, prefix, redis_cli, wait_broker, REDIS};
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        common::skip(
            "two_nodes_on_redis_deliver_the_same_points_and_one_window_result_in_one_order",
            "no Redis on 127.0.0.1:6379",
        );
        return;
    }
    let file = tempfile_path::TempPath::new("cluster-streams.toml");
    std::fs::write(
        &file.0,
        "[[streams]]\nid = \"c\"\nwindowMs = 100\naggregates = [\"count\", \"sum\"]\n",
    )
    .unwrap();
    let config = file.0.to_str().unwrap();
    let p = prefix();
    let a = node_on(REDIS, &p, &["--config", config]);
    let b = node_on(REDIS, &p, &["--config", config]);
    wait_broker(&a, "up", common::WAIT).await;
    wait_broker(&b, "up", common::WAIT).await;
    let mut on_a = a.client().await;
    let mut on_b = b.client().await;
    for c in [&mut on_a, &mut on_b] {
        c.send(json!({"type":"stream_subscribe","stream":"c"}))
            .await;
        assert_eq!(c.recv_type("stream_subscribed").await["offset"], 0);
    }
    // Points into either node, and one through the backend topic; each is seen before the next
    // goes, so the expected order is known.
    let sends: [(&Server, i64, f64); 3] = [(&a, 10, 1.0), (&b, 20, 2.0), (&a, 30, 3.0)];
    for (node, t, v) in sends {
        points(node, "c", json!({"timestamp": t, "value": v})).await;
        for c in [&mut on_a, &mut on_b] {
            let f = c.recv_type("stream_point").await;
            assert_eq!(f["value"], json!(v));
            assert_eq!(f["timestamp"], t);
        }
    }
    let channel = format!("{p}.stream.points");
    let payload = json!({"stream":"c","points":[{"timestamp":40,"value":4.0}]}).to_string();
    redis_cli(6379, &["PUBLISH", &channel, &payload]);
    for c in [&mut on_a, &mut on_b] {
        assert_eq!(c.recv_type("stream_point").await["value"], json!(4.0));
    }
    // A point at 150 closes [0, 100): one result, computed once, delivered on both nodes.
    points(&b, "c", json!({"timestamp": 150, "value": 5.0})).await;
    let got_a = until_window(&mut on_a).await;
    let got_b = until_window(&mut on_b).await;
    assert_eq!(got_a, got_b);
    assert_eq!(
        got_a,
        [
            ("stream_point".to_owned(), 5, json!(5.0)),
            ("stream_window".to_owned(), 6, json!(4)),
        ]
    );
    // Nothing doubled: the next message on both is the next point.
    points(&a, "c", json!({"timestamp": 160, "value": 6.0})).await;
    for c in [&mut on_a, &mut on_b] {
        let f = c.recv().await;
        assert_eq!(
            (f["type"].as_str(), f["offset"].as_u64()),
            (Some("stream_point"), Some(7)),
            "{f}"
        );
    }

    // A stream declared through the API on one node is found on the other at once: the `201`
    // means the cluster ordered the declaration, and a node that does not know a stream asked
    // for syncs with that order before it says `stream_not_found` (a balancer may send the next
    // request anywhere). Several times, as the declaration races the next request.
    for i in 0..10 {
        let id = format!("made-on-b-{i}");
        let (status, _) = post(&b.url("/streams"), &json!({"id": id}).to_string()).await;
        assert_eq!(status, 201);
        on_a.send(json!({"type":"stream_subscribe","stream":id}))
            .await;
        let answer = on_a.recv().await;
        assert_eq!(answer["type"], "stream_subscribed", "{answer}");
        let (status, body) = post(
            &b.url("/streams"),
            &json!({"id": format!("sse-{id}")}).to_string(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let sse = reqwest::get(a.url(&format!("/events?stream=sse-{id}")))
            .await
            .unwrap();
        assert_eq!(sse.status(), 200);
    }
    let (status, _) = post(&b.url("/streams"), r#"{"id":"made-on-b"}"#).await;
    assert_eq!(status, 201);
    let (status, body) = post(&a.url("/streams/made-on-b/points"), r#"{"value": 0.5}"#).await;
    assert_eq!(status, 200, "{body}");
    on_a.send(json!({"type":"stream_subscribe","stream":"made-on-b"}))
        .await;
    on_a.recv_type("stream_subscribed").await;
    points(&b, "made-on-b", json!({"value": 1.5})).await;
    assert_eq!(on_a.recv_type("stream_point").await["value"], 1.5);
}

/// Forwards TCP to `to`, holding back every chunk that comes from it for `delay` (a node behind
/// it hears its Redis late).
async fn slow_proxy(to: u16, delay: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                    return;
                };
                let (mut in_read, mut in_write) = inbound.into_split();
                let (mut out_read, mut out_write) = outbound.into_split();
                let up = async {
                    let _ = tokio::io::copy(&mut in_read, &mut out_write).await;
                };
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = out_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        if in_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(up, down);
            });
        }
    });
    port
}

/// A stream declared on one node (answered `201` once the cluster ordered it) is found at once
/// by a node that hears the cluster late: before it says `stream_not_found` it syncs with the
/// cluster's order (as a balancer may send the next request anywhere).
#[tokio::test]
async fn a_stream_declared_on_one_node_is_found_at_once_on_a_node_that_hears_late() {
    use common::cluster::{node_on, prefix, wait_broker, REDIS};
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        common::skip(
            "a_stream_declared_on_one_node_is_found_at_once_on_a_node_that_hears_late",
            "no Redis on 127.0.0.1:6379",
        );
        return;
    }
    let late = slow_proxy(6379, Duration::from_millis(150)).await;
    let p = prefix();
    let a = node_on(&format!("redis://127.0.0.1:{late}"), &p, &[]);
    let b = node_on(REDIS, &p, &[]);
    wait_broker(&a, "up", Duration::from_secs(20)).await;
    wait_broker(&b, "up", common::WAIT).await;
    let mut on_a = a.client().await;
    for kind in ["ws", "sse", "points"] {
        let id = format!("late-{kind}");
        let (status, body) = post(&b.url("/streams"), &json!({ "id": id }).to_string()).await;
        assert_eq!(status, 201, "{body}");
        match kind {
            "ws" => {
                on_a.send(json!({"type":"stream_subscribe","stream":id}))
                    .await;
                let answer = on_a.recv().await;
                assert_eq!(answer["type"], "stream_subscribed", "{answer}");
            }
            "sse" => {
                let sse = reqwest::get(a.url(&format!("/events?stream={id}")))
                    .await
                    .unwrap();
                assert_eq!(sse.status(), 200);
            }
            _ => {
                let (status, body) =
                    post(&a.url(&format!("/streams/{id}/points")), r#"{"value": 1}"#).await;
                assert_eq!(status, 200, "{body}");
            }
        }
    }
}
