//! Compatibility: every frame recorded in the conformance sessions (`conformance/sessions/`,
//! `conformance/sessions-auth/`, `conformance/tests/sessions/`) still validates against the
//! current schemas. Those sessions were recorded against earlier versions of the protocol, so a
//! schema change that would break an existing client or server fails here.
//!
//! A session's frames are patterns (`"$string"`, `"$capture:id"`, `{"$unordered":[...]}`, ...);
//! each is turned into one concrete frame that the pattern matches, then validated:
//! - what a WebSocket actor `send`s, against `client-message`, unless the session sends it to
//!   provoke a schema error (the actor's next expectation is an `error` with code
//!   `invalid_message`, `invalid_format` or `unknown_type`);
//! - what it `expect`s (also `expect_optional` and each of `expect_unordered`), against
//!   `server-message`;
//! - each SSE event's data, against the schema of its event;
//! - HTTP bodies of the publish endpoints: a request that is answered 200 against its request
//!   schema, the answer against its response schema or `error-response`.

mod common;

use std::path::{Path, PathBuf};

use common::{faults, validator, TS};
use serde_json::{json, Value};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The session directories, each of which must exist and hold sessions.
const DIRS: [&str; 3] = [
    "conformance/sessions",
    "conformance/sessions-auth",
    "conformance/tests/sessions",
];

/// One concrete value that `pattern` matches; `key` is the field it stands in.
fn instantiate(pattern: &Value, key: &str) -> Value {
    match pattern {
        Value::String(s) => instantiate_string(s, key),
        Value::Array(items) => Value::Array(items.iter().map(|v| instantiate(v, key)).collect()),
        Value::Object(fields) => {
            if let Some(items) = fields.get("$unordered") {
                return instantiate(items, key);
            }
            // A capability's field: checked here as present (the capability-on frame).
            if let Some(inner) = fields.get("$optional") {
                return instantiate(inner, key);
            }
            if let Some(Value::Array(options)) = fields.get("$one_of") {
                return instantiate(&options[0], key);
            }
            if fields.contains_key("$regex") || fields.contains_key("$not") {
                return instantiate_string("$string", key);
            }
            if let Some(form) = fields.keys().find(|k| k.starts_with('$')) {
                panic!("unknown pattern form `{form}` in {pattern}; teach recorded_sessions.rs");
            }
            Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), instantiate(v, k)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

fn instantiate_string(s: &str, key: &str) -> Value {
    let is_open = s == "$any"
        || s == "$string"
        || s.starts_with("$capture:")
        || (s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1);
    if s == "$number" || (is_open && key == "offset") {
        return json!(1);
    }
    // Open patterns on fields whose type is not a string.
    match (is_open, key) {
        (true, "protocol") => return json!(herald_protocol::PROTOCOL_VERSION),
        (true, "capabilities") => return json!(["recovery"]),
        (true, "recovered") => return json!(true),
        _ => {}
    }
    if s == "$timestamp" {
        return json!(TS);
    }
    if is_open {
        return json!(format!("{key}-1"));
    }
    if let Some(literal) = s.strip_prefix("$$") {
        return json!(format!("${literal}"));
    }
    json!(s
        .replace("${run}", "r1a2b3")
        .replace("${session}", "session"))
}

fn sse_stem(event: &str) -> Option<&'static str> {
    Some(match event {
        "connect" => "sse-connect",
        "ping" => "sse-ping",
        "notification" => "sse-notification",
        "update" => "sse-update",
        "stock_update" => "sse-stock-update",
        "news" => "sse-news",
        _ => return None,
    })
}

/// A frame to validate: where it came from, the schema, the value.
struct Frame {
    at: String,
    stem: &'static str,
    value: Value,
}

fn frames_of(path: &Path) -> Vec<Frame> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let steps: Vec<(usize, Value)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
        .map(|(i, l)| {
            let value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: not JSON: {e}", path.display(), i + 1));
            (i + 1, value)
        })
        .collect();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut out = Vec::new();
    let mut push = |line: usize, stem: &'static str, pattern: &Value| {
        out.push(Frame {
            at: format!("{name}:{line}"),
            stem,
            value: instantiate(pattern, ""),
        });
    };
    for (index, (line, step)) in steps.iter().enumerate().skip(1) {
        let actor = step["actor"].as_str().unwrap_or_default();
        if let Some(frame) = step.get("send") {
            // Sent to provoke a schema error?
            let next_expect = steps[index + 1..]
                .iter()
                .find(|(_, s)| s["actor"] == actor && s.get("expect").is_some())
                .map(|(_, s)| &s["expect"]);
            let provokes = next_expect.is_some_and(|e| {
                e["type"] == "error"
                    && matches!(
                        e["code"].as_str(),
                        Some("invalid_message" | "invalid_format" | "unknown_type")
                    )
            });
            if !provokes {
                push(*line, "client-message", frame);
            }
        }
        for key in ["expect", "expect_optional"] {
            if let Some(frame) = step.get(key) {
                push(*line, "server-message", frame);
            }
        }
        if let Some(Value::Array(frames)) = step.get("expect_unordered") {
            for frame in frames {
                push(*line, "server-message", frame);
            }
        }
        if let Some(event) = step.get("expect_event") {
            let name = event["event"].as_str().unwrap_or_default();
            if let (Some(stem), Some(data)) = (sse_stem(name), event.get("data")) {
                push(*line, stem, data);
            }
        }
        if let Some(http) = step.get("http") {
            let path = http["path"].as_str().unwrap_or_default();
            let method = http["method"].as_str().unwrap_or_default();
            let (request, response) = match (method, path) {
                ("POST", "/notifications") => ("notify-request", "notify-response"),
                ("POST", "/updates") => ("update-request", "update-response"),
                _ => continue,
            };
            let status = http["expect"]["status"].as_u64();
            if let (Some(200), Some(body)) = (status, http.get("body")) {
                push(*line, request, body);
            }
            if let Some(body) = http["expect"].get("body") {
                let stem = if body["success"] == false {
                    "error-response"
                } else {
                    response
                };
                push(*line, stem, body);
            }
        }
    }
    out
}

