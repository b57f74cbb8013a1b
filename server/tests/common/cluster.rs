//! Cluster test support: nodes on a real Redis, a redis-server of a test's own, health.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{health, Client, Server};

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
        let child = redis_command(self.port)
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        wait_port(self.port);
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

/// Where Debian puts nginx, unless `HERALD_TEST_NGINX` names another binary. CI installs it
/// (`.ci/run`) and fails without it; elsewhere the test is reported as skipped (see
/// [`super::skip`]).
pub fn nginx_path() -> std::path::PathBuf {
    std::env::var_os("HERALD_TEST_NGINX")
        .map(Into::into)
        .unwrap_or_else(|| "/usr/sbin/nginx".into())
}

pub struct Nginx {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    _dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// nginx in front of `upstreams` with the least-connections balancer, WebSocket upgrades and
/// unbuffered streams (what SSE needs). One process (`master_process off`) and no inherited output,
/// so killing the child on drop leaves no worker behind holding the test harness's pipes.
pub fn nginx(upstreams: &[&Server]) -> Nginx {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("herald-nginx-{}", prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|s| format!("    server {};\n", s.addr))
        .collect();
    let conf = format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream herald {{
    least_conn;
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://herald;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_buffering off;
      proxy_read_timeout 1h;
    }}
  }}
}}
"#
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(nginx_path())
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nginx");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx {
        child,
        port,
        _dir: TempDir(dir),
    }
}

/// Joins `room` as `user` on a new connection; the connection and its `room_joined`.
pub async fn join(server: &Server, room: &str, user: &str) -> (Client, Value) {
    let mut c = server.client().await;
    c.send(json!({"type":"join","room":room,"user":user})).await;
    let joined = c.recv_type("room_joined").await;
    (c, joined)
}

/// The next frame of one of these types, skipping others.
pub async fn recv_of(client: &mut Client, kinds: &[&str]) -> Value {
    loop {
        let frame = client.recv().await;
        if kinds.contains(&frame["type"].as_str().unwrap_or("")) {
            return frame;
        }
    }
}

