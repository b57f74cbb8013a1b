//! What every scenario shares: the clock, the target and its source addresses, and the counters
//! and latency histogram a run fills.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};

use crate::account::Verdict;

static START: OnceLock<Instant> = OnceLock::new();

/// Waits for the connection tasks of a run to end, giving up on the rest once one has not
/// ended within 5 s (the run is over; stragglers are dropped with the runtime).
pub async fn join_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        if tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Nanoseconds since the process's shared start instant (monotonic). Every timestamp carried in
/// a message is one of these, and sender and receiver live in this same process.
pub fn now_ns() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// `at` on the [`now_ns`] clock (0 for an instant before the clock started).
pub fn ns_at(at: Instant) -> u64 {
    at.saturating_duration_since(*START.get_or_init(Instant::now))
        .as_nanos() as u64
}

/// Where the server is and which loopback addresses client sockets are bound to.
pub struct Net {
    /// The first target (the Host header; the only one for a single server).
    pub target: SocketAddr,
    targets: Vec<SocketAddr>,
    sources: Vec<IpAddr>,
    next: AtomicUsize,
}

impl Net {
    /// `target` is `host:port`, optionally with an `http://` or `ws://` prefix, or several of
    /// them separated by commas (the nodes of one cluster: connections go to each in turn). Only
    /// loopback addresses are accepted. `n_sources` IPv4 source addresses 127.0.0.1 .. 127.0.0.N
    /// are used (IPv6 has only ::1).
    pub fn new(target: &str, n_sources: usize) -> Result<Net> {
        let targets = target
            .split(',')
            .map(parse_target)
            .collect::<Result<Vec<_>>>()?;
        let addr = targets[0];
        if targets.iter().any(|t| t.is_ipv4() != addr.is_ipv4()) {
            bail!("targets {target:?} mix IPv4 and IPv6");
        }
        let sources = match addr {
            SocketAddr::V4(_) => (1..=n_sources.clamp(1, 250))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8)))
                .collect(),
            SocketAddr::V6(_) => vec![addr.ip()],
        };
        Ok(Net {
            target: addr,
            targets,
            sources,
            next: AtomicUsize::new(0),
        })
    }

    /// Every target, comma-separated (one address for a single server).
    pub fn describe(&self) -> String {
        let all: Vec<String> = self.targets.iter().map(|t| t.to_string()).collect();
        all.join(",")
    }

    pub fn n_sources(&self) -> usize {
        self.sources.len()
    }

    /// A TCP connection to the target from the next source address (round robin). With `reset`,
    /// closing the socket sends RST, which leaves no TIME_WAIT behind (for connection churn).
    pub async fn connect(&self, reset: bool) -> std::io::Result<TcpStream> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let src = self.sources[i % self.sources.len()];
        let target = self.targets[i % self.targets.len()];
        let sock = match self.target {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        sock.bind(SocketAddr::new(src, 0))?;
        sock.set_nodelay(true)?;
        if reset {
            // A zero linger makes close send RST at once; it never blocks.
            #[allow(deprecated)]
            sock.set_linger(Some(Duration::ZERO))?;
        }
        sock.connect(target).await
    }
}

/// One `host:port` target, loopback only.
fn parse_target(target: &str) -> Result<SocketAddr> {
    let t = target
        .trim()
        .trim_start_matches("http://")
        .trim_start_matches("ws://")
        .trim_end_matches('/');
    // Only IP literals and `localhost`: no name is ever looked up elsewhere.
    let addr: SocketAddr = match t.strip_prefix("localhost:") {
        Some(port) => {
            let port: u16 = port
                .parse()
                .with_context(|| format!("bad port in target {target:?}"))?;
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        }
        None => t.parse().with_context(|| {
            format!("target {target:?} is not IP:PORT, [IPv6]:PORT or localhost:PORT")
        })?,
    };
    if !addr.ip().is_loopback() {
        bail!("refusing non-loopback target {addr} (this tool only loads 127.0.0.0/8 or ::1)");
    }
    Ok(addr)
}

const SHARDS: usize = 16;

