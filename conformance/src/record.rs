//! The recording proxy: sits in front of a server, passes WebSocket, SSE and HTTP traffic through
//! and writes what the clients and the server said as a session.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::generalize::{build_session, parse_query, Observed};
use crate::session::ActorKind;
use crate::sse::SseParser;

type Body = BoxBody<Bytes, std::io::Error>;

struct Recorder {
    target: String,
    events: Mutex<Vec<Observed>>,
    counter: Mutex<(usize, usize)>,
    last: Mutex<Instant>,
    open: std::sync::atomic::AtomicUsize,
    client: reqwest::Client,
}

impl Recorder {
    fn push(&self, o: Observed) -> usize {
        let index = {
            let mut events = self.events.lock().expect("lock");
            events.push(o);
            events.len() - 1
        };
        self.touch();
        index
    }

    fn touch(&self) {
        *self.last.lock().expect("lock") = Instant::now();
    }

    fn next_actor(&self, ws: bool) -> String {
        let mut c = self.counter.lock().expect("lock");
        if ws {
            c.0 += 1;
            format!("ws{}", c.0)
        } else {
            c.1 += 1;
            format!("sse{}", c.1)
        }
    }
}

fn full(status: u16, text: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(text.into()).map_err(|e| match e {}).boxed());
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    r
}

/// A running proxy (used by tests and by `record`).
pub struct Proxy {
    /// The address it listens on.
    pub addr: SocketAddr,
    recorder: Arc<Recorder>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on `listen` in front of `target`.
    pub async fn start(listen: &str, target: &str) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let recorder = Arc::new(Recorder {
            target: target.trim_end_matches('/').to_owned(),
            events: Mutex::new(Vec::new()),
            counter: Mutex::new((0, 0)),
            last: Mutex::new(Instant::now()),
            open: std::sync::atomic::AtomicUsize::new(0),
            client: reqwest::Client::builder().no_proxy().build()?,
        });
        let rec = recorder.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let rec = rec.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let rec = rec.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(rec, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(Proxy {
            addr,
            recorder,
            task,
        })
    }

    /// How long since the last traffic, and how many WebSockets/streams are open.
    pub fn idle(&self) -> (Duration, usize) {
        (
            self.recorder.last.lock().expect("lock").elapsed(),
            self.recorder.open.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    /// Stops the proxy and returns the session recorded so far.
    pub fn finish(self, name: &str) -> crate::session::Session {
        self.task.abort();
        let events = self.recorder.events.lock().expect("lock").clone();
        build_session(name, &events)
    }
}

/// Runs the proxy until Ctrl-C (or `idle` without traffic once something was recorded), then
/// writes `OUT/NAME.jsonl`.
pub async fn record(
    listen: &str,
    target: &str,
    out: &Path,
    name: &str,
    idle: Option<Duration>,
) -> anyhow::Result<Vec<PathBuf>> {
    let proxy = Proxy::start(listen, target).await?;
    println!(
        "recording: point clients at http://{} (forwarding to {target}); Ctrl-C to write the session",
        proxy.addr
    );
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if let Some(limit) = idle {
                    let (quiet, open) = proxy.idle();
                    let any = !proxy.recorder.events.lock().expect("lock").is_empty();
                    if any && open == 0 && quiet >= limit {
                        break;
                    }
                }
            }
        }
    }
    let session = proxy.finish(name);
    std::fs::create_dir_all(out)?;
    let path = out.join(format!("{name}.jsonl"));
    std::fs::write(&path, session.to_jsonl())?;
    Ok(vec![path])
}

async fn handle(rec: Arc<Recorder>, req: Request<Incoming>) -> Response<Body> {
    if hyper_tungstenite::is_upgrade_request(&req) {
        return match proxy_ws(rec, req).await {
            Ok(r) => r,
            Err(e) => full(502, format!("proxy: {e:#}")),
        };
    }
    let wants_sse = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if req.method() == hyper::Method::GET && (wants_sse || req.uri().path() == "/events") {
        return match proxy_sse(rec, req).await {
            Ok(r) => r,
            Err(e) => full(502, format!("proxy: {e:#}")),
        };
    }
    match proxy_http(rec, req).await {
        Ok(r) => r,
        Err(e) => full(502, format!("proxy: {e:#}")),
    }
}

const FORWARDED: [&str; 6] = [
    "origin",
    "content-type",
    "access-control-request-method",
    "access-control-request-headers",
    "authorization",
    "cookie",
];

async fn proxy_ws(
    rec: Arc<Recorder>,
    mut req: Request<Incoming>,
) -> anyhow::Result<Response<Body>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let base = rec.target.replacen("http", "ws", 1);
    let url = if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{query}")
    };
    let mut up_req = url.as_str().into_client_request()?;
    for h in FORWARDED {
        if let Some(v) = req.headers().get(h) {
            up_req.headers_mut().insert(h, v.clone());
        }
    }
    let (upstream, _) = tokio_tungstenite::connect_async(up_req)
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let actor = rec.next_actor(true);
    rec.push(Observed::Connect {
        actor: actor.clone(),
        kind: ActorKind::Ws,
        path,
        query: parse_query(&query),
        status: None,
    });
    let (response, websocket) = hyper_tungstenite::upgrade(&mut req, None)?;
    rec.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::spawn(async move {
        if let Ok(client) = websocket.await {
            pump(&rec, &actor, client, upstream).await;
        }
        rec.open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        rec.touch();
    });
    Ok(response.map(|b| b.map_err(|e| match e {}).boxed()))
}

