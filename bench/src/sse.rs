//! The `sse` scenario: many `GET /events` streams while `POST /updates` runs at a fixed rate.
//! Each update's `data` carries `{"benchTs": <ns>, "poster": <p>, "seq": <n>}`: the time it was
//! due to be posted, which poster sent it and that poster's sequence number.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1;
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use herald_protocol::event_stream::{SseEvent, SseParser};

use crate::account::{Counts, Receiver, Verdict};
use crate::common::{latency_json, ns_at, r1, wait_until, Metrics, Net};

#[derive(Debug, Clone)]
pub struct SseConfig {
    pub streams: usize,
    pub per_sec: f64,
    pub posters: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    pub connect_concurrency: usize,
    pub setup_timeout: Duration,
}

/// Finds `"<key>":<digits>` in an update's data line.
fn parse_field(data: &[u8], key: &[u8]) -> Option<u64> {
    let mut pattern = Vec::with_capacity(key.len() + 3);
    pattern.push(b'"');
    pattern.extend_from_slice(key);
    pattern.extend_from_slice(b"\":");
    let at = memchr::memmem::find(data, &pattern)? + pattern.len();
    let rest = data[at..].trim_ascii_start();
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// (poster, sequence, due time) of an update this tool posted.
fn parse_update(data: &[u8]) -> Option<(u64, u64, u64)> {
    Some((
        parse_field(data, b"poster")?,
        parse_field(data, b"seq")?,
        parse_field(data, b"benchTs")?,
    ))
}

/// Handles one SSE event. Every stream should get every update once; one from a poster that does
/// not exist counts as misrouted.
fn on_event(event: &SseEvent, m: &Metrics, who: usize, posters: usize, receiver: &mut Receiver) {
    let is_update = event.event == "update";
    let update = parse_update(event.data.as_bytes());
    match (is_update, update) {
        (true, Some((poster, seq, ts))) => {
            let verdict = match usize::try_from(poster) {
                Ok(p) if p < posters => receiver.see(p, seq),
                _ => Verdict::Misrouted,
            };
            m.on_delivery(ts, who, verdict);
        }
        _ => {
            m.other_frames.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Streams opened and streams that failed to open.
#[derive(Default)]
struct Opened {
    ok: AtomicU64,
    failed: AtomicU64,
}

async fn stream(
    i: usize,
    net: Arc<Net>,
    m: Arc<Metrics>,
    sem: Arc<Semaphore>,
    opened_count: Arc<Opened>,
    mut stop: watch::Receiver<bool>,
    posters: usize,
) {
    let Opened { ok, failed } = &*opened_count;
    let opened = async {
        let _permit = sem.acquire().await?;
        let tcp = net.connect(false).await?;
        let (mut send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let req = Request::get("/events")
            .header(header::HOST, net.target.to_string())
            .header(header::ACCEPT, "text/event-stream")
            .body(Empty::<Bytes>::new())?;
        let resp = send.send_request(req).await?;
        if !resp.status().is_success() {
            bail!("GET /events answered {}", resp.status());
        }
        anyhow::Ok((send, resp.into_body()))
    }
    .await;
    let (_send, mut body) = match opened {
        Ok(x) => x,
        Err(e) => {
            if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("stream {i}: {e:#}");
            }
            return;
        }
    };
    ok.fetch_add(1, Ordering::Relaxed);
    let mut parser = SseParser::default();
    let mut receiver = Receiver::default();
    loop {
        tokio::select! {
            biased;
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            f = body.frame() => match f {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        for event in parser.push(&data) {
                            on_event(&event, &m, i, posters, &mut receiver);
                        }
                    }
                }
                _ => {
                    m.conn_closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

async fn poster(
    p: usize,
    cfg: SseConfig,
    net: Arc<Net>,
    m: Arc<Metrics>,
    streams: Arc<AtomicU64>,
    http_errors: Arc<AtomicU64>,
) -> Result<()> {
    let tcp = net.connect(false).await?;
    let (mut send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let period = Duration::from_secs_f64(cfg.posters as f64 / cfg.per_sec);
    let offset = period.mul_f64(p as f64 / cfg.posters as f64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = m.window_end.load(Ordering::Relaxed);
    let mut seq = 0u64;
    loop {
        // Stamped with the tick's deadline, not the time the POST goes out: when an answer comes
        // late, the missed ticks fire at once and their updates carry the wait (no coordinated
        // omission).
        let ts = ns_at(tick.tick().await.into_std());
        if ts >= end {
            return Ok(());
        }
        let body = format!(
            "{{\"resource\":\"bench\",\"action\":\"tick\",\"data\":{{\"benchTs\":{ts},\"poster\":{p},\"seq\":{seq}}}}}"
        );
        let req = Request::post("/updates")
            .header(header::HOST, net.target.to_string())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        seq += 1;
        send.ready().await.context("update connection")?;
        m.on_send_lag(ts, p);
        let resp = send.send_request(req).await.context("POST /updates")?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            m.on_send(ts, streams.load(Ordering::Relaxed));
        } else if http_errors.fetch_add(1, Ordering::Relaxed) < 3 {
            eprintln!("POST /updates answered {status}");
        }
    }
}

pub async fn run_sse(net: Arc<Net>, cfg: SseConfig, pid: Option<u32>) -> Result<Value> {
    if cfg.per_sec <= 0.0 || cfg.posters == 0 {
        bail!("--rate and --posters must be positive");
    }
    let m = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(cfg.connect_concurrency.max(1)));
    let opened = Arc::new(Opened::default());
    let (ok, failed) = (&opened.ok, &opened.failed);
    let rss_before = pid.and_then(crate::sys::rss_kib);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..cfg.streams {
        tasks.push(tokio::spawn(stream(
            i,
            net.clone(),
            m.clone(),
            sem.clone(),
            opened.clone(),
            stop_rx.clone(),
            cfg.posters,
        )));
    }
    let n = cfg.streams as u64;
    wait_until(cfg.setup_timeout, || {
        ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) >= n
    })
    .await;
    let connect_secs = t0.elapsed().as_secs_f64();
    let streams = Arc::new(AtomicU64::new(ok.load(Ordering::Relaxed)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_open = pid.and_then(crate::sys::rss_kib);

    m.open_window(cfg.warmup, cfg.duration);
    let http_errors = Arc::new(AtomicU64::new(0));
    let mut posters = Vec::new();
    for p in 0..cfg.posters {
        posters.push(tokio::spawn(poster(
            p,
            cfg.clone(),
            net.clone(),
            m.clone(),
            streams.clone(),
            http_errors.clone(),
        )));
    }
    let cpu = crate::common::measure_cpu(pid, cfg.warmup, cfg.duration).await;
    tokio::time::sleep(cfg.drain).await;
    let _ = stop_tx.send(true);
    let poster_errors = crate::common::poster_errors(posters).await;
    crate::common::join_tasks(tasks).await;
    let secs = cfg.duration.as_secs_f64();
    let connected = streams.load(Ordering::Relaxed);
    let mut results = Counts::of(&m).json(secs);
    results["target_sends_per_sec"] = json!(cfg.per_sec);
    results["http_errors"] = json!(http_errors.load(Ordering::Relaxed));
    results["poster_errors"] = json!(poster_errors);
    results["streams_closed_early"] = json!(m.conn_closed.load(Ordering::Relaxed));
    results["latency"] = latency_json(&m.histogram());
    results["send_lag"] = latency_json(&m.lag_histogram());
    Ok(json!({
        "params": {
            "streams": cfg.streams,
            "updates_per_sec": cfg.per_sec,
            "posters": cfg.posters,
            "warmup_s": cfg.warmup.as_secs_f64(),
            "duration_s": secs,
            "drain_s": cfg.drain.as_secs_f64(),
            "source_addrs": net.n_sources(),
        },
        "setup": {
            "connected": connected,
            "connect_failed": failed.load(Ordering::Relaxed),
            "connects_per_sec": r1(connected as f64 / connect_secs.max(1e-9)),
        },
        "memory": {
            "server_pid": pid,
            "rss_before_kib": rss_before,
            "rss_open_kib": rss_open,
            "bytes_per_stream": match (rss_before, rss_open) {
                (Some(b), Some(a)) if connected > 0 => json!(r1((a as f64 - b as f64) * 1024.0 / connected as f64)),
                _ => Value::Null,
            },
        },
        "results": results,
        "cpu": cpu,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_update_fields() {
        let d = br#" {"resource":"bench","action":"tick","data":{"benchTs":98765,"poster":3,"seq": 12},"timestamp":"x"}"#;
        assert_eq!(parse_update(d), Some((3, 12, 98765)));
        assert_eq!(parse_update(b"{}"), None);
        assert_eq!(parse_update(br#"{"benchTs":1,"poster":0}"#), None);
    }

    #[test]
    fn a_repeated_update_counts_once_per_stream() {
        let m = Metrics::new();
        m.window_start.store(0, Ordering::Relaxed);
        m.window_end.store(u64::MAX - 1, Ordering::Relaxed);
        let event = |poster: u64, seq: u64| {
            format!(
                "id: 7\nevent: update\ndata: {{\"data\":{{\"benchTs\":5,\"poster\":{poster},\"seq\":{seq}}}}}"
            )
        };
        let (mut a, mut b) = (Receiver::default(), Receiver::default());
        let feed = |text: &str, who: usize, r: &mut Receiver| {
            for e in SseParser::default().push(format!("{text}\n\n").as_bytes()) {
                on_event(&e, &m, who, 2, r);
            }
        };
        for (who, r) in [(0, &mut a), (1, &mut b)] {
            feed(&event(0, 0), who, r);
            feed(&event(1, 0), who, r);
        }
        feed(&event(1, 0), 0, &mut a);
        feed(&event(2, 0), 0, &mut a);
        feed("event: ping\ndata: {}", 0, &mut a);
        let c = Counts::of(&m);
        assert_eq!((c.delivered, c.duplicates, c.misrouted), (4, 1, 1));
        assert_eq!(m.other_frames.load(Ordering::Relaxed), 1);
    }
}
