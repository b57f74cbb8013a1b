//! The `streams` scenario (capability `streams`): N subscribers of one data stream over SSE
//! (`GET /events?stream=ID`, with `maxRate` when conflation is on) while posters publish points
//! at a fixed total rate with `POST /streams/{id}/points`, in batches. Each point's value is the
//! time it was due to be posted (ns on this tool's clock), so a delivered `stream_point` gives its
//! latency; its offset numbers it. With conflation a frame stands for `conflated` points: the
//! scenario reports frames delivered per second, points accounted for per second, and the
//! latency of the point each frame carries (the newest of those it stands for).

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
use crate::common::{latency_json, now_ns, ns_at, r1, wait_until, Metrics, Net};

#[derive(Debug, Clone)]
pub struct StreamsConfig {
    pub subscribers: usize,
    /// Points per second, over all posters.
    pub points_per_sec: f64,
    /// Points per POST.
    pub batch: usize,
    pub posters: usize,
    /// Each subscriber's `maxRate` (conflation on); `None`: every point.
    pub max_rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    pub connect_concurrency: usize,
    pub setup_timeout: Duration,
}

/// The number after `"<key>":` in an event's data (digits, a point, an exponent).
fn number_after(data: &[u8], key: &[u8]) -> Option<f64> {
    let mut pattern = Vec::with_capacity(key.len() + 3);
    pattern.push(b'"');
    pattern.extend_from_slice(key);
    pattern.extend_from_slice(b"\":");
    let at = memchr::memmem::find(data, &pattern)? + pattern.len();
    let rest = &data[at..];
    let len = rest
        .iter()
        .take_while(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'))
        .count();
    std::str::from_utf8(&rest[..len]).ok()?.parse().ok()
}

/// (offset, due time in ns, points it stands for) of a `stream_point` event's data.
fn parse_point(data: &[u8]) -> Option<(u64, u64, u64)> {
    let offset = number_after(data, b"offset")? as u64;
    let ts = number_after(data, b"value")? as u64;
    let conflated = number_after(data, b"conflated").map_or(1, |n| n as u64);
    Some((offset, ts, conflated))
}

/// Per-run counters beyond [`Metrics`].
#[derive(Default)]
struct Extra {
    /// Points the in-window frames stand for (1 each, or `conflated`).
    accounted: AtomicU64,
    opened: AtomicU64,
    open_failed: AtomicU64,
}

fn on_event(event: &SseEvent, m: &Metrics, extra: &Extra, who: usize, receiver: &mut Receiver) {
    if event.event != "stream_point" {
        m.other_frames.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Some((offset, ts, points)) = parse_point(event.data.as_bytes()) else {
        m.other_frames.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let verdict = receiver.see(0, offset);
    if verdict == Verdict::New && m.in_window(ts) {
        extra.accounted.fetch_add(points, Ordering::Relaxed);
    }
    m.on_delivery(ts, who, verdict);
}

#[allow(clippy::too_many_arguments)]
async fn subscriber(
    i: usize,
    path: String,
    net: Arc<Net>,
    m: Arc<Metrics>,
    extra: Arc<Extra>,
    sem: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let opened = async {
        let _permit = sem.acquire().await?;
        let tcp = net.connect(false).await?;
        let (mut send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let req = Request::get(path.as_str())
            .header(header::HOST, net.target.to_string())
            .header(header::ACCEPT, "text/event-stream")
            .body(Empty::<Bytes>::new())?;
        let resp = send.send_request(req).await?;
        if !resp.status().is_success() {
            bail!("GET {path} answered {}", resp.status());
        }
        anyhow::Ok((send, resp.into_body()))
    }
    .await;
    let (_send, mut body) = match opened {
        Ok(x) => x,
        Err(e) => {
            if extra.open_failed.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("subscriber {i}: {e:#}");
            }
            return;
        }
    };
    extra.opened.fetch_add(1, Ordering::Relaxed);
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
                            on_event(&event, &m, &extra, i, &mut receiver);
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
    stream: String,
    cfg: StreamsConfig,
    net: Arc<Net>,
    m: Arc<Metrics>,
    subscribers: Arc<AtomicU64>,
    http_errors: Arc<AtomicU64>,
) -> Result<()> {
    let tcp = net.connect(false).await?;
    let (mut send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let posts_per_sec = cfg.points_per_sec / cfg.batch as f64;
    let period = Duration::from_secs_f64(cfg.posters as f64 / posts_per_sec);
    let offset = period.mul_f64(p as f64 / cfg.posters as f64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = m.window_end.load(Ordering::Relaxed);
    let path = format!("/streams/{stream}/points");
    loop {
        // Stamped with the tick's deadline (no coordinated omission).
        let ts = ns_at(tick.tick().await.into_std());
        if ts >= end {
            return Ok(());
        }
        let mut body = String::with_capacity(cfg.batch * 24 + 16);
        body.push_str("{\"points\":[");
        for k in 0..cfg.batch {
            if k > 0 {
                body.push(',');
            }
            body.push_str(&format!("{{\"value\":{ts}}}"));
        }
        body.push_str("]}");
        let req = Request::post(path.as_str())
            .header(header::HOST, net.target.to_string())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        send.ready().await.context("points connection")?;
        m.on_send_lag(ts, p);
        let resp = send.send_request(req).await.context("POST points")?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            let fanout = subscribers.load(Ordering::Relaxed);
            for _ in 0..cfg.batch {
                m.on_send(ts, fanout);
            }
        } else if http_errors.fetch_add(1, Ordering::Relaxed) < 3 {
            eprintln!("POST {path} answered {status}");
        }
    }
}

/// Declares the benchmark's stream (a fresh id per run).
async fn create_stream(net: &Net, id: &str) -> Result<()> {
    let tcp = net.connect(false).await?;
    let (mut send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let body = format!("{{\"id\":\"{id}\",\"maxDataPoints\":1000}}");
    let req = Request::post("/streams")
        .header(header::HOST, net.target.to_string())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let resp = send.send_request(req).await.context("POST /streams")?;
    let status = resp.status();
    let text = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "POST /streams answered {status}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    Ok(())
}

pub async fn run_streams(net: Arc<Net>, cfg: StreamsConfig, pid: Option<u32>) -> Result<Value> {
    if cfg.points_per_sec <= 0.0 || cfg.posters == 0 || cfg.batch == 0 {
        bail!("--rate, --posters and --batch must be positive");
    }
    let id = format!("bench-{}", now_ns());
    create_stream(&net, &id).await?;
    let mut path = format!("/events?stream={id}&maxPoints=0");
    if let Some(rate) = cfg.max_rate {
        path.push_str(&format!("&maxRate={rate}"));
    }
    let m = Arc::new(Metrics::new());
    let extra = Arc::new(Extra::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(cfg.connect_concurrency.max(1)));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..cfg.subscribers {
        tasks.push(tokio::spawn(subscriber(
            i,
            path.clone(),
            net.clone(),
            m.clone(),
            extra.clone(),
            sem.clone(),
            stop_rx.clone(),
        )));
    }
    let n = cfg.subscribers as u64;
    wait_until(cfg.setup_timeout, || {
        extra.opened.load(Ordering::Relaxed) + extra.open_failed.load(Ordering::Relaxed) >= n
    })
    .await;
    let connect_secs = t0.elapsed().as_secs_f64();
    let subscribers = Arc::new(AtomicU64::new(extra.opened.load(Ordering::Relaxed)));
    tokio::time::sleep(Duration::from_millis(300)).await;

    m.open_window(cfg.warmup, cfg.duration);
    let http_errors = Arc::new(AtomicU64::new(0));
    let mut posters = Vec::new();
    for p in 0..cfg.posters {
        posters.push(tokio::spawn(poster(
            p,
            id.clone(),
            cfg.clone(),
            net.clone(),
            m.clone(),
            subscribers.clone(),
            http_errors.clone(),
        )));
    }
    let cpu = crate::common::measure_cpu(pid, cfg.warmup, cfg.duration).await;
    tokio::time::sleep(cfg.drain).await;
    let _ = stop_tx.send(true);
    let poster_errors = crate::common::poster_errors(posters).await;
    crate::common::join_tasks(tasks).await;
    let secs = cfg.duration.as_secs_f64();
    let connected = subscribers.load(Ordering::Relaxed);
    let counts = Counts::of(&m);
    let accounted = extra.accounted.load(Ordering::Relaxed);
    let mut results = counts.json(secs);
    // With conflation a frame stands for several points: `delivered` counts frames.
    results["frames_per_sec"] = json!(r1(counts.delivered as f64 / secs));
    results["points_accounted"] = json!(accounted);
    results["points_accounted_per_sec"] = json!(r1(accounted as f64 / secs));
    results["target_points_per_sec"] = json!(cfg.points_per_sec);
    results["http_errors"] = json!(http_errors.load(Ordering::Relaxed));
    results["poster_errors"] = json!(poster_errors);
    results["subscribers_closed_early"] = json!(m.conn_closed.load(Ordering::Relaxed));
    results["latency"] = latency_json(&m.histogram());
    results["send_lag"] = latency_json(&m.lag_histogram());
    Ok(json!({
        "params": {
            "subscribers": cfg.subscribers,
            "points_per_sec": cfg.points_per_sec,
            "batch": cfg.batch,
            "posters": cfg.posters,
            "max_rate": cfg.max_rate,
            "warmup_s": cfg.warmup.as_secs_f64(),
            "duration_s": secs,
            "drain_s": cfg.drain.as_secs_f64(),
        },
        "setup": {
            "connected": connected,
            "connect_failed": extra.open_failed.load(Ordering::Relaxed),
            "connects_per_sec": r1(connected as f64 / connect_secs.max(1e-9)),
        },
        "results": results,
        "cpu": cpu,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_offset_time_and_conflation_from_a_point() {
        let d = br#"{"type":"stream_point","stream":"b","timestamp":1,"value":123456789.0,"conflated":7,"offset":42}"#;
        assert_eq!(parse_point(d), Some((42, 123_456_789, 7)));
        let d = br#"{"type":"stream_point","stream":"b","timestamp":1,"value":5e3,"offset":1}"#;
        assert_eq!(parse_point(d), Some((1, 5000, 1)));
        assert_eq!(parse_point(b"{}"), None);
    }
}
