//! `herald-bench`: a load generator for any server that speaks Herald's wire protocol
//! (`/work/shared/WIRE.md`): WebSocket rooms and chat, and SSE updates. It knows nothing of the
//! server's internals, only the wire, and it only ever loads loopback addresses.
//!
//! Every run prints one JSON line on stdout and a readable summary on stderr.

mod account;
mod common;
mod docs;
mod polling;
mod rawws;
mod sse;
mod streams;
mod sys;
mod ws;
mod wsframe;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::common::Net;
use crate::ws::{Load, RoomsConfig};

#[derive(Parser)]
#[command(
    name = "herald-bench",
    about = "Load generator for servers speaking Herald's wire protocol (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone, Debug)]
struct Common {
    /// Server address (`127.0.0.1:3000`, `http://[::1]:3000`), or several separated by commas
    /// (nodes of one cluster; clients are dealt to them in turn, so rooms span the nodes);
    /// loopback only.
    #[arg(long)]
    target: Option<String>,
    /// Start this server binary for each run (`PATH serve --listen 127.0.0.1:0`, under `node`
    /// when PATH ends in `.js`), pinned with taskset to --server-cores.
    #[arg(long, value_name = "PATH")]
    spawn_server: Option<String>,
    /// CPUs for a spawned server (taskset list); this tool pins itself to the others.
    #[arg(long, default_value = "0")]
    server_cores: String,
    /// CPUs for this tool (default: with --spawn-server, every CPU not in --server-cores).
    #[arg(long)]
    load_cores: Option<String>,
    /// Pid of an already running server, to read its memory and CPU from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Number of loopback source addresses (127.0.0.1 .. 127.0.0.N) to spread sockets over.
    #[arg(long, default_value_t = 16)]
    source_addrs: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds to wait for in-flight messages after the window closes.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Connection attempts in flight at once during setup.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Longest wait for each setup phase (connect, join, settle), seconds.
    #[arg(long, default_value_t = 120.0)]
    setup_timeout: f64,
    /// Runtime worker threads (default: one per CPU this tool may use).
    #[arg(long)]
    threads: Option<usize>,
    /// A free-form label copied into the JSON output.
    #[arg(long)]
    label: Option<String>,
    /// Join with `"presence":"diff"`: presence as diffs instead of whole member lists.
    #[arg(long)]
    presence_diff: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// N WebSocket clients join rooms of K and stay idle: handshakes/s, joins/s, memory per
    /// connection.
    Idle {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        room_size: usize,
    },
    /// Chat fan-out at a fixed total message rate (open loop).
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        room_size: usize,
        /// Total chat messages per second over all publishers.
        #[arg(long, conflicts_with = "delivery_rate")]
        rate: Option<f64>,
        /// Target deliveries per second instead (messages/s = this / room size).
        #[arg(long)]
        delivery_rate: Option<f64>,
        /// Number of publishers (default: one per room).
        #[arg(long)]
        publishers: Option<usize>,
        /// Extra bytes of text per chat.
        #[arg(long, default_value_t = 0)]
        payload: usize,
    },
    /// Chat fan-out as fast as the server goes: each publisher keeps a window of chats in flight.
    FanoutMax {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 1000)]
        room_size: usize,
        /// Number of publishers (default: one per room).
        #[arg(long)]
        publishers: Option<usize>,
        /// Chats in flight per publisher.
        #[arg(long, default_value_t = 16)]
        window: usize,
        #[arg(long, default_value_t = 0)]
        payload: usize,
    },
    /// N `GET /events` streams while `POST /updates` runs at a fixed rate.
    Sse {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        streams: usize,
        /// Updates per second (total).
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// HTTP connections posting updates (each waits for its answer before the next POST,
        /// so a slow server needs more of them to hold the rate).
        #[arg(long, default_value_t = 16)]
        posters: usize,
    },
    /// Capability `streams`: N SSE subscribers of one data stream while points are posted at a
    /// fixed rate; with --max-rate each subscriber asks for at most that many frames per second
    /// (conflation on).
    Streams {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Points per second (total).
        #[arg(long, default_value_t = 10_000.0)]
        rate: f64,
        /// Points per POST.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// HTTP connections posting points.
        #[arg(long, default_value_t = 4)]
        posters: usize,
        /// Each subscriber's `maxRate` (frames/s); absent: every point (conflation off).
        #[arg(long)]
        max_rate: Option<f64>,
    },
    /// Connection churn: loops that connect, wait for `welcome` and close.
    Handshake {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Long-polling clients in rooms, one publisher per room at a fixed total chat rate:
    /// Herald's `/poll`, or Socket.IO 4 restricted to polling (`--dialect socketio`).
    Polling {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        room_size: usize,
        /// Total chat messages per second over all publishers.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// `herald` or `socketio`.
        #[arg(long, default_value = "herald")]
        dialect: String,
    },
    /// Shared documents: writers edit documents at a fixed rate each; operations committed per
    /// second and commit latency (capability `documents`).
    Docs {
        #[command(flatten)]
        common: Common,
        /// Documents edited at once.
        #[arg(long, default_value_t = 1)]
        docs: usize,
        /// Writers (connections) per document.
        #[arg(long, default_value_t = 50)]
        writers: usize,
        /// Local edits per second per writer (the server allows 100 operations per second per
        /// connection).
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
    },
    /// The standard set (client counts and rates multiplied by --scale).
    Standard {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Comma-separated subset of: fanout-max, fanout-25k, fanout-250k, idle, sse, handshake.
        #[arg(long)]
        only: Option<String>,
    },
}

