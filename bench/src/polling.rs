//! The `polling` scenario: N long-polling clients in rooms of K, one publisher per room chatting
//! at a fixed total rate; deliveries/s, latency and server CPU. Two dialects of the same load:
//!
//! - `herald`: Herald's long polling (PROTOCOL.md section 10): `POST /poll`, then
//!   `GET /poll/{id}?ack=N` and `POST /poll/{id}` with `{"seq":N,"frames":[...]}`.
//! - `socketio`: Socket.IO 4 restricted to its polling transport (Engine.IO v4): `GET
//!   /socket.io/?EIO=4&transport=polling`, then polls and POSTs of `\x1e`-separated packets;
//!   `42["join",room]` and `42["chat",text]` (see `bench/reference/socketio-server.js`).
//!
//! Every client holds two keep-alive HTTP connections: one for its polls, one for its sends.
//! Each chat's text is `"<publisher> <seq> <ns>"`: who sent it, its number, and when it was due.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::account::{Counts, Receiver, Verdict};
use crate::common::{latency_json, ns_at, r1, wait_until, Metrics, Net};

/// Which server dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Herald,
    SocketIo,
}

#[derive(Debug, Clone)]
pub struct PollConfig {
    pub dialect: Dialect,
    pub clients: usize,
    pub room_size: usize,
    /// Chats per second over all publishers.
    pub per_sec: f64,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    pub connect_concurrency: usize,
    pub setup_timeout: Duration,
}

type Conn = SendRequest<Full<Bytes>>;

