//! Profiles: the core protocol every server speaks (the chapter's frames) and the named
//! capabilities a server may add. A session declares the capabilities it needs in its header
//! (`"requires": ["recovery"]`; none means core); the runner learns the server's capabilities from
//! its `welcome` frame (or `--capabilities`) and runs only the sessions that apply.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The capability names the protocol defines (PROTOCOL.md), in the order they are reported.
pub const KNOWN: &[&str] = &[
    "recovery",
    "offsets",
    "room-in-presence",
    "app-ping",
    "auth",
    "presence-diff",
    "documents",
    "streams",
    "signaling",
    "long-polling",
];

/// Where the runner's idea of the server's capabilities came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Given with `--capabilities`.
    Given,
    /// Read from the `welcome` frame's `capabilities` array.
    Welcome,
    /// The `welcome` frame has no `capabilities` list: a core-only server.
    WelcomeWithoutList,
}

/// The server's capabilities, and how the runner knows them.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// The capability names.
    pub names: BTreeSet<String>,
    /// Where they came from.
    pub source: Source,
    /// The `protocol` version the welcome announced, if any.
    pub protocol: Option<String>,
    /// Notes for the reader (an unknown name announced, a 401 on the plain probe).
    pub notes: Vec<String>,
}

impl Capabilities {
    /// Capabilities given by hand (`--capabilities a,b,c`). Unknown names are kept, with a note.
    pub fn given(list: &str) -> Capabilities {
        let names: BTreeSet<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "core")
            .map(str::to_owned)
            .collect();
        let notes = unknown_notes(&names);
        Capabilities {
            names,
            source: Source::Given,
            protocol: None,
            notes,
        }
    }

    /// Whether the server has `name`.
    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The capabilities of `requires` the server lacks.
    pub fn missing<'a>(&self, requires: &'a [String]) -> Vec<&'a str> {
        requires
            .iter()
            .filter(|r| !self.has(r))
            .map(String::as_str)
            .collect()
    }

    /// One line saying what the runner assumes and why.
    pub fn describe(&self) -> String {
        let list = if self.names.is_empty() {
            "none (core only)".to_owned()
        } else {
            self.names.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        let from = match self.source {
            Source::Given => "given with --capabilities".to_owned(),
            Source::Welcome => match &self.protocol {
                Some(v) => format!("announced in welcome, protocol {v}"),
                None => "announced in welcome".to_owned(),
            },
            Source::WelcomeWithoutList if self.names.is_empty() => {
                "the welcome frame has no capabilities list: a core-only server".to_owned()
            }
            Source::WelcomeWithoutList => "the welcome frame has no capabilities list".to_owned(),
        };
        format!("capabilities: {list} ({from})")
    }
}

fn unknown_notes(names: &BTreeSet<String>) -> Vec<String> {
    names
        .iter()
        .filter(|n| !KNOWN.contains(&n.as_str()))
        .map(|n| format!("capability {n:?} is not one this suite knows; no session requires it"))
        .collect()
}

/// Reads the capabilities from the first frame of a WebSocket on `target` + `/ws`. With a
/// `token`, the probe sends it as `Authorization: Bearer`; a server that refuses the plain probe
/// with 401 and accepts the token has the `auth` capability whatever its welcome says.
pub async fn probe(
    target: &str,
    token: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Capabilities> {
    let url = format!("{}/ws", target.trim_end_matches('/'));
    let url = match url.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => anyhow::bail!("--target {target:?} is not a URL such as http://127.0.0.1:8080"),
    };
    let mut notes = Vec::new();
    let plain = first_frame(&url, None, timeout).await;
    let (welcome, refused_plain) = match (plain, token) {
        (Ok(v), _) => (v, false),
        (Err(e), Some(token)) if e.unauthorized => {
            notes.push(
                "the unauthenticated probe was refused with 401; probed again with the token"
                    .to_owned(),
            );
            let v = first_frame(&url, Some(token), timeout)
                .await
                .map_err(|e| anyhow::anyhow!("probing {url} with the token: {}", e.text))?;
            (v, true)
        }
        (Err(e), None) if e.unauthorized => anyhow::bail!(
            "probing {url}: the server refused an unauthenticated WebSocket with 401. Give a token \
             for the probe with --probe-token, or the server's capabilities with --capabilities"
        ),
        (Err(e), _) => anyhow::bail!("probing {url}: {}", e.text),
    };
    if welcome.get("type").and_then(Value::as_str) != Some("welcome") {
        anyhow::bail!("probing {url}: the first frame is not a welcome: {welcome}");
    }
    let protocol = welcome
        .get("protocol")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (mut names, source) = match welcome.get("capabilities") {
        None => (BTreeSet::new(), Source::WelcomeWithoutList),
        Some(Value::Array(items)) => {
            let mut names = BTreeSet::new();
            for item in items {
                match item.as_str() {
                    Some(s) => {
                        names.insert(s.to_owned());
                    }
                    None => anyhow::bail!(
                        "probing {url}: welcome's capabilities hold a non-string: {welcome}"
                    ),
                }
            }
            (names, Source::Welcome)
        }
        Some(other) => {
            anyhow::bail!("probing {url}: welcome's capabilities is not an array: {other}")
        }
    };
    notes.extend(unknown_notes(&names));
    if refused_plain && names.insert("auth".to_owned()) {
        notes.push("`auth` assumed: the server refused an unauthenticated WebSocket".to_owned());
    }
    Ok(Capabilities {
        names,
        source,
        protocol,
        notes,
    })
}