/// One scenario to run.
#[derive(Debug, Clone)]
enum Run {
    Rooms(String, RoomsConfig),
    Sse(String, sse::SseConfig),
    Handshake(String, usize),
    Polling(String, polling::PollConfig),
    Streams(String, streams::StreamsConfig),
    Docs(String, docs::DocsConfig),
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn rooms_cfg(
    c: &Common,
    clients: usize,
    room_size: usize,
    load: Load,
    payload: usize,
) -> RoomsConfig {
    RoomsConfig {
        clients,
        room_size: room_size.clamp(1, clients.max(1)),
        load,
        warmup: secs(c.warmup),
        duration: secs(c.duration),
        drain: secs(c.drain),
        connect_concurrency: c.connect_concurrency,
        payload,
        setup_timeout: secs(c.setup_timeout),
        presence_diff: c.presence_diff,
    }
}

fn sse_cfg(c: &Common, streams: usize, rate: f64, posters: usize) -> sse::SseConfig {
    sse::SseConfig {
        streams,
        per_sec: rate,
        posters,
        warmup: secs(c.warmup),
        duration: secs(c.duration),
        drain: secs(c.drain),
        connect_concurrency: c.connect_concurrency,
        setup_timeout: secs(c.setup_timeout),
    }
}

fn standard_runs(c: &Common, scale: f64, only: Option<&str>) -> Result<Vec<Run>> {
    let n = |x: f64| ((x * scale).round() as usize).max(2);
    let rate = |x: f64| (x * scale).max(1.0);
    let big = n(10_000.0);
    let room = 100.min(big);
    let one_room = n(1_000.0);
    let all = vec![
        Run::Rooms(
            "fanout-max".into(),
            rooms_cfg(
                c,
                one_room,
                one_room,
                Load::Max {
                    publishers: 1,
                    window: 16,
                },
                0,
            ),
        ),
        Run::Rooms(
            "fanout-25k".into(),
            rooms_cfg(
                c,
                big,
                room,
                Load::Rate {
                    publishers: big.div_ceil(room),
                    per_sec: rate(25_000.0) / room as f64,
                },
                0,
            ),
        ),
        Run::Rooms(
            "fanout-250k".into(),
            rooms_cfg(
                c,
                big,
                room,
                Load::Rate {
                    publishers: big.div_ceil(room),
                    per_sec: rate(250_000.0) / room as f64,
                },
                0,
            ),
        ),
        Run::Rooms("idle".into(), rooms_cfg(c, big, room, Load::Idle, 0)),
        Run::Sse("sse".into(), sse_cfg(c, n(1_000.0), rate(200.0), 16)),
        Run::Handshake("handshake".into(), 64),
    ];
    let Some(only) = only else { return Ok(all) };
    let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
    for w in &wanted {
        if !all.iter().any(|r| run_name(r) == *w) {
            bail!("unknown run {w:?} in --only");
        }
    }
    Ok(all
        .into_iter()
        .filter(|r| wanted.contains(&run_name(r)))
        .collect())
}

fn run_name(r: &Run) -> &str {
    match r {
        Run::Rooms(n, _)
        | Run::Sse(n, _)
        | Run::Handshake(n, _)
        | Run::Polling(n, _)
        | Run::Streams(n, _)
        | Run::Docs(n, _) => n,
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let (common, runs) = match cli.cmd {
        Cmd::Idle {
            common,
            clients,
            room_size,
        } => {
            let r = Run::Rooms(
                "idle".into(),
                rooms_cfg(&common, clients, room_size, Load::Idle, 0),
            );
            (common, vec![r])
        }
        Cmd::Fanout {
            common,
            clients,
            room_size,
            rate,
            delivery_rate,
            publishers,
            payload,
        } => {
            let room_size = room_size.clamp(1, clients.max(1));
            let per_sec = match (rate, delivery_rate) {
                (Some(r), _) => r,
                (None, Some(d)) => d / room_size as f64,
                (None, None) => bail!("fanout needs --rate or --delivery-rate"),
            };
            if per_sec <= 0.0 {
                bail!("the message rate must be positive");
            }
            let publishers = default_publishers(publishers, clients, room_size);
            let load = Load::Rate {
                publishers,
                per_sec,
            };
            let r = Run::Rooms(
                "fanout".into(),
                rooms_cfg(&common, clients, room_size, load, payload),
            );
            (common, vec![r])
        }
        Cmd::FanoutMax {
            common,
            clients,
            room_size,
            publishers,
            window,
            payload,
        } => {
            let room_size = room_size.clamp(1, clients.max(1));
            let publishers = default_publishers(publishers, clients, room_size);
            let load = Load::Max {
                publishers,
                window: window.max(1),
            };
            let r = Run::Rooms(
                "fanout-max".into(),
                rooms_cfg(&common, clients, room_size, load, payload),
            );
            (common, vec![r])
        }
        Cmd::Sse {
            common,
            streams,
            rate,
            posters,
        } => {
            let r = Run::Sse("sse".into(), sse_cfg(&common, streams, rate, posters));
            (common, vec![r])
        }
        Cmd::Streams {
            common,
            subscribers,
            rate,
            batch,
            posters,
            max_rate,
        } => {
            let cfg = streams::StreamsConfig {
                subscribers,
                points_per_sec: rate,
                batch: batch.max(1),
                posters: posters.max(1),
                max_rate,
                warmup: secs(common.warmup),
                duration: secs(common.duration),
                drain: secs(common.drain),
                connect_concurrency: common.connect_concurrency,
                setup_timeout: secs(common.setup_timeout),
            };
            let name = if max_rate.is_some() {
                "streams-conflated"
            } else {
                "streams"
            };
            (common, vec![Run::Streams(name.into(), cfg)])
        }
        Cmd::Handshake {
            common,
            concurrency,
        } => (
            common,
            vec![Run::Handshake("handshake".into(), concurrency)],
        ),
        Cmd::Polling {
            common,
            clients,
            room_size,
            rate,
            dialect,
        } => {
            let dialect = match dialect.as_str() {
                "herald" => polling::Dialect::Herald,
                "socketio" => polling::Dialect::SocketIo,
                other => bail!("--dialect is herald or socketio, not {other:?}"),
            };
            let cfg = polling::PollConfig {
                dialect,
                clients,
                room_size: room_size.clamp(1, clients.max(1)),
                per_sec: rate,
                warmup: secs(common.warmup),
                duration: secs(common.duration),
                drain: secs(common.drain),
                connect_concurrency: common.connect_concurrency,
                setup_timeout: secs(common.setup_timeout),
            };
            (common, vec![Run::Polling("polling".into(), cfg)])
        }
        Cmd::Docs {
            common,
            docs,
            writers,
            rate,
        } => {
            let cfg = docs::DocsConfig {
                docs: docs.max(1),
                writers: writers.max(1),
                rate,
                warmup: secs(common.warmup),
                duration: secs(common.duration),
            };
            (common, vec![Run::Docs("docs".into(), cfg)])
        }
        Cmd::Standard {
            common,
            scale,
            only,
        } => {
            if scale <= 0.0 {
                bail!("--scale must be positive");
            }
            let runs = standard_runs(&common, scale, only.as_deref())?;
            (common, runs)
        }
    };
    let mut common = common;
    if common.target.is_none() && common.spawn_server.is_none() {
        // `cargo xtask bench` with no arguments: the release server of this workspace.
        let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
        let herald = format!("{dir}/release/herald");
        if std::path::Path::new(&herald).is_file() {
            eprintln!("herald-bench: no --target or --spawn-server; spawning {herald}");
            common.spawn_server = Some(herald);
        } else {
            bail!(
                "give --target ADDR or --spawn-server PATH (or build {herald} with \
                 `cargo build --release -p herald-server`)"
            );
        }
    }
    if let Some(t) = &common.target {
        // Validate early: loopback only.
        Net::new(t, 1)?;
    }

    let nofile = sys::raise_nofile_limit()?;
    let mut load_cpus = sys::current_affinity()?;
    let pin = match (&common.load_cores, &common.spawn_server) {
        (Some(l), _) => Some(sys::parse_cpu_list(l)?),
        (None, Some(_)) => {
            let server = sys::parse_cpu_list(&common.server_cores)?;
            let rest: Vec<usize> = load_cpus
                .iter()
                .copied()
                .filter(|c| !server.contains(c))
                .collect();
            if rest.is_empty() {
                eprintln!("warning: no CPU left for the load generator; not pinning it");
                None
            } else {
                Some(rest)
            }
        }
        _ => None,
    };
    if let Some(cpus) = pin {
        sys::pin_current_thread(&cpus).context("pinning the load generator")?;
        load_cpus = cpus;
    }
    let threads = common.threads.unwrap_or(load_cpus.len()).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    eprintln!(
        "herald-bench: {} run(s); load generator on CPUs {:?} with {} worker thread(s); RLIMIT_NOFILE {}",
        runs.len(),
        load_cpus,
        threads,
        nofile
    );

    let mut rows = Vec::new();
    let mut failures = 0;
    for run in &runs {
        match one_run(&rt, &common, run, &load_cpus) {
            Ok(v) => {
                let sent = v["results"]["sends_per_sec"].as_f64();
                let want = v["results"]["target_sends_per_sec"].as_f64();
                if let (Some(sent), Some(want)) = (sent, want) {
                    if sent < want * 0.95 {
                        eprintln!(
                            "warning: {}: sent {sent}/s, short of the target {want}/s (publishers or server could not keep up)",
                            run_name(run)
                        );
                    }
                }
                let dropped = v["results"]["connections_closed_early"]
                    .as_u64()
                    .or(v["results"]["streams_closed_early"].as_u64())
                    .unwrap_or(0);
                for (what, path) in [
                    ("duplicate", "duplicates"),
                    ("misrouted", "misrouted"),
                    ("stale (too late to tell)", "stale"),
                ] {
                    let n = v["results"][path].as_u64().unwrap_or(0);
                    if n > 0 {
                        eprintln!(
                            "warning: {}: {n} {what} frame(s), not counted as deliveries",
                            run_name(run)
                        );
                    }
                }
                if dropped > 0 {
                    eprintln!(
                        "warning: {}: the server closed {dropped} connection(s) during the run",
                        run_name(run)
                    );
                }
                for (what, path) in [("connect", "connect_failed"), ("join", "join_failed")] {
                    let n = v["setup"][path].as_u64().unwrap_or(0);
                    if n > 0 {
                        eprintln!("warning: {}: {n} client(s) failed to {what}", run_name(run));
                    }
                }
                println!("{v}");
                print_run(&v);
                rows.push(v);
            }
            Err(e) => {
                failures += 1;
                let v = json!({"scenario": run_name(run), "error": format!("{e:#}")});
                println!("{v}");
                eprintln!("run {} failed: {e:#}", run_name(run));
            }
        }
    }
    print_summary(&rows);
    if failures > 0 {
        bail!("{failures} run(s) failed");
    }
    Ok(())
}

fn one_run(
    rt: &tokio::runtime::Runtime,
    common: &Common,
    run: &Run,
    load_cpus: &[usize],
) -> Result<Value> {
    let server = match &common.spawn_server {
        Some(path) => Some(sys::SpawnedServer::start(
            path,
            Some(common.server_cores.as_str()),
        )?),
        None => None,
    };
    let (target, pid) = match &server {
        Some(s) => (s.addr.to_string(), Some(s.pid)),
        None => (common.target.clone().unwrap_or_default(), common.server_pid),
    };
    let net = Arc::new(Net::new(&target, common.source_addrs)?);
    eprintln!(
        "-- {} against {} (server pid {:?})",
        run_name(run),
        net.describe(),
        pid
    );
    let result = rt.block_on(async {
        match run {
            Run::Rooms(_, cfg) => ws::run_rooms(net.clone(), cfg.clone(), pid).await,
            Run::Sse(_, cfg) => sse::run_sse(net.clone(), cfg.clone(), pid).await,
            Run::Polling(_, cfg) => polling::run_polling(net.clone(), cfg.clone(), pid).await,
            Run::Streams(_, cfg) => streams::run_streams(net.clone(), cfg.clone(), pid).await,
            Run::Docs(_, cfg) => docs::run_docs(net.clone(), cfg.clone(), pid).await,
            Run::Handshake(_, c) => {
                ws::run_handshakes(
                    net.clone(),
                    *c,
                    secs(common.warmup),
                    secs(common.duration),
                    pid,
                )
                .await
            }
        }
    })?;
    let mut v = json!({
        "scenario": run_name(run),
        "label": common.label,
        "target": net.describe(),
        "server": common.spawn_server.clone(),
        "server_cores": common.spawn_server.as_ref().map(|_| common.server_cores.clone()),
        "load_cpus": load_cpus,
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut v, result) {
        a.extend(b);
    }
    drop(server);
    Ok(v)
}

/// Prints every figure of a run, one `section.key  value` per line.
fn print_run(v: &Value) {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, x, out);
                }
            }
            Value::Null => {}
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut lines = Vec::new();
    walk("", v, &mut lines);
    let w = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, x) in lines {
        eprintln!("  {k:<w$}  {x}");
    }
}

