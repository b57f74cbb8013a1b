//! Test support: start the real `herald` binary on port 0 and talk to it over real sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod cluster;
pub mod poller;

pub const WAIT: Duration = Duration::from_secs(5);

/// A running `herald serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    pub fn start() -> Server {
        Server::with(&[], &[])
    }

    pub fn with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env(
                "HERALD_LOG",
                std::env::var("HERALD_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting herald");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.ws_url("/ws")).await
    }

    /// A client that has read its welcome and joined `room` as `user`.
    pub async fn joined(&self, room: &str, user: Value) -> Client {
        let mut c = self.client().await;
        c.send(json!({"type":"join","room":room,"user":user})).await;
        let joined = c.recv_type("room_joined").await;
        assert_eq!(joined["room"], room);
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket test client.
pub struct Client {
    pub ws: Ws,
    pub client_id: String,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connecting");
        let mut c = Client {
            ws,
            client_id: String::new(),
        };
        let welcome = c.recv().await;
        assert_eq!(
            welcome["type"], "welcome",
            "first frame must be welcome: {welcome}"
        );
        c.client_id = welcome["clientId"]
            .as_str()
            .expect("clientId is a string")
            .to_owned();
        c
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("sending");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("sending");
    }

    /// The next text frame as JSON (pings and pongs skipped).
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("stream ended")
                .expect("read error");
            match msg {
                Message::Text(t) => {
                    return serde_json::from_str(t.as_str()).expect("frame is JSON")
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next frame, which must have this type.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["type"], kind, "expected a {kind} frame, got {frame}");
        frame
    }

    /// Asserts that no text frame arrives within `within`.
    pub async fn expect_silence(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (frame.code.into(), frame.reason.to_string())
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("error before close frame: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    }
}

/// An SSE stream reader over a real HTTP connection.
pub struct Events {
    pub response_headers: reqwest::header::HeaderMap,
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: herald_protocol::event_stream::SseParser,
    ready: std::collections::VecDeque<herald_protocol::event_stream::SseEvent>,
}

/// One SSE event.
#[derive(Debug)]
pub struct Event {
    pub name: String,
    pub id: Option<String>,
    pub data: Value,
}

impl Events {
    pub async fn open(url: &str) -> Events {
        let response = reqwest::get(url).await.expect("opening the event stream");
        Events::from_response(response)
    }

    pub fn from_response(response: reqwest::Response) -> Events {
        assert_eq!(response.status(), 200);
        Events {
            response_headers: response.headers().clone(),
            stream: Box::pin(response.bytes_stream()),
            parser: Default::default(),
            ready: Default::default(),
        }
    }

    pub async fn next(&mut self) -> Event {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Event {
                    data: serde_json::from_str(&e.data).expect("event data is JSON"),
                    name: e.event,
                    id: e.id,
                };
            }
            let chunk = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for an event")
                .expect("event stream ended")
                .expect("event stream failed");
            self.ready.extend(self.parser.push(&chunk));
        }
    }

    /// The next event other than a ping.
    pub async fn next_named(&mut self, name: &str) -> Event {
        loop {
            let e = self.next().await;
            if e.name == "ping" && name != "ping" {
                continue;
            }
            assert_eq!(e.name, name, "expected {name} event, got {e:?}");
            return e;
        }
    }

    /// Asserts that no event other than pings arrives within `within`.
    pub async fn expect_silence(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Err(_) => return,
                Ok(e) if e.name == "ping" => continue,
                Ok(e) => panic!("expected no event, got {e:?}"),
            }
        }
    }
}

/// POSTs a JSON body; returns status and JSON answer.
pub async fn post(url: &str, body: &str) -> (u16, Value) {
    post_as(url, None, body).await
}

