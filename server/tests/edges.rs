//! Issue 15, connection edges: how connections end (abortive and lingering closes), SSE slow
//! consumers, HTTP timeouts and the cap on connections not yet admitted, and who may publish
//! (loopback trust, API key, Content-Type, cross-site origins). Every test runs the real binary
//! and talks to it over real sockets.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{metric, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Starts `herald serve --listen LISTEN ARGS...` (the common helper always listens on
/// 127.0.0.1). The address it reports is rewritten to 127.0.0.1 when it listens on every
/// interface, so the tests still connect over loopback.
fn server_listening_on(listen: &str, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", listen])
        .args(args)
        .env("HERALD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting herald");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reading the listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .replace("0.0.0.0:", "127.0.0.1:");
    Server { child, addr }
}

/// POSTs `body` with exactly the headers given (no Content-Type unless one is listed); returns
/// the status and the JSON answer.
async fn post_with(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("posting");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// Both publish endpoints with a valid body each.
const PUBLISH: [(&str, &str); 2] = [
    ("/notifications", r#"{"message":"hi"}"#),
    ("/updates", r#"{"resource":"r","action":"a"}"#),
];

// ---- 15.14: who may publish without an API key ----

#[tokio::test]
async fn publishing_without_a_key_is_refused_when_listening_beyond_loopback() {
    let server = server_listening_on("0.0.0.0:0", &[]);
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(&server.url(path), &[JSON], body).await;
        assert_eq!(
            status, 403,
            "{path} from loopback on a public listen: {answer}"
        );
        assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    }
}

#[tokio::test]
async fn publishing_with_the_key_is_accepted_when_listening_beyond_loopback() {
    let server = server_listening_on("0.0.0.0:0", &["--api-key", "edge-key"]);
    for (path, body) in PUBLISH {
        let (status, answer) =
            post_with(&server.url(path), &[JSON, ("x-api-key", "edge-key")], body).await;
        assert_eq!(status, 200, "{path} with the key: {answer}");
        let (status, _) = post_with(&server.url(path), &[JSON], body).await;
        assert_eq!(status, 401, "{path} without the key");
    }
}

#[tokio::test]
async fn behind_a_proxy_loopback_is_not_trusted_to_publish() {
    let server = Server::with(&["--behind-proxy"], &[]);
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(&server.url(path), &[JSON], body).await;
        assert_eq!(status, 403, "{path} behind a proxy without a key: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    }
    let server = Server::with(&["--behind-proxy", "--api-key", "edge-key"], &[]);
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(
            &server.url(path),
            &[JSON, ("authorization", "Bearer edge-key")],
            body,
        )
        .await;
        assert_eq!(status, 200, "{path} behind a proxy with the key: {answer}");
    }
}

#[tokio::test]
async fn loopback_trust_can_be_asked_for_explicitly() {
    let server = server_listening_on("0.0.0.0:0", &["--trust-loopback-publish"]);
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(&server.url(path), &[JSON], body).await;
        assert_eq!(status, 200, "{path} with loopback trusted: {answer}");
    }
    // On a loopback-only listen with no proxy, loopback stays trusted by default.
    let server = Server::start();
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(&server.url(path), &[JSON], body).await;
        assert_eq!(status, 200, "{path} on a loopback listen: {answer}");
    }
}

#[test]
fn trusting_loopback_behind_a_proxy_is_a_clear_start_up_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--behind-proxy",
            "--trust-loopback-publish",
        ])
        .env("HERALD_LOG", "warn")
        .output()
        .expect("running herald");
    assert!(!out.status.success(), "the contradiction must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("behind_proxy") && stderr.contains("trust_loopback_publish"),
        "the error names both settings: {stderr}"
    );
}

// ---- 15.15: cross-site posts ----

#[tokio::test]
async fn publishing_requires_a_json_content_type() {
    let server = Server::start();
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(&server.url(path), &[], body).await;
        assert_eq!(status, 415, "{path} without Content-Type: {answer}");
        assert_eq!(answer["error"]["code"], "unsupported_media_type");
        for ct in ["text/plain", "application/x-www-form-urlencoded"] {
            let (status, answer) =
                post_with(&server.url(path), &[("content-type", ct)], body).await;
            assert_eq!(status, 415, "{path} with {ct}: {answer}");
            assert_eq!(answer["error"]["code"], "unsupported_media_type");
        }
        let (status, answer) = post_with(
            &server.url(path),
            &[("content-type", "application/json; charset=utf-8")],
            body,
        )
        .await;
        assert_eq!(status, 200, "{path} with JSON: {answer}");
    }
}