/// One row per run with the headline figures.
fn print_summary(rows: &[Value]) {
    if rows.is_empty() {
        return;
    }
    let get = |v: &Value, path: &str| -> String {
        let mut x = v;
        for p in path.split('.') {
            x = &x[p];
        }
        match x {
            Value::Null => "-".into(),
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 || f.abs() >= 100.0 {
                    format!("{f:.0}")
                } else {
                    format!("{f:.2}")
                }
            }
            other => other.to_string(),
        }
    };
    let cols = [
        ("run", "scenario"),
        ("sent/s", "results.sends_per_sec"),
        ("deliv/s", "results.deliveries_per_sec"),
        ("loss%", "results.loss_pct"),
        ("dup", "results.duplicates"),
        ("misrt", "results.misrouted"),
        ("p50us", "results.latency.p50_us"),
        ("p90us", "results.latency.p90_us"),
        ("p99us", "results.latency.p99_us"),
        ("p99.9us", "results.latency.p999_us"),
        ("maxus", "results.latency.max_us"),
        ("lag99us", "results.send_lag.p99_us"),
        ("hs/s", "setup.handshakes_per_sec"),
        ("joins/s", "setup.joins_per_sec"),
        ("B/conn", "memory.bytes_per_conn_joined"),
        ("B/conn end", "memory.bytes_per_conn_end"),
        ("dropped", "results.connections_closed_early"),
        ("srv cpu%", "cpu.server_cpu_pct"),
        ("gen cpu%", "cpu.loadgen_cpu_pct"),
    ];
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|(_, p)| {
                    let s = get(r, p);
                    // A handshake run reports its rate under results.
                    if s == "-" && *p == "setup.handshakes_per_sec" {
                        get(r, "results.handshakes_per_sec")
                    } else if s == "-" && *p == "memory.bytes_per_conn_joined" {
                        get(r, "memory.bytes_per_stream")
                    } else {
                        s.trim_matches('"').to_owned()
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            table
                .iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(h.len())
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        eprintln!("{}", s.join("  "));
    };
    eprintln!();
    line(cols.iter().map(|(h, _)| *h).collect());
    for r in &table {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Publishers for a rooms run: as asked, or one per room; at least one, at most one per client.
fn default_publishers(asked: Option<usize>, clients: usize, room_size: usize) -> usize {
    asked
        .unwrap_or(clients.div_ceil(room_size))
        .clamp(1, clients.max(1))
}
