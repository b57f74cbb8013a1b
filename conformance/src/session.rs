//! The session file format: JSON Lines. The first line is the header, every further line is one
//! step. Blank lines and lines starting with `//` are ignored. See `conformance/README.md` and
//! `schemas/conformance/session.schema.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The kind of an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A WebSocket client.
    Ws,
    /// A Server-Sent Events stream.
    Sse,
    /// A caller of plain HTTP endpoints.
    Http,
}

/// The first line of a session file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The session's name, unique in the suite.
    pub session: String,
    /// What the session checks, in a sentence or two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The WIRE.md rows or protocol rules the session covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covers: Vec<String>,
    /// The session has effects every connection sees (an untargeted notification, an update):
    /// the runner runs it alone, never beside another session.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolated: bool,
    /// Default timeout of each step, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The capabilities the session needs (see `profile::KNOWN`); empty means the core protocol.
    /// The runner skips the session against a server without one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Frames or events still arriving after the last step do not fail the session. Without
    /// it, the runner checks every open connection for frames no step expected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_trailing: bool,
    /// Every actor by name.
    pub actors: BTreeMap<String, ActorKind>,
}

/// Opening a WebSocket or an SSE stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// The path, such as `/ws` or `/events`.
    pub path: String,
    /// Query parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// SSE only: the status expected (200 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// SSE only: response headers expected (names case-insensitive, values are patterns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_headers: Option<BTreeMap<String, Value>>,
}

/// Sending a frame that is not a JSON value as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRaw {
    /// The text to send.
    pub text: String,
    /// Send `text` repeated this many times (to build an oversized frame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<usize>,
}

/// Waiting for a close.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectClose {
    /// The close code expected; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// Waiting for silence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectNone {
    /// How long nothing may arrive, in milliseconds.
    pub ms: u64,
}

/// An SSE event expected.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectEvent {
    /// The event name (`message` when the server sent no `event:` line).
    pub event: String,
    /// The event's data: a pattern matched against the data parsed as JSON.
    pub data: Value,
}

/// An HTTP exchange.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// The method (`GET` when absent).
    #[serde(default = "get", skip_serializing_if = "is_get")]
    pub method: String,
    /// The path.
    pub path: String,
    /// Query parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (sent with `Content-Type: application/json` unless a header says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// A body sent as this text, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    /// The answer expected.
    pub expect: HttpExpect,
}

fn get() -> String {
    "GET".into()
}

fn is_get(m: &String) -> bool {
    m == "GET"
}

/// The answer an HTTP step expects.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// The status: a number or a pattern such as `{"$one_of":[200,204]}`.
    pub status: Value,
    /// Response headers (names case-insensitive, values are patterns).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Value>,
    /// The body: a pattern matched against the body parsed as JSON (or as a string when it is
    /// not JSON). Not checked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// How to disconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disconnect {
    /// A WebSocket close frame with code 1000 (an SSE stream is simply dropped).
    Clean,
    /// The TCP connection is dropped without a close frame.
    Abrupt,
}

/// What a step does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Open a WebSocket or SSE stream.
    Connect(Connect),
    /// Send a JSON frame (`${NAME}` is replaced in every string).
    Send(Value),
    /// Send a text frame as written.
    SendRaw(SendRaw),
    /// The next frame on this WebSocket matches the pattern.
    Expect(Value),
    /// The next frames, as many as there are patterns, match these patterns in any order: for
    /// frames caused by things that happen at once on different connections.
    ExpectUnordered(Vec<Value>),
    /// If the next frame matches the pattern it is consumed; otherwise it stays for the next
    /// step. For frames the protocol allows but does not require.
    ExpectOptional(Value),
    /// Nothing arrives on this actor for a while.
    ExpectNone(ExpectNone),
    /// The next thing on this WebSocket is a close (with this code).
    ExpectClose(ExpectClose),
    /// The next SSE event (other than `ping`) matches.
    ExpectEvent(ExpectEvent),
    /// An HTTP request and the answer expected.
    Http(Http),
    /// Close the connection.
    Disconnect(Disconnect),
    /// Wait this many milliseconds.
    Sleep(u64),
}

impl Action {
    /// The step's key in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Connect(_) => "connect",
            Action::Send(_) => "send",
            Action::SendRaw(_) => "send_raw",
            Action::Expect(_) => "expect",
            Action::ExpectOptional(_) => "expect_optional",
            Action::ExpectUnordered(_) => "expect_unordered",
            Action::ExpectNone(_) => "expect_none",
            Action::ExpectClose(_) => "expect_close",
            Action::ExpectEvent(_) => "expect_event",
            Action::Http(_) => "http",
            Action::Disconnect(_) => "disconnect",
            Action::Sleep(_) => "sleep",
        }
    }
}

/// One line after the header.
#[derive(Debug, Clone)]
pub struct Step {
    /// The actor the step belongs to (none for `sleep`).
    pub actor: Option<String>,
    /// What to do.
    pub action: Action,
    /// This step's timeout, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// A note for readers, printed when the step fails.
    pub comment: Option<String>,
    /// The line in the file (1-based).
    pub line: usize,
}