#[tokio::test]
async fn cross_origin_publishing_is_refused_unless_the_origin_is_allowed() {
    let server = Server::start();
    let same_origin = format!("http://{}", server.addr);
    for (path, body) in PUBLISH {
        let url = server.url(path);
        // A page on another site (no allowlist configured).
        for origin in ["https://evil.test", "null", "http://127.0.0.1:1"] {
            let (status, answer) = post_with(&url, &[JSON, ("origin", origin)], body).await;
            assert_eq!(status, 403, "{path} from {origin}: {answer}");
            assert_eq!(answer["error"]["code"], "origin_not_allowed", "{answer}");
        }
        // A page served by this server, and a client that sends no Origin at all.
        let (status, answer) = post_with(&url, &[JSON, ("origin", &same_origin)], body).await;
        assert_eq!(status, 200, "{path} same-origin: {answer}");
        let (status, answer) = post_with(&url, &[JSON], body).await;
        assert_eq!(status, 200, "{path} without Origin: {answer}");
    }
    // An origin the configuration allows may publish; others still may not.
    let server = Server::with(&["--allowed-origins", "https://app.example.test"], &[]);
    for (path, body) in PUBLISH {
        let url = server.url(path);
        let (status, answer) =
            post_with(&url, &[JSON, ("origin", "https://app.example.test")], body).await;
        assert_eq!(status, 200, "{path} from an allowed origin: {answer}");
        let (status, answer) =
            post_with(&url, &[JSON, ("origin", "https://evil.test")], body).await;
        assert_eq!(status, 403, "{path} from a foreign origin: {answer}");
        assert_eq!(answer["error"]["code"], "origin_not_allowed");
    }
}

// ---- helpers for the connection tests ----

/// A TCP connection to `addr` whose receive buffer is as small as the kernel allows, so a client
/// that stops reading fills the server's side quickly.
async fn small_window_connect(addr: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr.parse().unwrap()).await.unwrap()
}

/// The server-side sockets of the connection whose client end is `client`, as (state, bytes
/// queued to send) from /proc/net/tcp. States: 01 ESTABLISHED, 04 FIN_WAIT1, 05 FIN_WAIT2,
/// 06 TIME_WAIT, 08 CLOSE_WAIT, 0B CLOSING.
fn server_side_sockets(server_port: u16, client: std::net::SocketAddr) -> Vec<(String, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("reading /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
            if port(fields[1])? != server_port || port(fields[2])? != client.port() {
                return None;
            }
            let tx = u64::from_str_radix(fields[4].split(':').next()?, 16).ok()?;
            Some((fields[3].to_owned(), tx))
        })
        .collect()
}