/// A free port whose cluster bus port (+10000) is free and valid too.
pub fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` (outside state, such as a Redis role) until it holds, for at most `within`.
pub async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TempDir {
    /// A new directory under the system's temporary one, named `kind` and a fresh prefix.
    pub fn new(kind: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{kind}-{}", prefix()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

/// Waits until something listens on `port` (5 s at most).
pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `redis-server` on 127.0.0.1:`port` without persistence, its output dropped.
fn redis_command(port: u16) -> Command {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null());
    command
}

/// A redis-server on `port` keeping its files in `dir` (no persistence), with `extra` flags.
pub fn redis_server(port: u16, dir: &std::path::Path, extra: &[&str]) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let child = redis_command(port)
        .current_dir(dir)
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .spawn()
        .expect("redis-server is installed");
    wait_port(port);
    Proc(child)
}

/// A primary, its replica and one sentinel monitoring them as `herald` (down after 500 ms), all
/// on free ports with their files in a temporary directory; killed and removed when dropped.
pub struct SentinelSet {
    pub primary_port: u16,
    pub replica_port: u16,
    pub sentinel_port: u16,
    /// `None` once [`SentinelSet::kill_primary`] ran.
    pub primary: Option<Proc>,
    _replica: Proc,
    _sentinel: Proc,
    _dir: TempDir,
}

impl SentinelSet {
    /// Starts the three and waits until the replica has synced and the sentinel knows it (it
    /// learns it from the primary, and could not fail over without it).
    pub async fn start() -> SentinelSet {
        let dir = TempDir::new("herald-sentinel");
        let (primary_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
        // Replicas start their first sync at once (not after the default 5 s).
        let primary = redis_server(
            primary_port,
            &dir.0.join("primary"),
            &["--repl-diskless-sync-delay", "0"],
        );
        let replica = redis_server(
            replica_port,
            &dir.0.join("replica"),
            &["--replicaof", "127.0.0.1", &primary_port.to_string()],
        );
        let conf = dir.0.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor herald 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds herald 500\n\
                 sentinel failover-timeout herald 3000\n",
                dir.0.display()
            ),
        )
        .unwrap();
        let sentinel = Proc(
            Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server runs as a sentinel"),
        );
        wait_port(sentinel_port);
        eventually("the replica synced", Duration::from_secs(15), || {
            redis_cli(replica_port, &["INFO", "replication"]).contains("master_link_status:up")
        })
        .await;
        eventually(
            "the sentinel sees the replica",
            Duration::from_secs(15),
            || {
                redis_cli(sentinel_port, &["SENTINEL", "replicas", "herald"])
                    .contains(&replica_port.to_string())
            },
        )
        .await;
        SentinelSet {
            primary_port,
            replica_port,
            sentinel_port,
            primary: Some(primary),
            _replica: replica,
            _sentinel: sentinel,
            _dir: dir,
        }
    }

    /// The broker URL nodes use.
    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/herald", self.sentinel_port)
    }

    /// Kills the primary (and reaps it).
    pub fn kill_primary(&mut self) {
        drop(self.primary.take());
    }
}

/// Six `redis-server --cluster-enabled yes` (node timeout 1 s) made into a Redis Cluster of
/// three primaries with a replica each, on free ports with their files in a temporary
/// directory; killed and removed when dropped.
pub struct ReplicatedCluster {
    pub ports: Vec<u16>,
    /// By port's index; `None` once killed.
    pub servers: Vec<Option<Proc>>,
    _dir: TempDir,
}

impl ReplicatedCluster {
    /// Starts the six, creates the cluster and waits until every node says `ok` and all three
    /// replicas have synced with their primaries (a replica that never synced is not promoted).
    pub async fn start() -> ReplicatedCluster {
        let dir = TempDir::new("herald-rcluster-fo");
        let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
        let servers = ports
            .iter()
            .map(|p| {
                let flags = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--repl-diskless-sync-delay",
                    "0",
                ];
                Some(redis_server(*p, &dir.0.join(p.to_string()), &flags))
            })
            .collect();
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.extend(["--cluster-replicas", "1", "--cluster-yes"].map(str::to_owned));
        let out = Command::new("redis-cli").args(&create).output().unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        eventually(
            "the cluster is ok with its replicas",
            Duration::from_secs(20),
            || {
                ports
                    .iter()
                    .all(|p| redis_cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                    && ports
                        .iter()
                        .filter(|p| {
                            redis_cli(**p, &["INFO", "replication"])
                                .contains("master_link_status:up")
                        })
                        .count()
                        == 3
            },
        )
        .await;
        ReplicatedCluster {
            ports,
            servers,
            _dir: dir,
        }
    }

    /// The broker URL nodes use (the primaries as seeds).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.ports[..3]
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The hash slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        redis_cli(self.ports[0], &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number")
    }

    /// The ports of the primary serving `slot` and of its replica.
    pub fn shard_of(&self, slot: u16) -> (u16, u16) {
        shard_of(&redis_cli(self.ports[0], &["CLUSTER", "NODES"]), slot)
    }

    /// Kills (and reaps) the server on `port`.
    pub fn kill(&mut self, port: u16) {
        let index = self.ports.iter().position(|p| *p == port).unwrap();
        drop(self.servers[index].take());
    }
}

/// The port of the primary serving `slot`, and of its replica, from `CLUSTER NODES`.
pub fn shard_of(nodes: &str, slot: u16) -> (u16, u16) {
    let port_of = |addr: &str| -> u16 { addr.split([':', '@']).nth(1).unwrap().parse().unwrap() };
    let lines: Vec<Vec<&str>> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let primary = lines
        .iter()
        .find(|f| {
            f.len() > 8
                && f[2].contains("master")
                && f[8..].iter().any(|range| {
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    (a.parse::<u16>().unwrap()..=b.parse::<u16>().unwrap()).contains(&slot)
                })
        })
        .expect("a primary serves the slot");
    let replica = lines
        .iter()
        .find(|f| f.len() > 3 && f[2].contains("slave") && f[3] == primary[0])
        .expect("the primary has a replica");
    (port_of(primary[1]), port_of(replica[1]))
}

/// A number from `INFO replication` (`field` with its colon, such as `master_repl_offset:`).
pub fn repl_offset(port: u16, field: &str) -> Option<u64> {
    redis_cli(port, &["INFO", "replication"])
        .lines()
        .find_map(|l| l.trim().strip_prefix(field))
        .and_then(|v| v.parse().ok())
}