async fn connect(net: &Net) -> Result<Conn> {
    let tcp = net.connect(false).await?;
    let (send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// One request; the status and the whole body.
async fn request(
    conn: &mut Conn,
    net: &Net,
    method: &str,
    path: &str,
    body: Option<(&'static str, String)>,
) -> Result<(u16, Bytes)> {
    conn.ready().await.context("connection")?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, net.target.to_string());
    let body = match body {
        Some((content_type, text)) => {
            req = req.header(header::CONTENT_TYPE, content_type);
            Full::new(Bytes::from(text))
        }
        None => Full::new(Bytes::new()),
    };
    let resp = conn.send_request(req.body(body)?).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// The parsed `"<publisher> <seq> <ns>"` of a chat text.
fn parse_text(text: &str) -> Option<(usize, u64, u64)> {
    let mut parts = text.split(' ');
    let p = parts.next()?.parse().ok()?;
    let s = parts.next()?.parse().ok()?;
    let t = parts.next()?.parse().ok()?;
    Some((p, s, t))
}

/// One session of either dialect: open, join, poll, send.
enum Session {
    Herald { key: String, cursor: u64, seq: u64 },
    SocketIo { sid: String },
}

impl Session {
    async fn open(dialect: Dialect, conn: &mut Conn, net: &Net) -> Result<Session> {
        match dialect {
            Dialect::Herald => {
                let (status, body) = request(conn, net, "POST", "/poll", None).await?;
                if status != 200 {
                    bail!("POST /poll answered {status}");
                }
                let v: Value = serde_json::from_slice(&body)?;
                Ok(Session::Herald {
                    key: v["session"].as_str().context("no session id")?.to_owned(),
                    cursor: v["cursor"].as_u64().unwrap_or(0),
                    seq: 0,
                })
            }
            Dialect::SocketIo => {
                let (status, body) = request(
                    conn,
                    net,
                    "GET",
                    "/socket.io/?EIO=4&transport=polling",
                    None,
                )
                .await?;
                if status != 200 || body.first() != Some(&b'0') {
                    bail!("the Engine.IO handshake answered {status}");
                }
                let v: Value = serde_json::from_slice(&body[1..])?;
                let sid = v["sid"].as_str().context("no sid")?.to_owned();
                let mut s = Session::SocketIo { sid };
                s.post(conn, net, "40".to_owned()).await?;
                Ok(s)
            }
        }
    }

    /// Sends raw dialect payload: Herald frames JSON, or Engine.IO packets.
    async fn post(&mut self, conn: &mut Conn, net: &Net, payload: String) -> Result<()> {
        let (path, body) = match self {
            Session::Herald { key, seq, .. } => {
                *seq += 1;
                (
                    format!("/poll/{key}"),
                    (
                        "application/json",
                        format!("{{\"seq\":{seq},\"frames\":[{payload}]}}"),
                    ),
                )
            }
            Session::SocketIo { sid } => (
                format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
                ("text/plain;charset=UTF-8", payload),
            ),
        };
        let (status, answer) = request(conn, net, "POST", &path, Some(body)).await?;
        if status != 200 {
            bail!(
                "send answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(())
    }

    async fn join(&mut self, conn: &mut Conn, net: &Net, room: usize, user: usize) -> Result<()> {
        let payload = match self {
            Session::Herald { .. } => {
                json!({"type":"join","room":format!("r{room}"),"user":format!("u{user}")})
                    .to_string()
            }
            Session::SocketIo { .. } => format!("42[\"join\",\"r{room}\"]"),
        };
        self.post(conn, net, payload).await
    }

    async fn chat(&mut self, conn: &mut Conn, net: &Net, text: &str) -> Result<()> {
        let payload = match self {
            Session::Herald { .. } => json!({"type":"chat","text":text}).to_string(),
            Session::SocketIo { .. } => json!(["chat", text]).to_string(),
        };
        let payload = match self {
            Session::Herald { .. } => payload,
            Session::SocketIo { .. } => format!("42{payload}"),
        };
        self.post(conn, net, payload).await
    }

    /// One poll: the chat texts it brought; `pings` counts Engine.IO pings to answer.
    async fn poll(&mut self, conn: &mut Conn, net: &Net, pings: &mut usize) -> Result<Vec<String>> {
        let path = match self {
            Session::Herald { key, cursor, .. } => format!("/poll/{key}?ack={cursor}"),
            Session::SocketIo { sid } => format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
        };
        let (status, body) = request(conn, net, "GET", &path, None).await?;
        if status != 200 {
            bail!("poll answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let mut texts = Vec::new();
        match self {
            Session::Herald { cursor, .. } => {
                let v: Value = serde_json::from_slice(&body)?;
                *cursor = v["cursor"].as_u64().unwrap_or(*cursor);
                for frame in v["frames"].as_array().into_iter().flatten() {
                    if frame["type"] == "chat" {
                        if let Some(t) = frame["text"].as_str() {
                            texts.push(t.to_owned());
                        }
                    }
                }
                if v.get("closed").is_some() {
                    bail!("session closed: {}", v["closed"]);
                }
            }
            Session::SocketIo { .. } => {
                for packet in body.split(|&b| b == 0x1e) {
                    match packet.first() {
                        Some(b'2') => *pings += 1,
                        Some(b'1') => bail!("the server closed the Engine.IO session"),
                        Some(b'4') if packet.get(1) == Some(&b'2') => {
                            let v: Value = serde_json::from_slice(&packet[2..])?;
                            if v[0] == "chat" {
                                if let Some(t) = v[1].as_str() {
                                    texts.push(t.to_owned());
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(texts)
    }
}

#[derive(Default)]
struct Setup {
    joined: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
}

#[allow(clippy::too_many_arguments)]
async fn client(
    i: usize,
    cfg: PollConfig,
    net: Arc<Net>,
    m: Arc<Metrics>,
    sem: Arc<Semaphore>,
    setup: Arc<Setup>,
    start: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let room = i / cfg.room_size;
    let rooms = cfg.clients.div_ceil(cfg.room_size);
    let publisher = i.is_multiple_of(cfg.room_size);
    let ready = async {
        let _permit = sem.acquire().await?;
        let mut send = connect(&net).await?;
        let poll = connect(&net).await?;
        let mut session = Session::open(cfg.dialect, &mut send, &net).await?;
        session.join(&mut send, &net, room, i).await?;
        anyhow::Ok((send, poll, session))
    }
    .await;
    let (send, mut poll, mut session) = match ready {
        Ok(x) => x,
        Err(e) => {
            if setup.failed.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("client {i}: {e:#}");
            }
            return;
        }
    };
    setup.joined.fetch_add(1, Ordering::Relaxed);
    let fanout = cfg.room_size.min(cfg.clients - room * cfg.room_size) as u64;
    // The publisher's sends go on its send connection with a handle of their own (the join was
    // Herald send 1); polls go on the poll connection.
    let sender = match &session {
        Session::Herald { key, .. } => Session::Herald {
            key: key.clone(),
            cursor: 0,
            seq: 1,
        },
        Session::SocketIo { sid } => Session::SocketIo { sid: sid.clone() },
    };
    // A client that only listens lets its send connection go once it has joined (a server
    // would close it when idle anyway): it holds one connection, its poll's.
    let mut send = publisher.then_some(send);
    let publishing = async {
        let Some(send) = send.as_mut() else {
            return std::future::pending::<Result<()>>().await;
        };
        publish(room, rooms, fanout, &cfg, &net, &m, start, sender, send).await
    };
    let receiving = receive(i, room, &net, &m, &mut session, &mut poll);
    let outcome = tokio::select! {
        biased;
        _ = async { let _ = stop.wait_for(|s| *s).await; } => Ok(()),
        r = publishing => r,
        r = receiving => r,
    };
    if let Err(e) = outcome {
        if setup.closed.fetch_add(1, Ordering::Relaxed) < 3 {
            eprintln!("client {i}: {e:#}");
        }
        m.conn_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A room's publisher: chats at its share of the rate until the window ends.
#[allow(clippy::too_many_arguments)]
async fn publish(
    room: usize,
    rooms: usize,
    fanout: u64,
    cfg: &PollConfig,
    net: &Net,
    m: &Metrics,
    mut start: watch::Receiver<bool>,
    mut sender: Session,
    send: &mut Conn,
) -> Result<()> {
    let _ = start.wait_for(|s| *s).await;
    let period = Duration::from_secs_f64(rooms as f64 / cfg.per_sec);
    let offset = period.mul_f64(room as f64 / rooms as f64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = m.window_end.load(Ordering::Relaxed);
    let mut seq = 0u64;
    loop {
        // Stamped with the tick's deadline: a late answer shows in the latency.
        let ts = ns_at(tick.tick().await.into_std());
        if ts >= end {
            return std::future::pending::<Result<()>>().await;
        }
        m.on_send_lag(ts, room);
        sender
            .chat(send, net, &format!("{room} {seq} {ts}"))
            .await?;
        m.on_send(ts, fanout);
        seq += 1;
    }
}

/// A client's polls: every chat counted once, Engine.IO pings answered.
async fn receive(
    i: usize,
    room: usize,
    net: &Net,
    m: &Metrics,
    session: &mut Session,
    poll: &mut Conn,
) -> Result<()> {
    let mut receiver = Receiver::default();
    let mut pings = 0;
    loop {
        let texts = session.poll(poll, net, &mut pings).await?;
        for text in texts {
            let Some((p, s, ts)) = parse_text(&text) else {
                m.other_frames.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let verdict = if p == room {
                receiver.see(0, s)
            } else {
                Verdict::Misrouted
            };
            m.on_delivery(ts, i, verdict);
        }
        while pings > 0 {
            pings -= 1;
            // An Engine.IO ping comes on a poll; its pong is a POST (here on the poll's
            // connection, which is free between polls).
            session.post(poll, net, "3".to_owned()).await?;
        }
    }
}

pub async fn run_polling(net: Arc<Net>, cfg: PollConfig, pid: Option<u32>) -> Result<Value> {
    if cfg.per_sec <= 0.0 || cfg.clients == 0 || cfg.room_size == 0 {
        bail!("--rate, --clients and --room-size must be positive");
    }
    let m = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (start_tx, start_rx) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(cfg.connect_concurrency.max(1)));
    let setup = Arc::new(Setup::default());
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..cfg.clients {
        tasks.push(tokio::spawn(client(
            i,
            cfg.clone(),
            net.clone(),
            m.clone(),
            sem.clone(),
            setup.clone(),
            start_rx.clone(),
            stop_rx.clone(),
        )));
    }
    let n = cfg.clients as u64;
    wait_until(cfg.setup_timeout, || {
        setup.joined.load(Ordering::Relaxed) + setup.failed.load(Ordering::Relaxed) >= n
    })
    .await;
    let setup_secs = t0.elapsed().as_secs_f64();
    // Let the joins settle (their presence frames are polled away) before the window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    m.open_window(cfg.warmup, cfg.duration);
    let _ = start_tx.send(true);
    let cpu = crate::common::measure_cpu(pid, cfg.warmup, cfg.duration).await;
    tokio::time::sleep(cfg.drain).await;
    let _ = stop_tx.send(true);
    crate::common::join_tasks(tasks).await;
    let secs = cfg.duration.as_secs_f64();
    let mut results = Counts::of(&m).json(secs);
    results["target_sends_per_sec"] = json!(cfg.per_sec);
    results["connections_closed_early"] = json!(m.conn_closed.load(Ordering::Relaxed));
    results["latency"] = latency_json(&m.histogram());
    results["send_lag"] = latency_json(&m.lag_histogram());
    let deliveries = results["deliveries_per_sec"].as_f64().unwrap_or(0.0);
    let per_core = cpu["server_cpu_pct"]
        .as_f64()
        .filter(|pct| *pct > 0.0)
        .map(|pct| r1(deliveries / (pct / 100.0)));
    results["deliveries_per_server_cpu_second"] = json!(per_core);
    let joined = setup.joined.load(Ordering::Relaxed);
    Ok(json!({
        "params": {
            "dialect": match cfg.dialect { Dialect::Herald => "herald", Dialect::SocketIo => "socketio" },
            "clients": cfg.clients,
            "room_size": cfg.room_size,
            "chats_per_sec": cfg.per_sec,
            "warmup_s": cfg.warmup.as_secs_f64(),
            "duration_s": secs,
            "drain_s": cfg.drain.as_secs_f64(),
        },
        "setup": {
            "joined": joined,
            "join_failed": setup.failed.load(Ordering::Relaxed),
            "joins_per_sec": r1(joined as f64 / setup_secs.max(1e-9)),
        },
        "results": results,
        "cpu": cpu,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_texts_parse() {
        assert_eq!(parse_text("3 17 123456"), Some((3, 17, 123456)));
        assert_eq!(parse_text("3 17"), None);
        assert_eq!(parse_text("a b c"), None);
    }
}
