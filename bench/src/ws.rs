//! WebSocket scenarios: `idle`, `fanout`, `fanout-max` and `handshake`.
//!
//! Everything here is plain JSON over the wire contract: `welcome` on connect, `join` answered by
//! `room_joined`, `chat` delivered to every member of the room, the sender included.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::account::{Counts, Layout, Receiver, Verdict};
use crate::common::{latency_json, now_ns, ns_at, r1, r2, wait_quiet, wait_until, Metrics, Net};

use crate::rawws::{Frame, RawWs};

/// What the publishers do during the run.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Nobody publishes: connections only.
    Idle,
    /// `publishers` clients send chat at a fixed total rate (messages/s), open loop.
    Rate { publishers: usize, per_sec: f64 },
    /// `publishers` clients each keep `window` chats in flight, sending the next one when their
    /// own chat comes back (closed loop).
    Max { publishers: usize, window: usize },
}

/// One rooms run.
#[derive(Debug, Clone)]
pub struct RoomsConfig {
    pub clients: usize,
    pub room_size: usize,
    pub load: Load,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    pub connect_concurrency: usize,
    pub payload: usize,
    pub setup_timeout: Duration,
    /// Join with `"presence":"diff"` (capability `presence-diff`).
    pub presence_diff: bool,
}

const CONNECT: u8 = 0;
const JOIN: u8 = 1;
const RUN: u8 = 2;
const STOP: u8 = 3;

struct Ctx {
    net: Arc<Net>,
    cfg: RoomsConfig,
    phase: watch::Receiver<u8>,
    sem: Semaphore,
    connected: AtomicU64,
    connect_failed: AtomicU64,
    joined: AtomicU64,
    join_failed: AtomicU64,
    handshake: Metrics,
    m: Metrics,
    padding: String,
    layout: Layout,
}

impl RoomsConfig {
    fn layout(&self) -> Layout {
        let publishers = match self.load {
            Load::Idle => 0,
            Load::Rate { publishers, .. } | Load::Max { publishers, .. } => publishers,
        };
        Layout {
            clients: self.clients,
            room_size: self.room_size,
            publishers,
        }
    }
}

/// Opens a WebSocket to the target and waits for its `welcome` frame.
async fn open(net: &Net, reset: bool) -> Result<RawWs> {
    let tcp = net.connect(reset).await?;
    let mut ws = RawWs::connect(tcp, &net.target.to_string()).await?;
    let welcome = async {
        while let Some(r) = ws.next_text().await? {
            if ws.text(r).contains("\"welcome\"") {
                return Ok(());
            }
        }
        bail!("closed before welcome")
    };
    match tokio::time::timeout(Duration::from_secs(30), welcome).await {
        Ok(Ok(())) => Ok(ws),
        Ok(Err(e)) => Err(e),
        Err(_) => bail!("no welcome frame within 30 s"),
    }
}

/// One chat as this tool writes it: text `b<publisher>s<sequence>t<ns>` then padding (plain
/// alphanumerics, which a sanitiser leaves alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chat {
    publisher: usize,
    seq: u64,
    /// When the chat was due to be sent (see [`send_chat`]), on the [`now_ns`] clock.
    ts: u64,
}

/// Reads a decimal number at the start of `rest`; `None` without a digit or on overflow.
fn number(rest: &[u8]) -> Option<(u64, &[u8])> {
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let v = rest[..digits]
        .iter()
        .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
    Some((v, &rest[digits..]))
}

/// Extracts a chat this tool wrote from a frame, without a full JSON parse.
fn parse_chat(frame: &str) -> Option<Chat> {
    let head = &frame[..frame.len().min(24)];
    if !(head.contains("\"type\":\"chat\"") || frame.contains("\"type\":\"chat\"")) {
        return None;
    }
    let at = memchr::memmem::find(frame.as_bytes(), b"\"text\":\"b")? + 9;
    let (publisher, rest) = number(&frame.as_bytes()[at..])?;
    let (seq, rest) = number(rest.strip_prefix(b"s")?)?;
    let (ts, _) = number(rest.strip_prefix(b"t")?)?;
    Some(Chat {
        publisher: usize::try_from(publisher).ok()?,
        seq,
        ts,
    })
}