struct ProbeError {
    text: String,
    unauthorized: bool,
}

async fn first_frame(
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Value, ProbeError> {
    let err = |text: String| ProbeError {
        text,
        unauthorized: false,
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| err(format!("bad WebSocket URL: {e}")))?;
    if let Some(t) = token {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {t}")
                .parse()
                .map_err(|e| err(format!("bad token: {e}")))?,
        );
    }
    let connected = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| err("the WebSocket connect timed out".into()))?;
    let (mut ws, _) = match connected {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            return Err(ProbeError {
                text: format!("the upgrade was refused with {}", resp.status()),
                unauthorized: resp.status().as_u16() == 401,
            })
        }
        Err(e) => return Err(err(format!("the WebSocket connect failed: {e}"))),
    };
    let first = tokio::time::timeout(timeout, ws.next())
        .await
        .map_err(|_| err("no frame arrived".into()))?;
    let _ = ws.close(None).await;
    match first {
        Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str())
            .map_err(|_| err(format!("the first frame is not JSON: {:?}", t.as_str()))),
        Some(Ok(other)) => Err(err(format!("the first frame is not text: {other:?}"))),
        Some(Err(e)) => Err(err(format!("reading the first frame failed: {e}"))),
        None => Err(err("the connection ended before any frame".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &str, passed: bool) -> crate::Outcome {
        crate::Outcome {
            name: name.into(),
            file: String::new(),
            requires: Vec::new(),
            failure: (!passed).then(|| "failed".to_owned()),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn expected_failures_must_match_exactly() {
        let list = ExpectedFailures::parse("# why\nws-a  # reason\n\nws-b\n");
        assert_eq!(list.names.len(), 2);
        let report = |outcomes| ProfileReport {
            capabilities: Capabilities::given(""),
            outcomes,
            skipped: Vec::new(),
        };
        let ok = report(vec![
            outcome("ws-a", false),
            outcome("ws-b", false),
            outcome("ws-c", true),
        ]);
        assert!(list.check(&ok).is_ok());
        // Another session fails, a listed one passes, a listed one did not run.
        let bad = report(vec![outcome("ws-a", true), outcome("ws-c", false)]);
        let problems = list.check(&bad).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("ws-a is listed as an expected failure but passed"));
        assert!(problems[1].contains("ws-c failed and is not in the list"));
        assert!(problems[2].contains("ws-b is listed as an expected failure but did not run"));
    }

    #[test]
    fn given_list() {
        let c = Capabilities::given("recovery, offsets,,core,warp-drive");
        assert!(c.has("recovery") && c.has("offsets") && !c.has("core"));
        assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
        assert!(c.notes[0].contains("warp-drive"));
        let requires = vec!["recovery".to_owned(), "auth".to_owned()];
        assert_eq!(c.missing(&requires), vec!["auth"]);
    }
}

/// A session left out because the server lacks a capability it needs.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The session's name.
    pub name: String,
    /// The capabilities it needs that the server lacks.
    pub missing: Vec<String>,
}

/// The result of a run by profile.
#[derive(Debug, Clone)]
pub struct ProfileReport {
    /// What the runner took the server's capabilities to be.
    pub capabilities: Capabilities,
    /// The sessions that applied, in order.
    pub outcomes: Vec<crate::Outcome>,
    /// The sessions that did not apply.
    pub skipped: Vec<Skipped>,
}

/// Runs the sessions that apply to the server: those whose `requires` the server has. The
/// capabilities are `opts.capabilities` when set (`--capabilities`), otherwise read from the
/// server's welcome.
pub async fn run_profile(
    sessions: Vec<crate::Session>,
    opts: &crate::Options,
) -> anyhow::Result<ProfileReport> {
    run_profile_with(sessions, opts, |_, _| {}).await
}