/// POSTs a JSON body, with an API key (`X-API-Key`) when given; returns status and JSON answer.
async fn post_as(url: &str, key: Option<&str>, body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = request.body(body.to_owned()).send().await.expect("posting");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `/healthz` as JSON.
pub async fn health(server: &Server) -> Value {
    reqwest::get(server.url("/healthz"))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("healthz is JSON")
}

/// One counter or gauge from `/metrics` (0 when absent).
pub async fn metric(server: &Server, name: &str) -> f64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A masked text frame (payload under 126 bytes) with a zero mask, as a client must send it.
pub fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

/// A raw WebSocket client that reads the server's frames itself: it keeps whatever followed the
/// handshake answer in the same read (the `welcome` frame usually does), never answers pings and
/// sees every control frame, close codes included.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// One frame from the server: its opcode and payload.
#[derive(Debug)]
pub struct RawFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame (1005 when it carries none).
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 0x8).then(|| match self.payload.get(..2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => 1005,
        })
    }
}

impl RawClient {
    pub async fn connect(addr: &str) -> RawClient {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = tokio::time::timeout(WAIT, stream.read_buf(&mut buf))
                .await
                .expect("timed out waiting for the handshake answer")
                .unwrap();
            assert!(n > 0, "closed during the handshake");
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        buf.drain(..end);
        RawClient { stream, buf }
    }

    /// Sends raw bytes (a frame made with [`masked_text_frame`], say).
    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame; `None` once the server has closed the TCP connection. Waiting longer than
    /// [`WAIT`] for one frame fails the test (a hang guard, not a measurement).
    pub async fn next(&mut self) -> Option<RawFrame> {
        self.next_within(WAIT).await
    }

    /// [`RawClient::next`] with another hang guard, for a test that decides for itself when it
    /// has waited too long.
    pub async fn next_within(&mut self, guard: Duration) -> Option<RawFrame> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            let n = tokio::time::timeout(guard, self.stream.read_buf(&mut self.buf))
                .await
                .expect("timed out waiting for a frame")
                .unwrap_or(0);
            if n == 0 {
                assert!(self.buf.is_empty(), "closed inside a frame: {:?}", self.buf);
                return None;
            }
        }
    }

    fn parse(&mut self) -> Option<RawFrame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "the server masked a frame");
        let (len, header) = match b[1] & 0x7f {
            126 => (
                u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize,
                4,
            ),
            127 => (
                u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        if b.len() < header + len {
            return None;
        }
        let frame = RawFrame {
            opcode: b[0] & 0x0f,
            payload: b[header..header + len].to_vec(),
        };
        self.buf.drain(..header + len);
        Some(frame)
    }
}

/// Tests this binary skipped, printed again when it exits (after libtest's own summary).
static SKIPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

extern "C" fn print_skipped() {
    use std::io::Write;
    let skipped = SKIPPED.lock().map(|s| s.clone()).unwrap_or_default();
    if !skipped.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "SKIPPED: {} test(s) of this binary passed without running:",
            skipped.len()
        );
        for s in skipped {
            let _ = writeln!(err, "SKIPPED:   {s}");
        }
    }
}

/// Marks the calling test as skipped because `why`: with `CI` set (to anything but `false`, `0`
/// or nothing) this fails the test instead.
/// Otherwise it prints `SKIPPED: <test>: <why>` at once, straight to the process's stderr (which
/// libtest does not capture, unlike `eprintln!`), and again in a summary when the binary exits,
/// after libtest's `test result` line. The caller then returns.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(!ci, "{test} cannot run in CI: {why}");
    let line = format!("{test}: {why}");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {line}");
    let mut skipped = SKIPPED.lock().unwrap();
    if skipped.is_empty() {
        // SAFETY: registers a plain function with no captured state to run at exit.
        unsafe { libc::atexit(print_skipped) };
    }
    skipped.push(line);
}

/// POSTs a JSON body with an API key (`X-API-Key`); returns status and JSON answer.
pub async fn post_with_key(url: &str, key: &str, body: &str) -> (u16, Value) {
    post_as(url, Some(key), body).await
}
