//! Replays sessions against a running server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::matcher::{matches, Mismatch, Vars};
use crate::profile::Capabilities;
use crate::schema::Schemas;
use crate::session::{Action, Connect, Disconnect, Http, Session, Step};
use crate::sse::SseParser;

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's base URL, such as `http://127.0.0.1:8080`.
    pub target: String,
    /// Default timeout of one step.
    pub step_timeout: Duration,
    /// How many independent sessions run at once.
    pub parallel: usize,
    /// Print each result as it completes.
    pub verbose: bool,
    /// The server's capabilities: given (`--capabilities`), or read from its welcome by
    /// [`run_profile`]. `None` when sessions are run directly with [`run_all`]; then the
    /// trailing-frame check synchronises with a core exchange.
    pub capabilities: Option<Capabilities>,
    /// A token for the welcome probe of a server that requires authentication.
    pub probe_token: Option<String>,
    /// Carry every `ws` actor over long polling instead of a WebSocket (run only the sessions
    /// that [`crate::polling::fits`]).
    pub polling: bool,
}

impl Options {
    /// Options with the defaults for `target`.
    pub fn new(target: impl Into<String>) -> Options {
        Options {
            target: target.into().trim_end_matches('/').to_owned(),
            step_timeout: Duration::from_secs(3),
            parallel: 8,
            verbose: false,
            capabilities: None,
            probe_token: None,
            polling: false,
        }
    }
}

/// The result of one session.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The session's name.
    pub name: String,
    /// The session file.
    pub file: String,
    /// The capabilities the session needs (empty: core).
    pub requires: Vec<String>,
    /// `None` when the session passed; otherwise what went wrong, readable.
    pub failure: Option<String>,
    /// How long it took.
    pub duration: Duration,
}

impl Outcome {
    /// Whether the session passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// The result as printed by the runner.
    pub fn render(&self) -> String {
        match &self.failure {
            None => format!("PASS {} ({} ms)", self.name, self.duration.as_millis()),
            Some(f) => {
                let mut s = format!(
                    "FAIL {} ({} ms) [{}]\n",
                    self.name,
                    self.duration.as_millis(),
                    self.file
                );
                for line in f.lines() {
                    s.push_str("     ");
                    s.push_str(line);
                    s.push('\n');
                }
                s.trim_end().to_owned()
            }
        }
    }
}

/// Runs every session: the independent ones in parallel, then the isolated ones one at a time.
/// Returns the outcomes in the sessions' order.
pub async fn run_all(sessions: Vec<Session>, opts: &Options) -> Vec<Outcome> {
    let total = sessions.len();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; total];
    let (parallel, isolated): (Vec<_>, Vec<_>) = sessions
        .into_iter()
        .enumerate()
        .partition(|(_, s)| !s.header.isolated);

    let semaphore = Arc::new(tokio::sync::Semaphore::new(opts.parallel.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, session) in parallel {
        let sem = semaphore.clone();
        let opts = opts.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            (i, run_session(&session, &opts).await)
        });
    }
    while let Some(done) = set.join_next().await {
        let (i, outcome) = done.expect("session task panicked");
        if opts.verbose {
            println!("{}", outcome.render());
        }
        outcomes[i] = Some(outcome);
    }
    for (i, session) in isolated {
        let outcome = run_session(&session, opts).await;
        if opts.verbose {
            println!("{}", outcome.render());
        }
        outcomes[i] = Some(outcome);
    }
    outcomes.into_iter().map(|o| o.expect("ran")).collect()
}

/// Runs one session.
pub async fn run_session(session: &Session, opts: &Options) -> Outcome {
    let start = Instant::now();
    let mut run = Run::new(session, opts);
    let mut failure = None;
    for (i, step) in session.steps.iter().enumerate() {
        if let Err(e) = run.step(step).await {
            failure = Some(describe_failure(i + 1, step, &e));
            break;
        }
        if let Some(v) = run.violations() {
            failure = Some(format!(
                "schema violation noticed after step {} (line {}):\n{v}",
                i + 1,
                step.line
            ));
            break;
        }
    }
    if failure.is_none() && !session.header.allow_trailing {
        if let Err(e) = run.trailing().await {
            failure = Some(format!(
                "after the last step: {e}\n(a session that allows frames after its last step says \"allow_trailing\": true in its header)"
            ));
        }
    }
    if failure.is_none() {
        if session.header.allow_trailing {
            // Nothing synchronised with the server after the last step: give frames already on
            // the wire a moment to arrive, so they are schema-checked too.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(v) = run.violations() {
            failure = Some(format!("schema violation:\n{v}"));
        }
    } else if let Some(v) = run.violations() {
        failure = failure.map(|f| format!("{f}\nalso, schema violation:\n{v}"));
    }
    run.shutdown().await;
    Outcome {
        name: session.name().to_owned(),
        file: session.path.display().to_string(),
        requires: session.header.requires.clone(),
        failure,
        duration: start.elapsed(),
    }
}