#[test]
fn recorded_session_frames_still_validate() {
    let mut frames = Vec::new();
    for dir in DIRS {
        let dir = workspace().join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no sessions in {}", dir.display());
        for file in files {
            frames.extend(frames_of(&file));
        }
    }
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    for frame in &frames {
        *counts.entry(frame.stem).or_insert(0) += 1;
        let found = faults(&validator(frame.stem), &frame.value);
        if !found.is_empty() {
            failures.push(format!(
                "{} ({}): {} -> {:?}",
                frame.at, frame.stem, frame.value, found
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} recorded frames break the current schemas:\n{}",
        failures.len(),
        frames.len(),
        failures.join("\n")
    );
    eprintln!("validated {} recorded frames: {counts:?}", frames.len());
    // The suite is large; a parser that found next to nothing would pass vacuously.
    for (stem, at_least) in [
        ("client-message", 50),
        ("server-message", 150),
        ("sse-connect", 5),
        ("sse-notification", 5),
        ("notify-request", 3),
        ("error-response", 5),
    ] {
        let found = counts.get(stem).copied().unwrap_or(0);
        assert!(
            found >= at_least,
            "only {found} {stem} frames found in the sessions (expected {at_least}+): {counts:?}"
        );
    }
}

/// The instantiation itself, and that a frame the schema refuses is reported.
#[test]
fn patterns_become_frames_that_match_them() {
    let pattern = json!({"type": "room_joined", "room": "room-${run}",
        "users": {"$unordered": ["a-${run}", "b"]}, "epoch": "$capture:epoch",
        "offset": "$number", "recovered": true});
    assert_eq!(
        instantiate(&pattern, ""),
        json!({"type": "room_joined", "room": "room-r1a2b3", "users": ["a-r1a2b3", "b"],
            "epoch": "epoch-1", "offset": 1, "recovered": true})
    );
    assert_eq!(instantiate(&json!("${epoch}"), "offset"), json!(1));
    assert_eq!(instantiate(&json!("$$text"), "text"), json!("$text"));
    // A recorded frame with a field the schema does not know is caught.
    let stray = instantiate(
        &json!({"type": "chat", "id": "$string", "user": "u", "text": "t",
            "timestamp": "$timestamp", "room": "r", "priority": 1}),
        "",
    );
    assert!(!faults(&validator("server-message"), &stray).is_empty());
}