/// [`run_profile`], calling `before` with the capabilities and the number of sessions that
/// apply once they are known, before any session runs.
pub async fn run_profile_with(
    sessions: Vec<crate::Session>,
    opts: &crate::Options,
    before: impl FnOnce(&Capabilities, usize),
) -> anyhow::Result<ProfileReport> {
    let capabilities = match &opts.capabilities {
        Some(c) => c.clone(),
        None => probe(&opts.target, opts.probe_token.as_deref(), opts.step_timeout).await?,
    };
    let mut opts = opts.clone();
    opts.capabilities = Some(capabilities.clone());
    let (apply, skip): (Vec<_>, Vec<_>) = sessions
        .into_iter()
        .partition(|s| capabilities.missing(&s.header.requires).is_empty());
    let skipped = skip
        .iter()
        .map(|s| Skipped {
            name: s.name().to_owned(),
            missing: capabilities
                .missing(&s.header.requires)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        })
        .collect();
    before(&capabilities, apply.len());
    let outcomes = crate::run_all(apply, &opts).await;
    Ok(ProfileReport {
        capabilities,
        outcomes,
        skipped,
    })
}

impl ProfileReport {
    /// How many sessions passed and failed.
    pub fn counts(&self) -> (usize, usize) {
        let passed = self.outcomes.iter().filter(|o| o.passed()).count();
        (passed, self.outcomes.len() - passed)
    }

    /// The last line: `N passed, M failed` over the sessions that applied, and `, K skipped`
    /// when some did not.
    pub fn summary(&self) -> String {
        let (passed, failed) = self.counts();
        if self.skipped.is_empty() {
            format!("{passed} passed, {failed} failed")
        } else {
            format!(
                "{passed} passed, {failed} failed, {} skipped",
                self.skipped.len()
            )
        }
    }

    /// What was skipped and why, one line per session.
    pub fn skipped_lines(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|s| {
                format!(
                    "SKIP {}: needs {}, which the server does not have",
                    s.name,
                    s.missing.join(", ")
                )
            })
            .collect()
    }

    /// One line per profile: `core` (sessions that need no capability), then every capability
    /// the server has or a session needs, with its passed / failed / skipped counts. A session
    /// that needs two capabilities counts under both.
    pub fn capability_lines(&self) -> Vec<String> {
        let mut names: Vec<String> = KNOWN.iter().map(|s| (*s).to_owned()).collect();
        for n in &self.capabilities.names {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        let count = |pred: &dyn Fn(&[String]) -> bool| {
            let passed = self
                .outcomes
                .iter()
                .filter(|o| pred(&o.requires) && o.passed())
                .count();
            let failed = self
                .outcomes
                .iter()
                .filter(|o| pred(&o.requires) && !o.passed())
                .count();
            (passed, failed)
        };
        let mut lines = Vec::new();
        let (p, f) = count(&|r: &[String]| r.is_empty());
        lines.push(format!("core: {p} passed, {f} failed"));
        for name in names {
            let needs = |r: &[String]| r.contains(&name);
            let (p, f) = count(&needs);
            let s = self
                .skipped
                .iter()
                .filter(|s| s.missing.contains(&name))
                .count();
            let has = self.capabilities.has(&name);
            if !has && p + f + s == 0 {
                continue;
            }
            let mut line = format!("{name}: {p} passed, {f} failed");
            if s > 0 {
                line.push_str(&format!(", {s} skipped"));
            }
            if !has {
                line.push_str(" (the server does not have it)");
            } else if p + f + s == 0 {
                line.push_str(" (no session needs it)");
            }
            lines.push(line);
        }
        lines
    }
}

/// An explicit list of the sessions a given server is expected to fail, with the reasons: one
/// session name per line, `#` starts a comment.
#[derive(Debug, Clone, Default)]
pub struct ExpectedFailures {
    /// The session names.
    pub names: BTreeSet<String>,
}

impl ExpectedFailures {
    /// Parses the list.
    pub fn parse(text: &str) -> ExpectedFailures {
        let names = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        ExpectedFailures { names }
    }

    /// Compares a run with the list. Every problem is a line: a session that failed but is not
    /// listed, a listed session that passed, a listed session that did not run.
    pub fn check(&self, report: &ProfileReport) -> Result<String, Vec<String>> {
        let mut problems = Vec::new();
        for o in &report.outcomes {
            let listed = self.names.contains(&o.name);
            match (o.passed(), listed) {
                (false, false) => problems.push(format!(
                    "{} failed and is not in the list of expected failures",
                    o.name
                )),
                (true, true) => problems.push(format!(
                    "{} is listed as an expected failure but passed: take it off the list",
                    o.name
                )),
                _ => {}
            }
        }
        for name in &self.names {
            if !report.outcomes.iter().any(|o| &o.name == name) {
                problems.push(format!(
                    "{name} is listed as an expected failure but did not run (skipped, filtered or no such session)"
                ));
            }
        }
        if problems.is_empty() {
            Ok(format!(
                "expected failures: {} session(s) failed, all of them listed",
                self.names.len()
            ))
        } else {
            Err(problems)
        }
    }
}