async fn pump<C, U>(rec: &Recorder, actor: &str, client: C, upstream: U)
where
    C: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message>
        + Unpin,
    U: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message>
        + Unpin,
{
    let (mut c_tx, mut c_rx) = client.split();
    let (mut u_tx, mut u_rx) = upstream.split();
    let (mut client_closed, mut server_closed) = (false, false);
    loop {
        tokio::select! {
            m = c_rx.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    rec.push(Observed::Send { actor: actor.into(), text: t.to_string() });
                    let _ = u_tx.send(Message::Text(t)).await;
                }
                Some(Ok(Message::Binary(b))) => { let _ = u_tx.send(Message::Binary(b)).await; }
                Some(Ok(Message::Close(f))) => {
                    if !server_closed {
                        rec.push(Observed::ClientClose { actor: actor.into(), clean: true });
                    }
                    client_closed = true;
                    let _ = u_tx.send(Message::Close(f)).await;
                    if server_closed { break; }
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    if !client_closed && !server_closed {
                        rec.push(Observed::ClientClose { actor: actor.into(), clean: false });
                    }
                    break;
                }
            },
            m = u_rx.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    rec.push(Observed::Receive { actor: actor.into(), text: t.to_string() });
                    let _ = c_tx.send(Message::Text(t)).await;
                }
                Some(Ok(Message::Binary(b))) => { let _ = c_tx.send(Message::Binary(b)).await; }
                Some(Ok(Message::Close(f))) => {
                    if !client_closed {
                        rec.push(Observed::ServerClose {
                            actor: actor.into(),
                            code: f.as_ref().map(|f| u16::from(f.code)),
                        });
                    }
                    server_closed = true;
                    let _ = c_tx.send(Message::Close(f)).await;
                    if client_closed { break; }
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    if !client_closed && !server_closed {
                        rec.push(Observed::ServerClose { actor: actor.into(), code: None });
                    }
                    break;
                }
            },
        }
    }
}

async fn proxy_sse(rec: Arc<Recorder>, req: Request<Incoming>) -> anyhow::Result<Response<Body>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let url = if query.is_empty() {
        format!("{}{path}", rec.target)
    } else {
        format!("{}{path}?{query}", rec.target)
    };
    let mut up = rec.client.get(&url).header("accept", "text/event-stream");
    for h in FORWARDED {
        if let Some(v) = req.headers().get(h) {
            up = up.header(h, v.clone());
        }
    }
    let resp = up
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let actor = rec.next_actor(false);
    rec.push(Observed::Connect {
        actor: actor.clone(),
        kind: ActorKind::Sse,
        path,
        query: parse_query(&query),
        status: Some(resp.status().as_u16()),
    });
    let mut builder = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" && k != "connection" {
            builder = builder.header(k, v.clone());
        }
    }
    rec.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let guard = OpenGuard(rec.clone());
    let closed = SseClosed {
        rec: rec.clone(),
        actor: actor.clone(),
    };
    let mut parser = SseParser::default();
    let stream = resp.bytes_stream().map(move |chunk| {
        let _keep = (&guard, &closed);
        let chunk = chunk.map_err(std::io::Error::other)?;
        for ev in parser.push(&chunk) {
            if ev.event != "ping" {
                guard.0.push(Observed::Event {
                    actor: actor.clone(),
                    event: ev.event,
                    data: ev.data,
                });
            }
        }
        Ok(Frame::data(chunk))
    });
    Ok(builder.body(BodyExt::boxed(StreamBody::new(stream)))?)
}

/// Records the end of an SSE stream (the client went away, or the stream ended) as the
/// client's disconnect, so a replay stops listening where the recording did.
struct SseClosed {
    rec: Arc<Recorder>,
    actor: String,
}

impl Drop for SseClosed {
    fn drop(&mut self) {
        self.rec.push(Observed::ClientClose {
            actor: std::mem::take(&mut self.actor),
            clean: true,
        });
    }
}

struct OpenGuard(Arc<Recorder>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.touch();
    }
}

async fn proxy_http(rec: Arc<Recorder>, req: Request<Incoming>) -> anyhow::Result<Response<Body>> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req.headers().clone();
    let body = req.into_body().collect().await?.to_bytes();
    let url = if query.is_empty() {
        format!("{}{path}", rec.target)
    } else {
        format!("{}{path}?{query}", rec.target)
    };
    let mut up = rec
        .client
        .request(reqwest::Method::from_bytes(method.as_bytes())?, &url)
        .body(body.clone());
    for h in FORWARDED {
        if let Some(v) = headers.get(h) {
            up = up.header(h, v.clone());
        }
    }
    // The exchange takes its place in the recording when the request arrives: what the server
    // sends on other connections because of it comes after it.
    let record_it = !(method == "GET" && (path == "/" || path.contains('.')));
    let slot = record_it.then(|| {
        rec.push(Observed::Http {
            actor: "http".into(),
            method: method.clone(),
            path: path.clone(),
            query: parse_query(&query),
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            origin: headers
                .get("origin")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: String::from_utf8_lossy(&body).into_owned(),
            status: 0,
            response: String::new(),
        })
    });
    let resp = up
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status().as_u16();
    let mut builder = Response::builder().status(status);
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" && k != "connection" {
            builder = builder.header(k, v.clone());
        }
    }
    let answer = resp.bytes().await?;
    if let Some(i) = slot {
        if let Some(Observed::Http {
            status: s,
            response,
            ..
        }) = rec.events.lock().expect("lock").get_mut(i)
        {
            *s = status;
            *response = String::from_utf8_lossy(&answer).into_owned();
        }
    }
    Ok(builder.body(Full::new(answer).map_err(|e| match e {}).boxed())?)
}
