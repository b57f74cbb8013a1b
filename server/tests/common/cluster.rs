//! Cluster test support: nodes on a real Redis, a redis-server of a test's own, health.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Server;

/// The Redis every machine here runs; tests on it use their own key prefixes.
pub const REDIS: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test (or earlier run) uses.
pub fn prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "test-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A node of the cluster named `prefix` on the Redis at `url`.
pub fn node_on(url: &str, prefix: &str, extra: &[&str]) -> Server {
    let topic_prefix = format!("{prefix}.");
    let mut args = vec![
        "--broker",
        url,
        "--redis-prefix",
        prefix,
        "--topic-prefix",
        &topic_prefix,
    ];
    args.extend_from_slice(extra);
    Server::with(&args, &[("HERALD_MESSAGE_RATE", "0")])
}

/// A node of the cluster named `prefix` on the machine's Redis.
pub fn node(prefix: &str) -> Server {
    node_on(REDIS, prefix, &[])
}

/// The ids of a presence list's users (strings as they are, objects by `id`).
pub fn names(users: &Value) -> Vec<String> {
    users
        .as_array()
        .expect("users is an array")
        .iter()
        .map(|u| {
            u.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| u["id"].to_string())
        })
        .collect()
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

/// Waits until `/healthz` says the broker is `want` (`up` or `down`).
pub async fn wait_broker(server: &Server, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let h = health(server).await;
        if h["broker"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "broker never became {want}: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// `redis-cli` against `url`'s port, returning its output.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed");
    assert!(out.status.success(), "redis-cli {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A redis-server of the test's own, on a free port, that the test can stop and start.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = OwnRedis { port, child: None };
        r.resume();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