fn describe_failure(n: usize, step: &Step, e: &str) -> String {
    let who = step
        .actor
        .as_deref()
        .map(|a| format!("{a} "))
        .unwrap_or_default();
    let mut s = format!("step {n} (line {}): {who}{}", step.line, step.action.name());
    if let Some(c) = &step.comment {
        s.push_str(&format!(" -- {c}"));
    }
    s.push('\n');
    s.push_str(e);
    s
}

type WsSink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// Something that arrived on a connection.
#[derive(Debug)]
enum Incoming {
    /// A JSON text frame.
    Frame(Value),
    /// A text frame that is not JSON.
    Text(String),
    /// A binary frame.
    Binary(usize),
    /// A close frame.
    Close(Option<u16>, String),
    /// The connection ended (with the reason).
    Ended(String),
    /// An SSE event.
    Event { event: String, data: String },
}

impl Incoming {
    fn describe(&self) -> String {
        match self {
            Incoming::Frame(v) => format!("frame {v}"),
            Incoming::Text(t) => format!("non-JSON text frame {t:?}"),
            Incoming::Binary(n) => format!("binary frame of {n} bytes"),
            Incoming::Close(Some(c), r) => format!("close frame, code {c} {r:?}"),
            Incoming::Close(None, _) => "close frame without a code".into(),
            Incoming::Ended(why) => format!("end of connection ({why})"),
            Incoming::Event { event, data } => format!("SSE event `{event}` with data {data}"),
        }
    }
}

impl From<crate::polling::PollEvent> for Incoming {
    fn from(event: crate::polling::PollEvent) -> Self {
        match event {
            crate::polling::PollEvent::Frame(v) => Incoming::Frame(v),
            crate::polling::PollEvent::Closed(code, reason) => Incoming::Close(Some(code), reason),
            crate::polling::PollEvent::Ended(why) => Incoming::Ended(why),
        }
    }
}

struct Conn {
    sink: Option<WsSink>,
    /// A `ws` actor carried over long polling ([`Options::polling`]).
    poll: Option<crate::polling::PollSink>,
    pending: std::collections::VecDeque<Incoming>,
    rx: UnboundedReceiver<Incoming>,
    reader: JoinHandle<()>,
    closed: bool,
}

struct Run<'a> {
    session: &'a Session,
    opts: &'a Options,
    vars: Vars,
    conns: HashMap<String, Conn>,
    violations: Arc<Mutex<Vec<String>>>,
    reported: usize,
    http: reqwest::Client,
}

fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:08x}", h.finish() as u32)
}