/// Counters and the latency histogram of one run, shared by every client task.
pub struct Metrics {
    /// Start and end (ns, see [`now_ns`]) of the measurement window; messages are counted by the
    /// scheduled send time they carry.
    pub window_start: AtomicU64,
    pub window_end: AtomicU64,
    pub sent: AtomicU64,
    pub expected: AtomicU64,
    /// First arrivals of an in-window message at a receiver that should get it
    /// ([`Verdict::New`]); the only frames whose latency is recorded.
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    pub misrouted: AtomicU64,
    pub stale: AtomicU64,
    pub delivered_outside: AtomicU64,
    pub send_errors: AtomicU64,
    pub conn_closed: AtomicU64,
    pub other_frames: AtomicU64,
    hist: Vec<Mutex<Histogram<u64>>>,
    /// How late each in-window message went out after it was due (the generator's own lag,
    /// which the latency includes).
    lag: Vec<Mutex<Histogram<u64>>>,
}

impl Metrics {
    /// Opens the measurement window `warmup` from now, for `duration`; returns its start (ns).
    pub fn open_window(&self, warmup: Duration, duration: Duration) -> u64 {
        let start = now_ns() + warmup.as_nanos() as u64;
        self.window_start.store(start, Ordering::Relaxed);
        self.window_end
            .store(start + duration.as_nanos() as u64, Ordering::Relaxed);
        start
    }

    pub fn new() -> Metrics {
        Metrics {
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
            sent: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            misrouted: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            delivered_outside: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            conn_closed: AtomicU64::new(0),
            other_frames: AtomicU64::new(0),
            hist: (0..SHARDS).map(|_| Mutex::new(new_hist())).collect(),
            lag: (0..SHARDS).map(|_| Mutex::new(new_hist())).collect(),
        }
    }

    /// Whether a send timestamp falls in the measurement window.
    pub fn in_window(&self, ts: u64) -> bool {
        ts >= self.window_start.load(Ordering::Relaxed)
            && ts < self.window_end.load(Ordering::Relaxed)
    }

    /// Counts a send scheduled at `ts` that `fanout` receivers should get.
    pub fn on_send(&self, ts: u64, fanout: u64) {
        if self.in_window(ts) {
            self.sent.fetch_add(1, Ordering::Relaxed);
            self.expected.fetch_add(fanout, Ordering::Relaxed);
        }
    }

    /// Records, just before it is written, how late a message due at `ts` goes out.
    pub fn on_send_lag(&self, ts: u64, who: usize) {
        if self.in_window(ts) {
            let lag = now_ns().saturating_sub(ts).max(1);
            self.lag[who % SHARDS]
                .lock()
                .unwrap()
                .saturating_record(lag);
        }
    }