/// Reads until the connection fails or ends; true when it ended with a reset.
async fn ends_with_reset(stream: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(common::WAIT, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection neither ended nor failed"),
            Ok(Ok(0)) => return false,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// Waits, with a deadline, until `check` holds; `what` says what was awaited when it does not.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- 15.2: a client that stopped reading is reset, its backlog discarded ----

/// A raw WebSocket with a small receive window that joins `room` and then neither reads nor
/// sends anything (not even pongs). Returns it once `publisher` has seen it join.
async fn stalled_member(server: &Server, room: &str, publisher: &mut common::Client) -> TcpStream {
    let mut stalled = small_window_connect(&server.addr).await;
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    let join = json!({"type":"join","room":room,"user":"stalled"}).to_string();
    stalled
        .write_all(&common::masked_text_frame(join.as_bytes()))
        .await
        .unwrap();
    publisher
        .send(json!({"type":"join","room":room,"user":"pub"}))
        .await;
    let joined = publisher.recv_type("room_joined").await;
    if !joined["users"]
        .as_array()
        .unwrap()
        .contains(&json!("stalled"))
    {
        loop {
            let frame = publisher.recv().await;
            if frame["type"] == "user_joined" && frame["user"] == "stalled" {
                break;
            }
        }
    }
    stalled
}

/// Chats of 8,000 characters, to flood a room.
fn big_chat() -> Message {
    Message::text(json!({"type":"chat","text":"x".repeat(8000)}).to_string())
}

/// Waits until the server's side of the connection whose client end is `client` is gone.
async fn server_side_gone(server: &Server, client: std::net::SocketAddr) {
    let server_port: u16 = server.addr.rsplit(':').next().unwrap().parse().unwrap();
    eventually("the dropped connection's server socket to go", || async {
        let left = server_side_sockets(server_port, client);
        if !left.is_empty() {
            eprintln!("server side of the dropped connection (state, bytes queued): {left:?}");
        }
        left.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_slow_consumer_is_reset_so_its_backlog_does_not_linger_in_the_kernel() {
    // A long grace: the stalled reader is dropped at the hard limit (16 x 64 KiB), while the
    // publisher, which reads its copies, never stays behind long enough to be dropped too.
    let server = Server::with(
        &[
            "--outbound-queue-bytes",
            "65536",
            "--slow-consumer-grace",
            "5s",
        ],
        &[("HERALD_MESSAGE_RATE", "0")],
    );
    let mut publisher = server.client().await;
    let mut stalled = stalled_member(&server, "flood", &mut publisher).await;
    let stalled_addr = stalled.local_addr().unwrap();
    // The publisher's own copies are read by a task so that only the stalled reader falls behind.
    let (mut sink, mut stream) = publisher.ws.split();
    tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    let mut sent = 0;
    while metric(&server, "herald_slow_consumers_dropped_total").await < 1.0 {
        for _ in 0..20 {
            sink.send(big_chat()).await.unwrap();
            sent += 1;
        }
        assert!(sent < 20_000, "the stalled reader was never dropped");
    }
    // The server's side must go at once, not sit in FIN-WAIT-1 with the backlog queued while
    // the peer trickles it.
    server_side_gone(&server, stalled_addr).await;
    assert_eq!(
        metric(&server, "herald_slow_consumers_dropped_total").await,
        1.0
    );
    assert_eq!(metric(&server, "herald_abortive_closes_total").await, 1.0);
    assert!(
        ends_with_reset(&mut stalled).await,
        "the stalled reader sees a reset, not the rest of its backlog and a FIN"
    );
}

#[tokio::test]
async fn a_ping_timeout_with_a_backlog_is_reset_too() {
    // Queue limits far above the flood: this client is dropped by the ping timeout, not as a
    // slow consumer, with its kernel buffer full.
    let server = Server::with(
        &[
            "--ping-interval",
            "200ms",
            "--ping-timeout",
            "1s",
            "--outbound-queue-bytes",
            "67108864",
            "--slow-consumer-grace",
            "60s",
        ],
        &[("HERALD_MESSAGE_RATE", "0")],
    );
    let mut publisher = server.client().await;
    let mut stalled = stalled_member(&server, "flood", &mut publisher).await;
    let stalled_addr = stalled.local_addr().unwrap();
    // The publisher reads (and so answers pings) in a task.
    let (mut sink, mut stream) = publisher.ws.split();
    tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    for _ in 0..300 {
        sink.send(big_chat()).await.unwrap();
    }
    eventually("the stalled client's ping timeout", || async {
        metric(&server, "herald_ping_timeouts_total").await >= 1.0
    })
    .await;
    server_side_gone(&server, stalled_addr).await;
    assert_eq!(metric(&server, "herald_ping_timeouts_total").await, 1.0);
    assert_eq!(
        metric(&server, "herald_slow_consumers_dropped_total").await,
        0.0
    );
    assert_eq!(metric(&server, "herald_abortive_closes_total").await, 1.0);
    assert!(
        ends_with_reset(&mut stalled).await,
        "the stalled client sees a reset, not the rest of its backlog and a FIN"
    );
}

// ---- 15.12: close codes survive unread input and proxies ----

/// Sends a text message larger than the server's frame limit, then keeps sending small ones
/// (input the server will never read), and returns the close code the client receives. The
/// over-size message goes out in one frame whose payload the server refuses from its header, so
/// most of it is still in flight when the server closes.
/// Returns the close code the client receives, and whether the connection then ended cleanly.
async fn close_code_after_oversize_while_sending(url: &str) -> (u16, bool) {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connecting");
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        let big = "x".repeat(512 * 1024);
        if sink.send(Message::text(big)).await.is_err() {
            return;
        }
        // More than the kernel and a proxy buffer between client and server, so the close
        // comes while input is still in flight.
        let more = format!(
            "{{\"type\":\"typing\",\"pad\":\"{}\"}}",
            "y".repeat(16 * 1024)
        );
        for _ in 0..4_000 {
            if sink.send(Message::text(more.clone())).await.is_err() {
                return;
            }
        }
    });
    let code = loop {
        let msg = tokio::time::timeout(common::WAIT, stream.next())
            .await
            .expect("timed out waiting for the close frame");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(Message::Close(None))) => break 1005,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the connection failed before any close frame: {e}"),
            None => panic!("the connection ended without a close frame"),
        }
    };
    // After the close frame (which the client library answers), how does the connection end:
    // with the server's FIN, or with a reset?
    let clean = loop {
        let msg = tokio::time::timeout(common::WAIT, stream.next())
            .await
            .expect("timed out waiting for the connection to end");
        match msg {
            None | Some(Err(WsError::ConnectionClosed)) => break true,
            Some(Ok(_)) => continue,
            Some(Err(_)) => break false,
        }
    };
    writer.abort();
    (code, clean)
}

#[tokio::test]
async fn a_client_still_sending_gets_the_close_frame_directly() {
    let server = Server::with(&[], &[("HERALD_MESSAGE_RATE", "0")]);
    for _ in 0..3 {
        let (code, clean) = close_code_after_oversize_while_sending(&server.ws_url("/ws")).await;
        assert_eq!(code, 1009);
        // The server read (and dropped) the client's input until the client closed: no reset.
        assert!(
            clean,
            "after its close frame the server reset the connection"
        );
    }
    assert_eq!(metric(&server, "herald_abortive_closes_total").await, 0.0);
}

/// nginx proxying WebSockets to `upstream`, or `None` (said loudly) when nginx is not installed
/// outside CI; in CI a missing nginx fails the test.
fn proxy_to(upstream: &Server) -> Option<common::cluster::Nginx> {
    let nginx = common::cluster::nginx_path();
    if !nginx.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install nginx (apt-get install -y nginx)"
        );
        eprintln!(
            "SKIPPED: {} is not installed (apt-get install -y nginx)",
            nginx.display()
        );
        return None;
    }
    Some(common::cluster::nginx(&[upstream]))
}