/// Percent-encodes a query component.
pub fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl<'a> Run<'a> {
    fn new(session: &'a Session, opts: &'a Options) -> Self {
        let mut vars = Vars::default();
        vars.set("run", Value::String(token()));
        vars.set("session", Value::String(session.name().to_owned()));
        Run {
            session,
            opts,
            vars,
            conns: HashMap::new(),
            violations: Arc::new(Mutex::new(Vec::new())),
            reported: 0,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
        }
    }

    fn violations(&mut self) -> Option<String> {
        let v = self.violations.lock().expect("lock");
        if v.len() > self.reported {
            let text = v[self.reported..].join("\n");
            self.reported = v.len();
            Some(text)
        } else {
            None
        }
    }

    fn timeout(&self, step: &Step) -> Duration {
        step.timeout_ms
            .or(self.session.header.timeout_ms)
            .map(Duration::from_millis)
            .unwrap_or(self.opts.step_timeout)
    }

    fn url(
        &self,
        path: &str,
        query: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, String> {
        let path = self.vars.interpolate(path)?;
        let mut url = format!("{}{}", self.opts.target, path);
        let mut sep = if path.contains('?') { '&' } else { '?' };
        for (k, v) in query {
            let v = self.vars.interpolate(v)?;
            url.push(sep);
            url.push_str(&encode_component(k));
            url.push('=');
            url.push_str(&encode_component(&v));
            sep = '&';
        }
        Ok(url)
    }

    fn conn(&mut self, actor: &str) -> Result<&mut Conn, String> {
        self.conns
            .get_mut(actor)
            .ok_or_else(|| format!("{actor} is not connected (add a `connect` step first)"))
    }

    async fn step(&mut self, step: &Step) -> Result<(), String> {
        let timeout = self.timeout(step);
        let actor = step.actor.clone().unwrap_or_default();
        let kind = self.session.header.actors.get(&actor).copied();
        match &step.action {
            Action::Sleep(ms) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                Ok(())
            }
            Action::Connect(c) => match kind {
                Some(crate::session::ActorKind::Ws) if self.opts.polling => {
                    self.connect_poll(&actor, timeout).await
                }
                Some(crate::session::ActorKind::Ws) => self.connect_ws(&actor, c, timeout).await,
                _ => self.connect_sse(&actor, c, timeout).await,
            },
            Action::Send(v) => {
                let v = self.vars.substitute(v)?;
                self.send(&actor, Message::text(v.to_string())).await
            }
            Action::SendRaw(r) => {
                let text = r.text.repeat(r.repeat.unwrap_or(1));
                self.send(&actor, Message::text(text)).await
            }
            Action::Expect(pattern) => {
                let got = self
                    .next(&actor, timeout, false)
                    .await
                    .map_err(|e| format!("{e}\n  expected: {}", pretty(pattern)))?;
                match got {
                    Incoming::Frame(v) => self.check(pattern, &v, "frame"),
                    other => Err(format!(
                        "expected a frame, got {}\n  expected: {}",
                        other.describe(),
                        pretty(pattern)
                    )),
                }
            }
            Action::ExpectUnordered(patterns) => {
                let mut frames = Vec::new();
                for _ in patterns {
                    let got = self.next(&actor, timeout, false).await.map_err(|e| {
                        format!(
                            "{e} (after {} of {} frames)\n  expected in any order: {}",
                            frames.len(),
                            patterns.len(),
                            pretty(&Value::Array(patterns.clone()))
                        )
                    })?;
                    match got {
                        Incoming::Frame(v) => frames.push(v),
                        other => {
                            return Err(format!(
                                "expected a frame, got {}\n  expected in any order: {}",
                                other.describe(),
                                pretty(&Value::Array(patterns.clone()))
                            ))
                        }
                    }
                }
                let pattern = serde_json::json!({ "$unordered": patterns });
                self.check(&pattern, &Value::Array(frames), "frames")
            }
            Action::ExpectOptional(pattern) => {
                let Ok(got) = self.next(&actor, timeout, false).await else {
                    return Ok(());
                };
                if let Incoming::Frame(v) = &got {
                    if matches(pattern, v, &mut self.vars).is_ok() {
                        return Ok(());
                    }
                }
                self.conn(&actor)?.pending.push_front(got);
                Ok(())
            }
            Action::ExpectEvent(ev) => {
                let got = self
                    .next(&actor, timeout, ev.event != "ping")
                    .await
                    .map_err(|e| {
                        format!(
                            "{e}\n  expected: SSE event `{}` with data {}",
                            ev.event,
                            pretty(&ev.data)
                        )
                    })?;
                match got {
                    Incoming::Event { event, data } => {
                        if event != ev.event {
                            return Err(format!(
                                "expected SSE event `{}`, got `{event}` with data {data}",
                                ev.event
                            ));
                        }
                        let parsed: Value =
                            serde_json::from_str(&data).unwrap_or(Value::String(data.clone()));
                        self.check(&ev.data, &parsed, "event data")
                    }
                    other => Err(format!(
                        "expected SSE event `{}`, got {}",
                        ev.event,
                        other.describe()
                    )),
                }
            }
            Action::ExpectNone(n) => {
                let skip_ping = kind == Some(crate::session::ActorKind::Sse);
                match self
                    .next(&actor, Duration::from_millis(n.ms), skip_ping)
                    .await
                {
                    Ok(got) => Err(format!(
                        "expected nothing for {} ms, got {}",
                        n.ms,
                        got.describe()
                    )),
                    Err(_) => Ok(()),
                }
            }
            Action::ExpectClose(c) => {
                let got = self.next(&actor, timeout, false).await?;
                let want = c
                    .code
                    .map(|c| format!("a close with code {c}"))
                    .unwrap_or_else(|| "a close".into());
                let result = match got {
                    Incoming::Close(code, _) if c.code.is_none() || code == c.code => Ok(()),
                    Incoming::Ended(_) if c.code.is_none() => Ok(()),
                    other => Err(format!("expected {want}, got {}", other.describe())),
                };
                if let Ok(conn) = self.conn(&actor) {
                    conn.closed = true;
                    conn.sink = None;
                }
                result
            }
            Action::Disconnect(mode) => {
                let mut conn = self
                    .conns
                    .remove(&actor)
                    .ok_or_else(|| format!("{actor} is not connected"))?;
                if let Some(poll) = conn.poll.as_mut() {
                    if matches!(mode, Disconnect::Clean) {
                        poll.close().await;
                    }
                }
                match (mode, conn.sink.as_mut()) {
                    (Disconnect::Clean, Some(sink)) if !conn.closed => {
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame {
                                code: CloseCode::Normal,
                                reason: "bye".into(),
                            })))
                            .await;
                        // Wait briefly for the server's close reply, then let go.
                        let _ = tokio::time::timeout(Duration::from_millis(500), async {
                            while let Some(i) = conn.rx.recv().await {
                                if matches!(i, Incoming::Close(..) | Incoming::Ended(_)) {
                                    break;
                                }
                            }
                        })
                        .await;
                        conn.reader.abort();
                    }
                    _ => conn.reader.abort(),
                }
                drop(conn);
                Ok(())
            }
            Action::Http(h) => self.http_step(h, timeout).await,
        }
    }

    /// After the last step: every connection that can still talk sends a probe the server
    /// answers in order (`{"type":"ping"}` when the server has `app-ping`, otherwise a frame of
    /// an unknown type, which every server answers with the core `Unknown message type` error),
    /// and the next frame must be that answer. Anything before it is a frame no step expected.
    /// Closed connections and SSE streams cannot be probed: what has already arrived on them
    /// (after the WebSocket probes' round trips) must be nothing but SSE `ping` events.
    async fn trailing(&mut self) -> Result<(), String> {
        let app_ping = self
            .opts
            .capabilities
            .as_ref()
            .is_some_and(|c| c.has("app-ping"));
        let (probe, answer) = if app_ping {
            (
                serde_json::json!({"type":"ping"}),
                serde_json::json!({"type":"pong"}),
            )
        } else {
            (
                serde_json::json!({"type":"conformance_sync"}),
                serde_json::json!({"type":"error","message":"Unknown message type","code":{"$optional":"$string"}}),
            )
        };
        let mut actors: Vec<String> = self.conns.keys().cloned().collect();
        actors.sort();
        let timeout = self.opts.step_timeout;
        let mut problems = Vec::new();
        // The probes first, so that the streams have had the round trips to deliver.
        for actor in &actors {
            let conn = self.conns.get_mut(actor).expect("listed");
            if (conn.sink.is_none() && conn.poll.is_none()) || conn.closed {
                continue;
            }
            if let Some(i) = conn.pending.pop_front() {
                problems.push(format!(
                    "{actor} got {} that no step expected",
                    i.describe()
                ));
                continue;
            }
            if let Err(e) = self.send(actor, Message::text(probe.to_string())).await {
                problems.push(format!("{actor}: sending the probe {probe} failed: {e}"));
                continue;
            }
            match self.next(actor, timeout, false).await {
                Ok(Incoming::Frame(v)) if crate::matcher::is_match(&answer, &v, &self.vars) => {}
                Ok(other) => problems.push(format!(
                    "{actor} got {} that no step expected (the probe {probe} was answered after it, or not at all)",
                    other.describe()
                )),
                Err(e) => problems.push(format!(
                    "{actor}: the probe {probe} got no answer: {e} (expected {answer})"
                )),
            }
        }
        for actor in &actors {
            let conn = self.conns.get_mut(actor).expect("listed");
            if (conn.sink.is_some() || conn.poll.is_some()) && !conn.closed {
                continue;
            }
            let mut arrived: Vec<Incoming> = conn.pending.drain(..).collect();
            while let Ok(i) = conn.rx.try_recv() {
                arrived.push(i);
            }
            for i in arrived {
                match &i {
                    Incoming::Event { event, .. } if event == "ping" => {}
                    Incoming::Ended(_) if conn.closed => {}
                    _ => problems.push(format!(
                        "{actor} got {} that no step expected",
                        i.describe()
                    )),
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    fn check(&mut self, pattern: &Value, actual: &Value, what: &str) -> Result<(), String> {
        matches(pattern, actual, &mut self.vars)
            .map_err(|errs| mismatch_report(what, pattern, actual, &errs))
    }

    async fn next(
        &mut self,
        actor: &str,
        timeout: Duration,
        skip_ping: bool,
    ) -> Result<Incoming, String> {
        let conn = self.conn(actor)?;
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(i) = conn.pending.pop_front() {
            return Ok(i);
        }
        loop {
            match tokio::time::timeout_at(deadline, conn.rx.recv()).await {
                Err(_) => return Err(format!("nothing arrived within {} ms", timeout.as_millis())),
                Ok(None) => return Err("the connection is gone".into()),
                Ok(Some(Incoming::Event { event, .. })) if skip_ping && event == "ping" => continue,
                Ok(Some(i)) => return Ok(i),
            }
        }
    }

    async fn send(&mut self, actor: &str, msg: Message) -> Result<(), String> {
        let conn = self.conn(actor)?;
        if let Some(poll) = conn.poll.as_mut() {
            let frame = match &msg {
                Message::Text(t) => serde_json::from_str(t.as_str())
                    .unwrap_or_else(|_| Value::String(t.to_string())),
                other => return Err(format!("{actor} polls: it cannot send {other:?}")),
            };
            return poll.send(frame).await;
        }
        let sink = conn
            .sink
            .as_mut()
            .ok_or_else(|| format!("{actor} cannot send"))?;
        sink.send(msg)
            .await
            .map_err(|e| format!("sending failed: {e}"))
    }

    async fn connect_ws(
        &mut self,
        actor: &str,
        c: &Connect,
        timeout: Duration,
    ) -> Result<(), String> {
        let url = self.url(&c.path, &c.query)?;
        let url = if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            url
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("bad WebSocket URL {url}: {e}"))?;
        for (k, v) in &c.headers {
            let v = self.vars.interpolate(v)?;
            request.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
                v.parse().map_err(|e| format!("bad header {k}: {e}"))?,
            );
        }
        let (ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request))
            .await
            .map_err(|_| format!("WebSocket connect to {url} timed out"))?
            .map_err(|e| format!("WebSocket connect to {url} failed: {e}"))?;
        let (sink, mut stream) = ws.split();
        let (tx, rx) = unbounded_channel();
        let violations = self.violations.clone();
        let name = actor.to_owned();
        let reader = tokio::spawn(async move {
            let schemas = Schemas::get();
            while let Some(msg) = stream.next().await {
                let incoming = match msg {
                    Ok(Message::Text(t)) => match serde_json::from_str::<Value>(t.as_str()) {
                        Ok(v) => {
                            if let Err(e) = schemas.check_server_frame(&v) {
                                violations
                                    .lock()
                                    .expect("lock")
                                    .push(format!("frame to {name}: {e}"));
                            }
                            Incoming::Frame(v)
                        }
                        Err(_) => {
                            violations
                                .lock()
                                .expect("lock")
                                .push(format!("frame to {name} is not JSON: {:?}", t.as_str()));
                            Incoming::Text(t.to_string())
                        }
                    },
                    Ok(Message::Binary(b)) => {
                        violations.lock().expect("lock").push(format!(
                            "binary frame to {name} ({} bytes); every frame is JSON text",
                            b.len()
                        ));
                        Incoming::Binary(b.len())
                    }
                    Ok(Message::Close(frame)) => {
                        let (code, reason) = frame
                            .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                            .unwrap_or((None, String::new()));
                        let _ = tx.send(Incoming::Close(code, reason));
                        // Keep polling for a moment: that sends the close reply. Then let go
                        // of the connection (the sink goes with the step that saw the close),
                        // as a browser does: a server that stopped reading after refusing a
                        // frame waits for the client's end of the TCP connection before it
                        // counts the connection gone and announces its user's departure.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while let Some(Ok(_)) = stream.next().await {}
                        })
                        .await;
                        return;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Incoming::Ended(e.to_string()));
                        return;
                    }
                };
                if tx.send(incoming).is_err() {
                    return;
                }
            }
            let _ = tx.send(Incoming::Ended("stream ended".into()));
        });
        self.conns.insert(
            actor.to_owned(),
            Conn {
                sink: Some(sink),
                poll: None,
                pending: Default::default(),
                rx,
                reader,
                closed: false,
            },
        );
        Ok(())
    }

    async fn connect_poll(&mut self, actor: &str, timeout: Duration) -> Result<(), String> {
        let (tx, rx) = unbounded_channel::<Incoming>();
        let violations = self.violations.clone();
        let name = actor.to_owned();
        let check = move |v: &Value| {
            if let Err(e) = Schemas::get().check_server_frame(v) {
                violations
                    .lock()
                    .expect("lock")
                    .push(format!("frame to {name}: {e}"));
            }
        };
        let target = self.opts.target.clone();
        let (poll, reader) = tokio::time::timeout(
            timeout,
            crate::polling::connect(&self.http, &target, tx, check),
        )
        .await
        .map_err(|_| format!("opening a polling session at {target} timed out"))??;
        self.conns.insert(
            actor.to_owned(),
            Conn {
                sink: None,
                poll: Some(poll),
                pending: Default::default(),
                rx,
                reader,
                closed: false,
            },
        );
        Ok(())
    }

    async fn connect_sse(
        &mut self,
        actor: &str,
        c: &Connect,
        timeout: Duration,
    ) -> Result<(), String> {
        let url = self.url(&c.path, &c.query)?;
        let mut req = self.http.get(&url).header("accept", "text/event-stream");
        for (k, v) in &c.headers {
            req = req.header(k.as_str(), self.vars.interpolate(v)?);
        }
        let resp = tokio::time::timeout(timeout, req.send())
            .await
            .map_err(|_| format!("GET {url} timed out"))?
            .map_err(|e| format!("GET {url} failed: {}", chain(&e)))?;
        let status = resp.status().as_u16();
        let want_status = c.status.clone().unwrap_or(Value::from(200));
        self.check(&want_status, &Value::from(status), "status")?;
        if let Some(headers) = &c.expect_headers {
            self.check_headers(headers, resp.headers())?;
        }
        let (tx, rx) = unbounded_channel();
        let violations = self.violations.clone();
        let name = actor.to_owned();
        let reader = tokio::spawn(sse_reader(resp, tx, violations, name));
        self.conns.insert(
            actor.to_owned(),
            Conn {
                sink: None,
                poll: None,
                pending: Default::default(),
                rx,
                reader,
                closed: false,
            },
        );
        Ok(())
    }

    fn check_headers(
        &mut self,
        expected: &std::collections::BTreeMap<String, Value>,
        actual: &reqwest::header::HeaderMap,
    ) -> Result<(), String> {
        let mut errors = Vec::new();
        for (name, pattern) in expected {
            let values: Vec<String> = actual
                .get_all(name.as_str())
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            if pattern.is_null() {
                if !values.is_empty() {
                    errors.push(format!(
                        "header {name}: expected absent, got {:?}",
                        values.join(", ")
                    ));
                }
                continue;
            }
            if values.is_empty() {
                errors.push(format!("header {name}: missing (expected {pattern})"));
                continue;
            }
            let got = Value::String(values.join(", "));
            if let Err(errs) = matches(pattern, &got, &mut self.vars) {
                for e in errs {
                    errors.push(format!("header {name}: {}", e.reason));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            let all: Vec<String> = actual
                .iter()
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            Err(format!(
                "response headers differ:\n  - {}\n  headers received: {}",
                errors.join("\n  - "),
                all.join(" | ")
            ))
        }
    }

    async fn http_step(&mut self, h: &Http, timeout: Duration) -> Result<(), String> {
        let url = self.url(&h.path, &h.query)?;
        let method = reqwest::Method::from_bytes(h.method.as_bytes())
            .map_err(|e| format!("bad method {}: {e}", h.method))?;
        let mut req = self.http.request(method.clone(), &url);
        let has_ct = h
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"));
        for (k, v) in &h.headers {
            req = req.header(k.as_str(), self.vars.interpolate(v)?);
        }
        if let Some(body) = &h.body {
            let body = self.vars.substitute(body)?;
            if !has_ct {
                req = req.header("content-type", "application/json");
            }
            req = req.body(body.to_string());
        } else if let Some(raw) = &h.raw_body {
            if !has_ct {
                req = req.header("content-type", "application/json");
            }
            req = req.body(raw.clone());
        }
        let resp = tokio::time::timeout(timeout, req.send())
            .await
            .map_err(|_| format!("{method} {url} timed out"))?
            .map_err(|e| format!("{method} {url} failed: {}", chain(&e)))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = tokio::time::timeout(timeout, resp.text())
            .await
            .map_err(|_| format!("{method} {url}: reading the body timed out"))?
            .map_err(|e| format!("{method} {url}: reading the body failed: {e}"))?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let path = h.path.split('?').next().unwrap_or("");
        match &parsed {
            Some(v) => {
                if let Err(e) = Schemas::get().check_http(path, status, v) {
                    self.violations.lock().expect("lock").push(format!(
                        "{method} {path} answered {status} with a body that {e}"
                    ));
                }
            }
            None if status >= 400 && !text.is_empty() => {
                self.violations.lock().expect("lock").push(format!(
                    "{method} {path} answered {status} with a body that is not JSON: {text:?}"
                ));
            }
            None => {}
        }
        let body_value = parsed.clone().unwrap_or(Value::String(text.clone()));
        let mut problems = Vec::new();
        if let Err(errs) = matches(&h.expect.status, &Value::from(status), &mut self.vars) {
            problems.push(format!(
                "status: {} (body: {})",
                errs[0].reason,
                trim(&text)
            ));
        }
        if let Err(e) = self.check_headers(&h.expect.headers, &headers) {
            problems.push(e);
        }
        if let Some(pattern) = &h.expect.body {
            if let Err(errs) = matches(pattern, &body_value, &mut self.vars) {
                problems.push(mismatch_report("body", pattern, &body_value, &errs));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{method} {url}\n{}", problems.join("\n")))
        }
    }

    async fn shutdown(&mut self) {
        for (_, mut conn) in self.conns.drain() {
            if let Some(poll) = conn.poll.as_mut() {
                if !conn.closed {
                    let _ = tokio::time::timeout(Duration::from_millis(500), poll.close()).await;
                }
            }
            if let Some(sink) = conn.sink.as_mut() {
                if !conn.closed {
                    let _ = tokio::time::timeout(
                        Duration::from_millis(200),
                        sink.send(Message::Close(None)),
                    )
                    .await;
                }
            }
            conn.reader.abort();
        }
    }
}

/// An error with its causes, `outer: inner: root`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

fn trim(text: &str) -> String {
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text.to_owned()
    }
}

fn pretty(v: &Value) -> String {
    let s = v.to_string();
    trim(&s)
}

fn mismatch_report(what: &str, pattern: &Value, actual: &Value, errs: &[Mismatch]) -> String {
    let mut s = format!(
        "{what} does not match\n  expected: {}\n  got:      {}",
        pretty(pattern),
        pretty(actual)
    );
    for e in errs {
        s.push_str(&format!("\n  - {e}"));
    }
    s
}

async fn sse_reader(
    resp: reqwest::Response,
    tx: UnboundedSender<Incoming>,
    violations: Arc<Mutex<Vec<String>>>,
    name: String,
) {
    let schemas = Schemas::get();
    let mut parser = SseParser::default();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Incoming::Ended(e.to_string()));
                return;
            }
        };
        for ev in parser.push(&chunk) {
            match serde_json::from_str::<Value>(&ev.data) {
                Ok(v) => {
                    if let Err(e) = schemas.check_sse(&ev.event, &v) {
                        violations
                            .lock()
                            .expect("lock")
                            .push(format!("SSE event `{}` to {name}: {e}", ev.event));
                    }
                }
                Err(_) => violations.lock().expect("lock").push(format!(
                    "SSE event `{}` to {name} has data that is not JSON: {:?}",
                    ev.event, ev.data
                )),
            }
            if tx
                .send(Incoming::Event {
                    event: ev.event,
                    data: ev.data,
                })
                .is_err()
            {
                return;
            }
        }
    }
    let _ = tx.send(Incoming::Ended("stream ended".into()));
}