    /// Counts the arrival now, at receiver `who`, of a message scheduled at `ts`, as the
    /// receiver classified it (see [`crate::account`]). Only a [`Verdict::New`] one is a delivery
    /// and has its latency recorded.
    pub fn on_delivery(&self, ts: u64, who: usize, verdict: Verdict) {
        if !self.in_window(ts) {
            self.delivered_outside.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let counter = match verdict {
            Verdict::New => &self.delivered,
            Verdict::Duplicate => &self.duplicates,
            Verdict::Misrouted => &self.misrouted,
            Verdict::Stale => &self.stale,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if verdict == Verdict::New {
            let lat = now_ns().saturating_sub(ts).max(1);
            self.hist[who % SHARDS]
                .lock()
                .unwrap()
                .saturating_record(lat);
        }
    }

    /// Records a latency (ns) regardless of the window, for handshakes.
    pub fn record(&self, ns: u64, who: usize) {
        self.hist[who % SHARDS]
            .lock()
            .unwrap()
            .saturating_record(ns.max(1));
    }

    /// The merged latency histogram.
    pub fn histogram(&self) -> Histogram<u64> {
        merged(&self.hist)
    }

    /// The merged send-lag histogram.
    pub fn lag_histogram(&self) -> Histogram<u64> {
        merged(&self.lag)
    }
}

fn merged(shards: &[Mutex<Histogram<u64>>]) -> Histogram<u64> {
    let mut all = new_hist();
    for h in shards {
        all.add(&*h.lock().unwrap()).expect("same bounds");
    }
    all
}

fn new_hist() -> Histogram<u64> {
    // 1 ns .. 10 min, 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// Latency percentiles in microseconds.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let us = |v: u64| (v as f64 / 1000.0 * 10.0).round() / 10.0;
    json!({
        "count": h.len(),
        "p50_us": us(h.value_at_quantile(0.50)),
        "p90_us": us(h.value_at_quantile(0.90)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
        "mean_us": (h.mean() / 100.0).round() / 10.0,
    })
}

/// Waits out the warm-up, then reads the server's CPU (and the generator's) over the measured
/// window that follows it.
pub async fn measure_cpu(pid: Option<u32>, warmup: Duration, duration: Duration) -> Value {
    tokio::time::sleep(warmup).await;
    let probe = ProcProbe::start(pid);
    tokio::time::sleep(duration).await;
    probe.cpu_json()
}

/// The errors of poster tasks once the run is over (one still running counts as one).
pub async fn poster_errors(posters: Vec<tokio::task::JoinHandle<Result<()>>>) -> Vec<String> {
    let mut errors = Vec::new();
    for p in posters {
        match tokio::time::timeout(Duration::from_secs(5), p).await {
            Ok(Ok(Err(e))) => errors.push(format!("{e:#}")),
            Err(_) => errors.push("poster still running after drain".to_owned()),
            _ => {}
        }
    }
    errors
}

/// Server figures read from `/proc` (when its pid is known) and the generator's own CPU use.
pub struct ProcProbe {
    pub pid: Option<u32>,
    t0: Instant,
    server_cpu0: Option<f64>,
    self_cpu0: Option<f64>,
}

impl ProcProbe {
    pub fn start(pid: Option<u32>) -> ProcProbe {
        ProcProbe {
            pid,
            t0: Instant::now(),
            server_cpu0: pid.and_then(|p| crate::sys::cpu_seconds(Some(p))),
            self_cpu0: crate::sys::cpu_seconds(None),
        }
    }

    /// CPU use since `start`, in percent of one core, for the server and for this tool.
    pub fn cpu_json(&self) -> Value {
        let secs = self.t0.elapsed().as_secs_f64().max(1e-9);
        let pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => json!(((b - a) / secs * 1000.0).round() / 10.0),
            _ => Value::Null,
        };
        json!({
            "server_cpu_pct": pct(self.server_cpu0, self.pid.and_then(|p| crate::sys::cpu_seconds(Some(p)))),
            "loadgen_cpu_pct": pct(self.self_cpu0, crate::sys::cpu_seconds(None)),
        })
    }
}

/// Rounds to one decimal.
pub fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Rounds to two decimals.
pub fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Polls `done()` every 10 ms until it is true or `timeout` passes; returns whether it became true.
pub async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `counter` has stopped moving for `quiet` (or `timeout` passes).
pub async fn wait_quiet(counter: &AtomicU64, quiet: Duration, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = counter.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let v = counter.load(Ordering::Relaxed);
        if v != last {
            last = v;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_targets_are_dealt_in_turn_and_must_all_be_loopback() {
        let net = Net::new("127.0.0.1:1,http://127.0.0.1:2/", 4).unwrap();
        assert_eq!(net.describe(), "127.0.0.1:1,127.0.0.1:2");
        assert_eq!(net.target.port(), 1);
        assert!(Net::new("127.0.0.1:1,10.0.0.1:2", 4).is_err());
        assert!(Net::new("127.0.0.1:1,[::1]:2", 4).is_err());
        assert!(Net::new("localhost:3", 1).is_ok());
    }

    #[tokio::test]
    async fn connections_alternate_between_targets() {
        let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let net = Net::new(
            &format!("{},{}", a.local_addr().unwrap(), b.local_addr().unwrap()),
            1,
        )
        .unwrap();
        let mut peers = Vec::new();
        for _ in 0..4 {
            peers.push(
                net.connect(false)
                    .await
                    .unwrap()
                    .peer_addr()
                    .unwrap()
                    .port(),
            );
        }
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        assert_eq!(peers, vec![pa, pb, pa, pb]);
    }
}
