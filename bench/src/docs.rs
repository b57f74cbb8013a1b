//! Shared documents (capability `documents`): writers edit documents through the real protocol
//! and the run measures operations committed per second and the commit latency (from sending a
//! `doc_op` to its `doc_ack`).
//!
//! Each writer is one WebSocket running the client algorithm of `herald_protocol::ot::ClientDoc`
//! (one operation in flight, later edits composed), so concurrent writers on one document make
//! the server transform every operation against those committed since its base. A writer makes
//! one local edit every `1 / rate` seconds (a one-code-point insert at a random place, some of
//! them emoji or CJK, or once the document has 64 code points a one-code-point delete); a server's per-connection limit is 100
//! operations per second, so the default rate stays under it, and load grows with the number
//! of writers. Edits made while an operation is in flight are composed, so a writer commits at
//! most one operation per round trip: operations committed can be fewer than edits made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use herald_protocol::document::Op;
use herald_protocol::ot::{char_len, ClientDoc, OpBuilder, Outgoing};
use parking_lot_free::Mutex;
use serde_json::{json, Value};

use crate::common::{latency_json, r1, Net, ProcProbe};
use crate::rawws::{Frame, RawWs};

/// A std mutex under a short name (this crate has no parking_lot).
mod parking_lot_free {
    pub struct Mutex<T>(std::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub fn new(v: T) -> Self {
            Mutex(std::sync::Mutex::new(v))
        }
        pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

/// One documents run.
#[derive(Debug, Clone)]
pub struct DocsConfig {
    /// Documents edited.
    pub docs: usize,
    /// Writers per document.
    pub writers: usize,
    /// Local edits per second per writer.
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
}

const PIECES: [&str; 6] = ["a", "b", " ", "👍", "漢", "é"];

struct Shared {
    committed: AtomicU64,
    refused: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    measuring: std::sync::atomic::AtomicBool,
    done: std::sync::atomic::AtomicBool,
}

fn frame(doc: &str, name: &str, out: &Outgoing) -> String {
    json!({"type":"doc_op","doc":doc,"client":name,"seq":out.seq,"base":out.base,"op":out.op})
        .to_string()
}

async fn writer(
    net: Arc<Net>,
    doc: String,
    name: String,
    rate: f64,
    shared: Arc<Shared>,
    seed: u64,
) -> Result<()> {
    let stream = net.connect(false).await?;
    let mut ws = RawWs::connect(stream, &net.target.to_string()).await?;
    // welcome
    ws.next_text().await?.context("closed before welcome")?;
    ws.send_text(&json!({"type":"doc_open","doc":doc}).to_string())
        .await?;
    let opened: Value = loop {
        let r = ws.next_text().await?.context("closed before doc_opened")?;
        let v: Value = serde_json::from_str(ws.text(r))?;
        if v["type"] == "doc_opened" {
            break v;
        }
    };
    let mut state = ClientDoc::new(
        opened["text"].as_str().unwrap_or_default().to_owned(),
        opened["version"].as_u64().unwrap_or(0),
        0,
    );
    let mut rng = seed | 1;
    let mut sent_at: Option<Instant> = None;
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if shared.done.load(Ordering::Relaxed) {
            let _ = ws.close().await;
            return Ok(());
        }
        tokio::select! {
            _ = tick.tick() => {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let len = char_len(&state.text);
                let at = rng % (len + 1);
                let piece = PIECES[(rng >> 32) as usize % PIECES.len()];
                // Documents stay short (inserts up to 64 code points, then a delete for each
                // insert), so the generator's own apply and transform cost stays flat.
                let op: Op = if len >= 64 {
                    let at = at.min(len - 1);
                    OpBuilder::new().retain(at).delete(1).retain(len - at - 1).build()
                } else {
                    OpBuilder::new().retain(at).insert(piece).retain(len - at).build()
                };
                if let Some(out) = state.local(op)? {
                    sent_at = Some(Instant::now());
                    ws.send_text(&frame(&doc, &name, &out)).await?;
                }
            }
            more = ws.fill() => {
                if !more? {
                    bail!("the server closed a writer");
                }
                while let Some(f) = ws.parse()? {
                    let r = match f {
                        Frame::Text(r) => r,
                        Frame::Ping(r) => { ws.answer_ping(r).await?; continue; }
                        Frame::Close => bail!("the server closed a writer"),
                        Frame::Other => continue,
                    };
                    let v: Value = serde_json::from_str(ws.text(r))?;
                    match v["type"].as_str() {
                        Some("doc_ack") => {
                            let version = v["version"].as_u64().unwrap_or(0);
                            if shared.measuring.load(Ordering::Relaxed) {
                                shared.committed.fetch_add(1, Ordering::Relaxed);
                                if let Some(t) = sent_at.take() {
                                    let ns = t.elapsed().as_nanos() as u64;
                                    let _ = shared.latency.lock().record(ns.max(1));
                                }
                            }
                            if let Some(next) = state.ack(version) {
                                sent_at = Some(Instant::now());
                                ws.send_text(&frame(&doc, &name, &next)).await?;
                            }
                        }
                        Some("doc_op") => {
                            let version = v["version"].as_u64().unwrap_or(0);
                            let op: Op = serde_json::from_value(v["op"].clone())?;
                            state.remote(version, &op)?;
                        }
                        Some("doc_error") | Some("error") => {
                            shared.refused.fetch_add(1, Ordering::Relaxed);
                            bail!("refused: {v}");
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Runs writers on `docs` documents and reports throughput, latency, and server memory.
pub async fn run_docs(net: Arc<Net>, cfg: DocsConfig, pid: Option<u32>) -> Result<Value> {
    let shared = Arc::new(Shared {
        committed: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000_000, 3)?),
        measuring: false.into(),
        done: false.into(),
    });
    let rss0 = pid.and_then(crate::sys::rss_kib);
    let prefix = format!("bench-{}", std::process::id());
    let mut tasks = Vec::new();
    for d in 0..cfg.docs {
        for w in 0..cfg.writers {
            let (net, shared) = (net.clone(), shared.clone());
            let doc = format!("{prefix}-d{d}");
            let name = format!("{prefix}-d{d}-w{w}");
            let seed = (d * 1_000 + w) as u64 * 0x9E37_79B9 + 7;
            tasks.push(tokio::spawn(async move {
                writer(net, doc, name, cfg.rate, shared, seed).await
            }));
        }
    }
    // Settle, warm up, then measure a window.
    tokio::time::sleep(cfg.warmup).await;
    let probe = ProcProbe::start(pid);
    shared.measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(cfg.duration).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let committed = shared.committed.load(Ordering::Relaxed);
    let rss1 = pid.and_then(crate::sys::rss_kib);
    let cpu = probe.cpu_json();
    shared.done.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            failures.push(e.to_string());
        }
    }
    let latency = latency_json(&shared.latency.lock());
    Ok(json!({
        "documents": cfg.docs,
        "writers_per_document": cfg.writers,
        "edits_per_writer_per_sec": cfg.rate,
        "offered_edits_per_sec": r1(cfg.rate * (cfg.docs * cfg.writers) as f64),
        "ops_committed_per_sec": r1(committed as f64 / secs),
        "commit_latency": latency,
        "refused": shared.refused.load(Ordering::Relaxed),
        "writer_failures": failures.len(),
        "first_failure": failures.first(),
        "server_rss_kib_before": rss0,
        "server_rss_kib_after": rss1,
        "cpu": cpu,
    }))
}
