//! Imports a browser HAR export as a session. WebSocket entries carry `_webSocketMessages`
//! (`type` send/receive, `time` in seconds, `opcode`, `data`); an `text/event-stream` response
//! becomes an SSE actor; JSON requests to the server become HTTP steps.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::generalize::{build_session, parse_query, Observed};
use crate::matcher::parse_rfc3339;
use crate::session::{ActorKind, Session};
use crate::sse::SseParser;

fn split_url(url: &str) -> (String, String) {
    let without_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path_and_query = match without_scheme.find('/') {
        Some(i) => &without_scheme[i..],
        None => "/",
    };
    let path_and_query = path_and_query.split('#').next().unwrap_or("/");
    match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (path_and_query.to_owned(), String::new()),
    }
}

fn header(headers: &Value, name: &str) -> Option<String> {
    headers.as_array()?.iter().find_map(|h| {
        let n = h.get("name")?.as_str()?;
        n.eq_ignore_ascii_case(name).then(|| {
            h.get("value")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
    })
}

/// Builds a session from a parsed HAR document.
pub fn import(har: &Value, name: &str) -> anyhow::Result<Session> {
    let Some(entries) = har.pointer("/log/entries").and_then(Value::as_array) else {
        bail!("not a HAR file: no log.entries");
    };
    let mut timed: Vec<(f64, usize, Observed)> = Vec::new();
    let mut seq = 0usize;
    let mut push = |t: f64, o: Observed| {
        timed.push((t, seq, o));
        seq += 1;
    };
    let (mut n_ws, mut n_sse) = (0, 0);
    for entry in entries {
        let start = entry
            .get("startedDateTime")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .unwrap_or(0.0);
        let request = &entry["request"];
        let method = request["method"].as_str().unwrap_or("GET").to_owned();
        let (path, query) = split_url(request["url"].as_str().unwrap_or("/"));
        let query = parse_query(&query);
        let response = &entry["response"];
        let status = response["status"].as_u64().unwrap_or(0) as u16;
        let mime = response
            .pointer("/content/mimeType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if let Some(messages) = entry.get("_webSocketMessages").and_then(Value::as_array) {
            n_ws += 1;
            let actor = format!("ws{n_ws}");
            push(
                start,
                Observed::Connect {
                    actor: actor.clone(),
                    kind: ActorKind::Ws,
                    path,
                    query,
                    status: None,
                },
            );
            for m in messages {
                if m.get("opcode").and_then(Value::as_u64).unwrap_or(1) != 1 {
                    continue;
                }
                let t = m.get("time").and_then(Value::as_f64).unwrap_or(start);
                let data = m
                    .get("data")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let o = match m.get("type").and_then(Value::as_str) {
                    Some("send") => Observed::Send {
                        actor: actor.clone(),
                        text: data,
                    },
                    Some("receive") => Observed::Receive {
                        actor: actor.clone(),
                        text: data,
                    },
                    _ => continue,
                };
                push(t, o);
            }
        } else if mime.starts_with("text/event-stream") {
            n_sse += 1;
            let actor = format!("sse{n_sse}");
            push(
                start,
                Observed::Connect {
                    actor: actor.clone(),
                    kind: ActorKind::Sse,
                    path,
                    query,
                    status: Some(status),
                },
            );
            let text = response
                .pointer("/content/text")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut parser = SseParser::default();
            for ev in parser.push(text.as_bytes()) {
                if ev.event == "ping" {
                    continue;
                }
                push(
                    start,
                    Observed::Event {
                        actor: actor.clone(),
                        event: ev.event,
                        data: ev.data,
                    },
                );
            }
        } else if method != "GET" || mime.contains("json") {
            let body = request
                .pointer("/postData/text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let content_type = request
                .pointer("/postData/mimeType")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| header(&request["headers"], "content-type"));
            let text = response
                .pointer("/content/text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            push(
                start,
                Observed::Http {
                    actor: "http".into(),
                    method,
                    path,
                    query,
                    content_type,
                    origin: header(&request["headers"], "origin"),
                    body,
                    status,
                    response: text,
                },
            );
        }
    }
    timed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let observed: Vec<Observed> = timed.into_iter().map(|(_, _, o)| o).collect();
    let mut session = build_session(name, &observed);
    session.header.description =
        Some("Imported from a HAR export; review before adding to the suite.".into());
    Ok(session)
}

/// Reads a HAR file and writes `OUT/NAME.jsonl`.
pub fn import_file(file: &Path, out: &Path, name: Option<&str>) -> anyhow::Result<PathBuf> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let har: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "imported".into());
    let name = name.map(str::to_owned).unwrap_or(stem);
    let session = import(&har, &name)?;
    std::fs::create_dir_all(out)?;
    let path = out.join(format!("{name}.jsonl"));
    std::fs::write(&path, session.to_jsonl())?;
    Ok(path)
}