/// Sends chat number `seq` of `publisher`, stamped with `ts`: the time it was due, not the time
/// it goes out, so a send that the server (or this tool) held back is charged with the wait
/// (no coordinated omission).
async fn send_chat(ws: &mut RawWs, ctx: &Ctx, chat: Chat, fanout: u64) -> bool {
    let Chat { publisher, seq, ts } = chat;
    let frame = format!(
        "{{\"type\":\"chat\",\"text\":\"b{publisher}s{seq}t{ts}{}\"}}",
        ctx.padding
    );
    ctx.m.on_send(ts, fanout);
    ctx.m.on_send_lag(ts, publisher);
    if ws.send_text(&frame).await.is_err() {
        ctx.m.send_errors.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    true
}

async fn client(i: usize, ctx: Arc<Ctx>) {
    let mut phase = ctx.phase.clone();
    let (t0, ws) = {
        let _permit = ctx.sem.acquire().await.expect("semaphore open");
        // The clock starts once this tool lets the attempt go: time spent queued behind its own
        // --connect-concurrency is not the server's.
        let t0 = now_ns();
        (t0, open(&ctx.net, false).await)
    };
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            if ctx.connect_failed.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("client {i}: connect failed: {e:#}");
            }
            return;
        }
    };
    ctx.handshake.record(now_ns() - t0, i);
    ctx.connected.fetch_add(1, Ordering::Relaxed);

    if phase.wait_for(|p| *p >= JOIN).await.is_err() {
        return;
    }
    let room = ctx.layout.room_of(i);
    let presence = if ctx.cfg.presence_diff {
        ",\"presence\":\"diff\""
    } else {
        ""
    };
    let join =
        format!("{{\"type\":\"join\",\"room\":\"bench-{room}\",\"user\":\"u{i}\"{presence}}}");
    if ws.send_text(&join).await.is_err() {
        ctx.join_failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let joined = async {
        while let Some(r) = ws.next_text().await? {
            let s = ws.text(r);
            if s.contains("\"room_joined\"") {
                return Ok(());
            }
            if s.contains("\"error\"") && ctx.join_failed.load(Ordering::Relaxed) < 3 {
                eprintln!("client {i}: join answered with {s}");
            }
            ctx.m.other_frames.fetch_add(1, Ordering::Relaxed);
        }
        bail!("closed")
    };
    if joined.await.is_err() {
        ctx.join_failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    ctx.joined.fetch_add(1, Ordering::Relaxed);

    if phase.wait_for(|p| *p >= RUN).await.is_err() {
        return;
    }
    let fanout = ctx.layout.room_len(room) as u64;
    let publisher = ctx.layout.publisher_of(i);
    let end = ctx.m.window_end.load(Ordering::Relaxed);
    let mut sending = publisher.is_some();
    let mut ticker = None;
    let mut receiver = Receiver::default();
    // This publisher's next sequence number.
    let mut seq = 0u64;
    let mut next_chat = |ts: u64| {
        seq += 1;
        Chat {
            publisher: publisher.unwrap_or(0),
            seq: seq - 1,
            ts,
        }
    };
    match (publisher, ctx.cfg.load) {
        (
            Some(p),
            Load::Rate {
                publishers,
                per_sec,
            },
        ) => {
            let period = Duration::from_secs_f64(publishers as f64 / per_sec);
            let offset = period.mul_f64(p as f64 / publishers as f64);
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            ticker = Some(t);
        }
        (Some(_), Load::Max { window, .. }) => {
            // Closed loop: there is no schedule, so a chat is due when it is sent.
            for _ in 0..window {
                if !send_chat(&mut ws, &ctx, next_chat(now_ns()), fanout).await {
                    sending = false;
                    break;
                }
            }
        }
        _ => {}
    }
    let is_max = matches!(ctx.cfg.load, Load::Max { .. });
    {
        // Made once: a fresh watch future per frame would register and deregister a waiter on
        // every delivery.
        let stop = async {
            let _ = phase.wait_for(|p| *p >= STOP).await;
        };
        tokio::pin!(stop);
        'run: loop {
            // Everything already buffered first, then wait for more bytes or the next tick.
            loop {
                let frame = match ws.parse() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(_) => {
                        ctx.m.conn_closed.fetch_add(1, Ordering::Relaxed);
                        break 'run;
                    }
                };
                match frame {
                    Frame::Text(r) => match parse_chat(ws.text(r)) {
                        Some(chat) => {
                            let verdict =
                                receiver.see_chat(&ctx.layout, room, chat.publisher, chat.seq);
                            ctx.m.on_delivery(chat.ts, i, verdict);
                            // Only the first copy of its own chat frees a slot of the window.
                            if is_max
                                && verdict == Verdict::New
                                && publisher == Some(chat.publisher)
                                && sending
                                && now_ns() < end
                                && !send_chat(&mut ws, &ctx, next_chat(now_ns()), fanout).await
                            {
                                sending = false;
                            }
                        }
                        None => _ = ctx.m.other_frames.fetch_add(1, Ordering::Relaxed),
                    },
                    Frame::Ping(r) => {
                        if ws.answer_ping(r).await.is_err() {
                            ctx.m.conn_closed.fetch_add(1, Ordering::Relaxed);
                            break 'run;
                        }
                    }
                    Frame::Close => {
                        ctx.m.conn_closed.fetch_add(1, Ordering::Relaxed);
                        break 'run;
                    }
                    Frame::Other => {}
                }
            }
            let tick = async {
                match ticker.as_mut() {
                    Some(t) => t.tick().await,
                    None => std::future::pending().await,
                }
            };
            // A due send goes before reading: with scheduled stamps, a send this tool delays
            // while it reads would be charged to the server.
            tokio::select! {
                biased;
                _ = &mut stop => break,
                due = tick, if sending => {
                    // The tick's own deadline, even when it fires late (missed ticks fire at
                    // once, in a burst, each with its own deadline).
                    let ts = ns_at(due.into_std());
                    sending = ts < end && send_chat(&mut ws, &ctx, next_chat(ts), fanout).await;
                }
                more = ws.fill() => {
                    if !matches!(more, Ok(true)) {
                        ctx.m.conn_closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
    }
    // Wait for the stop signal even if the connection ended early, then close quietly.
    let _ = phase.wait_for(|p| *p >= STOP).await;
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close()).await;
}

/// Runs one rooms scenario and returns its JSON result.
pub async fn run_rooms(net: Arc<Net>, cfg: RoomsConfig, pid: Option<u32>) -> Result<Value> {
    if cfg.clients == 0 || cfg.room_size == 0 {
        bail!("--clients and --room-size must be positive");
    }
    let (phase_tx, phase_rx) = watch::channel(CONNECT);
    let ctx = Arc::new(Ctx {
        net,
        phase: phase_rx,
        sem: Semaphore::new(cfg.connect_concurrency.max(1)),
        connected: AtomicU64::new(0),
        connect_failed: AtomicU64::new(0),
        joined: AtomicU64::new(0),
        join_failed: AtomicU64::new(0),
        handshake: Metrics::new(),
        m: Metrics::new(),
        padding: "a".repeat(cfg.payload),
        layout: cfg.layout(),
        cfg: cfg.clone(),
    });
    let n = cfg.clients as u64;
    let rss_before = pid.and_then(crate::sys::rss_kib);

    let t_connect = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.clients);
    for i in 0..cfg.clients {
        tasks.push(tokio::spawn(client(i, ctx.clone())));
    }
    wait_until(cfg.setup_timeout, || {
        ctx.connected.load(Ordering::Relaxed) + ctx.connect_failed.load(Ordering::Relaxed) >= n
    })
    .await;
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let connected = ctx.connected.load(Ordering::Relaxed);

    let _ = phase_tx.send(JOIN);
    let t_join = Instant::now();
    wait_until(cfg.setup_timeout, || {
        ctx.joined.load(Ordering::Relaxed) + ctx.join_failed.load(Ordering::Relaxed) >= connected
    })
    .await;
    let join_secs = t_join.elapsed().as_secs_f64();
    let joined = ctx.joined.load(Ordering::Relaxed);
    // Let presence traffic (user_joined to every member) die down before measuring.
    wait_quiet(
        &ctx.m.other_frames,
        Duration::from_millis(300),
        cfg.setup_timeout,
    )
    .await;
    let settle_secs = t_join.elapsed().as_secs_f64() - join_secs;
    let rss_joined = pid.and_then(crate::sys::rss_kib);

    ctx.m.open_window(cfg.warmup, cfg.duration);
    let _ = phase_tx.send(RUN);
    let cpu = crate::common::measure_cpu(pid, cfg.warmup, cfg.duration).await;
    let rss_end = pid.and_then(crate::sys::rss_kib);
    tokio::time::sleep(cfg.drain).await;
    let _ = phase_tx.send(STOP);
    let m = &ctx.m;
    let counts = Counts::of(m);
    let closed = m.conn_closed.load(Ordering::Relaxed);
    let send_errors = m.send_errors.load(Ordering::Relaxed);
    let hist = m.histogram();
    let hs = ctx.handshake.histogram();
    crate::common::join_tasks(tasks).await;

    let secs = cfg.duration.as_secs_f64();
    let per_conn = |after: Option<u64>| match (rss_before, after) {
        (Some(b), Some(a)) if connected > 0 => {
            json!(r1((a as f64 - b as f64) * 1024.0 / connected as f64))
        }
        _ => Value::Null,
    };
    let (load, publishers) = match cfg.load {
        Load::Idle => (json!({"kind": "idle"}), 0),
        Load::Rate {
            publishers,
            per_sec,
        } => (
            json!({"kind": "rate", "publishers": publishers, "messages_per_sec": per_sec}),
            publishers,
        ),
        Load::Max { publishers, window } => (
            json!({"kind": "closed_loop", "publishers": publishers, "window": window}),
            publishers,
        ),
    };
    let _ = publishers;
    let target_rate = match cfg.load {
        Load::Rate { per_sec, .. } => json!(per_sec),
        _ => Value::Null,
    };
    let mut results = counts.json(secs);
    results["target_sends_per_sec"] = target_rate;
    results["send_errors"] = json!(send_errors);
    results["connections_closed_early"] = json!(closed);
    results["latency"] = latency_json(&hist);
    results["send_lag"] = latency_json(&m.lag_histogram());
    Ok(json!({
        "params": {
            "clients": cfg.clients,
            "room_size": cfg.room_size,
            "rooms": ctx.layout.rooms(),
            "load": load,
            "payload_bytes": cfg.payload,
            "warmup_s": cfg.warmup.as_secs_f64(),
            "duration_s": secs,
            "drain_s": cfg.drain.as_secs_f64(),
            "source_addrs": ctx.net.n_sources(),
        },
        "setup": {
            "connected": connected,
            "connect_failed": ctx.connect_failed.load(Ordering::Relaxed),
            "connect_s": r2(connect_secs),
            "handshakes_per_sec": r1(connected as f64 / connect_secs.max(1e-9)),
            "handshake_latency": latency_json(&hs),
            "joined": joined,
            "join_failed": ctx.join_failed.load(Ordering::Relaxed),
            "join_s": r2(join_secs),
            "joins_per_sec": r1(joined as f64 / join_secs.max(1e-9)),
            "settle_s": r2(settle_secs),
        },
        "memory": {
            "server_pid": pid,
            "rss_before_kib": rss_before,
            "rss_joined_kib": rss_joined,
            "rss_end_kib": rss_end,
            "bytes_per_conn_joined": per_conn(rss_joined),
            "bytes_per_conn_end": per_conn(rss_end),
        },
        "results": results,
        "cpu": cpu,
    }))
}

/// One handshake-rate run: `concurrency` loops each connect, wait for `welcome`, and close (with
/// RST, so no TIME_WAIT piles up), for warmup + duration.
pub async fn run_handshakes(
    net: Arc<Net>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    pid: Option<u32>,
) -> Result<Value> {
    let m = Arc::new(Metrics::new());
    let start = now_ns() + warmup.as_nanos() as u64;
    let end = start + duration.as_nanos() as u64;
    m.window_start.store(start, Ordering::Relaxed);
    m.window_end.store(end, Ordering::Relaxed);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1) {
        let (net, m, done, failed) = (net.clone(), m.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while now_ns() < end {
                let t0 = now_ns();
                match open(&net, true).await {
                    Ok(ws) => {
                        if m.in_window(t0) {
                            m.record(now_ns() - t0, w);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        drop(ws);
                    }
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("handshake failed: {e:#}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    let cpu = crate::common::measure_cpu(pid, warmup, duration).await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(35), t).await;
    }
    let n = done.load(Ordering::Relaxed);
    Ok(json!({
        "params": {
            "concurrency": concurrency,
            "warmup_s": warmup.as_secs_f64(),
            "duration_s": duration.as_secs_f64(),
            "source_addrs": net.n_sources(),
        },
        "results": {
            "handshakes": n,
            "handshakes_per_sec": r1(n as f64 / duration.as_secs_f64()),
            "failed": failed.load(Ordering::Relaxed),
            "latency": latency_json(&m.histogram()),
        },
        "cpu": cpu,
    }))
}

#[cfg(test)]
mod tests {
    use super::{parse_chat, Chat};

    #[test]
    fn parses_own_chat_frames() {
        let f = r#"{"type":"chat","id":"x","user":"u1","text":"b12s7t3456aaa","timestamp":"t","room":"r","offset":1}"#;
        assert_eq!(
            parse_chat(f),
            Some(Chat {
                publisher: 12,
                seq: 7,
                ts: 3456
            })
        );
        assert_eq!(
            parse_chat(r#"{"type":"user_joined","text":"b1s2t3"}"#),
            None
        );
        assert_eq!(
            parse_chat(r#"{"type":"chat","text":"hello"}"#),
            None,
            "foreign chat text is not counted"
        );
        for bad in [
            "b1x2",
            "b1s2",
            "b1s2t",
            "bs2t3",
            "b1st3",
            "b99999999999999999999s1t1",
        ] {
            let f = format!(r#"{{"type":"chat","text":"{bad}"}}"#);
            assert_eq!(parse_chat(&f), None, "{bad}");
        }
    }
}