#[tokio::test]
async fn through_nginx_an_oversize_frame_still_ends_with_1009() {
    let server = Server::with(&[], &[("HERALD_MESSAGE_RATE", "0")]);
    let Some(proxy) = proxy_to(&server) else {
        return;
    };
    let url = format!("ws://127.0.0.1:{}/ws", proxy.port);
    // The reset that loses the close frame races with nginx forwarding it: several tries.
    for _ in 0..10 {
        // (nginx itself may reset its client after the close, holding unsent input: only the
        // close code is Herald's to keep.)
        assert_eq!(close_code_after_oversize_while_sending(&url).await.0, 1009);
    }
}

// ---- 15.3: an SSE stream whose client stopped reading is ended ----

#[tokio::test]
async fn an_sse_client_that_stops_reading_is_disconnected() {
    let server = Server::with(
        &[
            "--outbound-queue-bytes",
            "65536",
            "--slow-consumer-grace",
            "100ms",
        ],
        &[],
    );
    let mut reader = stalled_stream(&server, "").await;
    assert_eq!(
        common::health(&server).await["connections"]
            .as_u64()
            .unwrap(),
        1
    );
    let data = "y".repeat(30_000);
    let body = json!({"resource":"r","action":"a","data":data}).to_string();
    let client = reqwest::Client::new();
    // Updates flood in until the stream's connection is gone (or the deadline says it stays).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while common::health(&server).await["connections"]
        .as_u64()
        .unwrap()
        > 0
    {
        if tokio::time::Instant::now() > deadline {
            let metrics = reqwest::get(server.url("/metrics"))
                .await
                .unwrap()
                .text()
                .await;
            panic!("the non-reading SSE client kept its session: {metrics:?}");
        }
        for _ in 0..10 {
            let r = client
                .post(server.url("/updates"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    assert!(metric(&server, "herald_slow_consumers_dropped_total").await >= 1.0);
    assert_eq!(metric(&server, "herald_abortive_closes_total").await, 1.0);
    assert!(
        ends_with_reset(&mut reader).await,
        "the dropped stream is reset, its backlog discarded"
    );
}

/// Opens `/events` (with `query`) on a small-window connection and reads up to its `connect`
/// event; the caller then reads nothing more.
async fn stalled_stream(server: &Server, query: &str) -> TcpStream {
    let mut reader = small_window_connect(&server.addr).await;
    let request = format!(
        "GET /events{query} HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    reader.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&head).contains("event: connect") {
        reader.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    reader
}

#[tokio::test]
async fn an_sse_stream_closed_for_another_reason_is_reset_when_its_client_does_not_read() {
    // The token expires while the client reads nothing; the queue limits are far above the
    // flood, so it is not dropped as a slow consumer. The end of the stream cannot be written,
    // and the connection must not stay open behind it.
    const SECRET: &str = "edges-test-secret-0123456789abcdef0123456789";
    let server = Server::with(
        &[
            "--jwt-secret",
            SECRET,
            "--jwt-leeway",
            "0",
            "--outbound-queue-bytes",
            "67108864",
            "--slow-consumer-grace",
            "60s",
        ],
        &[],
    );
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub":"reader","exp":exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let mut reader = stalled_stream(&server, &format!("?token={token}")).await;
    // Far more than hyper's and the kernel's buffers hold.
    let body = json!({"resource":"r","action":"a","data":"z".repeat(30_000)}).to_string();
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let r = client
            .post(server.url("/updates"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    eventually("the expired stream's connection to end", || async {
        common::health(&server).await["connections"]
            .as_u64()
            .unwrap()
            == 0
    })
    .await;
    assert!(
        ends_with_reset(&mut reader).await,
        "the stuck stream is reset, its backlog discarded"
    );
    assert_eq!(
        metric(&server, "herald_slow_consumers_dropped_total").await,
        0.0
    );
    assert_eq!(metric(&server, "herald_abortive_closes_total").await, 1.0);
}

// ---- 15.4: HTTP timeouts and the cap on connections not yet admitted ----

#[tokio::test]
async fn a_client_sending_half_a_request_line_is_closed() {
    let server = Server::with(
        &["--header-read-timeout", "1s", "--keep-alive-timeout", "0"],
        &[],
    );
    let mut slowloris = TcpStream::connect(&server.addr).await.unwrap();
    slowloris.write_all(b"GET /heal").await.unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(common::WAIT, slowloris.read(&mut buf)).await {
            Err(_) => panic!("a half-sent request line kept its connection open"),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => continue, // an answer (408) before the close is fine
        }
    }
    assert!(metric(&server, "herald_http_timeouts_total").await >= 1.0);
}

/// Sends one GET on `stream` and reads its whole answer (a `Content-Length` body).
async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: herald\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("a Content-Length");
            if answer.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(common::WAIT, stream.read(&mut buf))
            .await
            .expect("timed out reading an answer")
            .unwrap();
        assert!(n > 0, "connection closed mid-answer");
        answer.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = Server::with(
        &["--header-read-timeout", "0", "--keep-alive-timeout", "1s"],
        &[],
    );
    let mut idle = TcpStream::connect(&server.addr).await.unwrap();
    let answer = get_on(&mut idle, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut buf = [0u8; 64];
    match tokio::time::timeout(common::WAIT, idle.read(&mut buf)).await {
        Err(_) => panic!("an idle keep-alive connection was kept open"),
        Ok(Ok(n)) => assert_eq!(n, 0, "unexpected bytes on an idle connection"),
        Ok(Err(_)) => {}
    }
    assert!(metric(&server, "herald_http_timeouts_total").await >= 1.0);
}

#[tokio::test]
async fn connections_not_yet_admitted_are_capped_and_sessions_do_not_count() {
    let server = Server::with(
        &[
            "--max-unadmitted-connections",
            "2",
            "--header-read-timeout",
            "0",
            "--keep-alive-timeout",
            "0",
        ],
        &[],
    );
    // Sessions (a WebSocket and an SSE stream) are admitted: they take no unadmitted place.
    let mut ws = server.client().await;
    let mut stream = common::Events::open(&server.url("/events")).await;
    stream.next_named("connect").await;
    // Two connections that never send a request take both places...
    let mut held = vec![
        TcpStream::connect(&server.addr).await.unwrap(),
        TcpStream::connect(&server.addr).await.unwrap(),
    ];
    // ...so the next one is closed at once, without an answer.
    let mut refused = TcpStream::connect(&server.addr).await.unwrap();
    let _ = refused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
        .await;
    let mut buf = [0u8; 256];
    match tokio::time::timeout(common::WAIT, refused.read(&mut buf)).await {
        Err(_) => panic!("a third unadmitted connection was kept"),
        Ok(Ok(n)) => assert_eq!(
            n,
            0,
            "a third unadmitted connection was served: {}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Ok(Err(_)) => {}
    }
    // A held connection that becomes a request and goes away frees its place.
    let answer = get_on(&mut held[0], "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held.remove(0));
    // (The place is free once the server has read the close, hence the retries.)
    eventually("a freed place to serve /metrics", || async {
        let Ok(r) = reqwest::get(server.url("/metrics")).await else {
            return false;
        };
        let text = r.text().await.unwrap_or_default();
        let refused = text
            .lines()
            .find_map(|l| l.strip_prefix("herald_unadmitted_refused_total "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert!(
            refused >= Some(1.0),
            "the refusal was not counted: {refused:?}"
        );
        true
    })
    .await;
    drop(held);
    // The sessions were never disturbed.
    ws.send(json!({"type":"join","room":"r","user":"u"})).await;
    ws.recv_type("room_joined").await;
}