impl Step {
    /// The step as a JSON line.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        if let Some(actor) = &self.actor {
            map.insert("actor".into(), Value::String(actor.clone()));
        }
        if let Value::Object(action) = serde_json::to_value(&self.action).expect("serializable") {
            map.extend(action);
        }
        if let Some(t) = self.timeout_ms {
            map.insert("timeout_ms".into(), t.into());
        }
        if let Some(c) = &self.comment {
            map.insert("comment".into(), Value::String(c.clone()));
        }
        Value::Object(map)
    }
}

/// A parsed session file.
#[derive(Debug, Clone)]
pub struct Session {
    /// The header.
    pub header: Header,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Where it was read from.
    pub path: PathBuf,
}

impl Session {
    /// The session's name.
    pub fn name(&self) -> &str {
        &self.header.session
    }

    /// Parses a session from its text.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Session> {
        let mut header: Option<Header> = None;
        let mut steps = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with("//") {
                continue;
            }
            let value: Value = serde_json::from_str(trimmed)
                .with_context(|| format!("{}:{n}: not a JSON value", path.display()))?;
            match &header {
                None => {
                    header = Some(
                        serde_json::from_value(value)
                            .with_context(|| format!("{}:{n}: bad header", path.display()))?,
                    )
                }
                Some(h) => steps.push(
                    parse_step(value, n, h)
                        .with_context(|| format!("{}:{n}: bad step", path.display()))?,
                ),
            }
        }
        let header = header.ok_or_else(|| anyhow!("{}: empty session", path.display()))?;
        for r in &header.requires {
            if !crate::profile::KNOWN.contains(&r.as_str()) {
                bail!(
                    "{}: requires unknown capability {r:?} (known: {})",
                    path.display(),
                    crate::profile::KNOWN.join(", ")
                );
            }
        }
        Ok(Session {
            header,
            steps,
            path: path.to_owned(),
        })
    }

    /// Reads a session file.
    pub fn load(path: &Path) -> anyhow::Result<Session> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Session::parse(&text, path)
    }

    /// Reads every `*.jsonl` file in a directory, sorted by file name.
    pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<Session>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        paths.sort();
        let sessions = paths
            .iter()
            .map(|p| Session::load(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut seen = std::collections::HashSet::new();
        for s in &sessions {
            if !seen.insert(s.name().to_owned()) {
                bail!("two sessions are named {:?}", s.name());
            }
        }
        Ok(sessions)
    }

    /// The session as JSON Lines text.
    pub fn to_jsonl(&self) -> String {
        let mut out = serde_json::to_string(&self.header).expect("serializable");
        out.push('\n');
        for step in &self.steps {
            out.push_str(&step.to_json().to_string());
            out.push('\n');
        }
        out
    }
}

fn parse_step(value: Value, line: usize, header: &Header) -> anyhow::Result<Step> {
    let Value::Object(mut map) = value else {
        bail!("a step is a JSON object");
    };
    let actor = match map.remove("actor") {
        Some(Value::String(a)) => Some(a),
        Some(_) => bail!("`actor` is a string"),
        None => None,
    };
    let timeout_ms = match map.remove("timeout_ms") {
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| anyhow!("`timeout_ms` is a number"))?,
        ),
        None => None,
    };
    let comment = match map.remove("comment") {
        Some(Value::String(c)) => Some(c),
        Some(_) => bail!("`comment` is a string"),
        None => None,
    };
    if map.len() != 1 {
        let keys: Vec<_> = map.keys().collect();
        bail!("a step has exactly one action (connect, send, send_raw, expect, expect_optional, expect_unordered, expect_none, expect_close, expect_event, http, disconnect, sleep); found {keys:?}");
    }
    let action: Action = serde_json::from_value(Value::Object(map))?;
    let needs = match &action {
        Action::Sleep(_) => None,
        Action::Connect(_) => Some(&[ActorKind::Ws, ActorKind::Sse][..]),
        Action::Send(_)
        | Action::SendRaw(_)
        | Action::Expect(_)
        | Action::ExpectOptional(_)
        | Action::ExpectUnordered(_)
        | Action::ExpectClose(_) => Some(&[ActorKind::Ws][..]),
        Action::ExpectEvent(_) => Some(&[ActorKind::Sse][..]),
        Action::Http(_) => Some(&[ActorKind::Http][..]),
        Action::ExpectNone(_) | Action::Disconnect(_) => Some(&[ActorKind::Ws, ActorKind::Sse][..]),
    };
    if let Some(kinds) = needs {
        let Some(name) = &actor else {
            bail!("`{}` needs an `actor`", action.name());
        };
        let Some(kind) = header.actors.get(name) else {
            bail!("actor {name:?} is not declared in the header");
        };
        if !kinds.contains(kind) {
            bail!("`{}` is not a step for a {kind:?} actor", action.name());
        }
    }
    Ok(Step {
        actor,
        action,
        timeout_ms,
        comment,
        line,
    })
}
