//! Turns what was observed on the wire (by the recording proxy or in a HAR file) into a session:
//! server-made ids become captures, timestamps become `$timestamp`, member lists become
//! `$unordered`, and later uses of a captured id become `${NAME}`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::matcher::is_rfc3339;
use crate::session::{
    Action, ActorKind, Connect, Disconnect, ExpectClose, ExpectEvent, Header, Http, HttpExpect,
    SendRaw, Session, Step,
};

/// One thing seen on the wire, in the order it was seen.
#[derive(Debug, Clone)]
pub enum Observed {
    /// A WebSocket or SSE stream opened.
    Connect {
        /// The actor's name.
        actor: String,
        /// WebSocket or SSE.
        kind: ActorKind,
        /// The request path.
        path: String,
        /// The query parameters.
        query: BTreeMap<String, String>,
        /// SSE only: the status answered.
        status: Option<u16>,
    },
    /// A text frame from client to server.
    Send {
        /// The actor.
        actor: String,
        /// The frame.
        text: String,
    },
    /// A text frame from server to client.
    Receive {
        /// The actor.
        actor: String,
        /// The frame.
        text: String,
    },
    /// The server closed the WebSocket.
    ServerClose {
        /// The actor.
        actor: String,
        /// The close code, if any.
        code: Option<u16>,
    },
    /// The client closed the WebSocket (cleanly with a close frame, or not).
    ClientClose {
        /// The actor.
        actor: String,
        /// Whether a close frame was sent.
        clean: bool,
    },
    /// An SSE event.
    Event {
        /// The actor.
        actor: String,
        /// The event name.
        event: String,
        /// The data.
        data: String,
    },
    /// An HTTP exchange.
    Http {
        /// The actor.
        actor: String,
        /// The method.
        method: String,
        /// The path.
        path: String,
        /// The query parameters.
        query: BTreeMap<String, String>,
        /// The request's `Content-Type`, if any.
        content_type: Option<String>,
        /// The request's `Origin`, if any (a server may answer a cross-origin publish
        /// differently).
        origin: Option<String>,
        /// The request body.
        body: String,
        /// The response status.
        status: u16,
        /// The response body.
        response: String,
    },
}

/// Keys whose string values the server makes up: captured on first sight.
const ID_KEYS: [&str; 4] = ["clientId", "id", "notificationId", "epoch"];

#[derive(Default)]
struct State {
    /// Captured value → variable name.
    captured: HashMap<String, String>,
    /// Every string the clients sent: never turned into a capture.
    client_strings: HashSet<String>,
    counters: HashMap<String, usize>,
}

impl State {
    fn learn_client(&mut self, v: &Value) {
        match v {
            Value::String(s) => {
                self.client_strings.insert(s.clone());
            }
            Value::Array(a) => a.iter().for_each(|x| self.learn_client(x)),
            Value::Object(m) => m.values().for_each(|x| self.learn_client(x)),
            _ => {}
        }
    }

    /// A client value with captured ids replaced by `${NAME}`.
    fn client_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => match self.captured.get(s) {
                Some(name) => Value::String(format!("${{{name}}}")),
                None => Value::String(s.clone()),
            },
            Value::Array(a) => Value::Array(a.iter().map(|x| self.client_value(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.client_value(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// A server value turned into a pattern.
    /// A server text that names a value captured earlier (an error naming a peer's id, say)
    /// refers to it as `${name}`, so a replay with other ids still matches.
    fn interpolate_captured(&self, s: &str) -> String {
        let mut names: Vec<(&String, &String)> = self
            .captured
            .iter()
            .filter(|(value, _)| value.len() >= 4 && s.contains(value.as_str()))
            .collect();
        names.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
        let mut out = s.to_owned();
        for (value, name) in names {
            out = out.replace(value.as_str(), &format!("${{{name}}}"));
        }
        out
    }

    fn server_pattern(&mut self, key: Option<&str>, v: &Value) -> Value {
        match v {
            Value::String(s) => {
                if let Some(name) = self.captured.get(s) {
                    return Value::String(format!("${{{name}}}"));
                }
                if key == Some("timestamp") || is_rfc3339(s) {
                    return Value::String("$timestamp".into());
                }
                if let Some(k) = key.filter(|k| ID_KEYS.contains(k)) {
                    if !self.client_strings.contains(s) {
                        let n = self.counters.entry(k.to_owned()).or_insert(0);
                        *n += 1;
                        let name = format!("{k}{n}");
                        self.captured.insert(s.clone(), name.clone());
                        return Value::String(format!("$capture:{name}"));
                    }
                }
                if s.starts_with('$') {
                    return Value::String(format!("${s}"));
                }
                Value::String(self.interpolate_captured(s))
            }
            Value::Number(_) if key == Some("offset") => Value::String("$number".into()),
            Value::Array(items) => {
                let pats: Vec<Value> = items.iter().map(|x| self.server_pattern(None, x)).collect();
                if key == Some("users") && pats.len() > 1 {
                    let mut m = Map::new();
                    m.insert("$unordered".into(), Value::Array(pats));
                    Value::Object(m)
                } else {
                    Value::Array(pats)
                }
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.server_pattern(Some(k), x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn step(actor: &str, action: Action) -> Step {
    Step {
        actor: Some(actor.to_owned()),
        action,
        timeout_ms: None,
        comment: None,
        line: 0,
    }
}

fn raw_send(text: &str) -> SendRaw {
    let mut chars = text.chars();
    if let Some(first) = chars.next() {
        if text.len() > 256 && chars.all(|c| c == first) {
            return SendRaw {
                text: first.to_string(),
                repeat: Some(text.chars().count()),
            };
        }
    }
    SendRaw {
        text: text.to_owned(),
        repeat: None,
    }
}

/// Frames caused by several clients closing at once have no order the protocol guarantees: in
/// a run of observations made only of client closes and received frames, with two closes or
/// more, each actor's frames (up to its own close) are grouped: their indexes in the order
/// seen, keyed by the last of them. The group is expected where its last frame was seen, after
/// every close that came before it, since one of those closes may be what caused it.
fn concurrent_groups(observed: &[Observed]) -> HashMap<usize, Vec<usize>> {
    let mut groups = HashMap::new();
    let mut i = 0;
    while i < observed.len() {
        let quiet =
            |o: &Observed| matches!(o, Observed::ClientClose { .. } | Observed::Receive { .. });
        if !matches!(observed[i], Observed::ClientClose { .. }) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < observed.len() && quiet(&observed[j]) {
            j += 1;
        }
        let closes = observed[i..j]
            .iter()
            .filter(|o| matches!(o, Observed::ClientClose { .. }))
            .count();
        if closes >= 2 {
            let mut by_actor: Vec<(String, Vec<usize>)> = Vec::new();
            let mut gone: HashSet<&str> = HashSet::new();
            for (k, o) in observed.iter().enumerate().take(j).skip(i) {
                match o {
                    Observed::ClientClose { actor, .. } => {
                        gone.insert(actor);
                    }
                    Observed::Receive { actor, .. } if !gone.contains(actor.as_str()) => {
                        match by_actor.iter_mut().find(|(a, _)| a == actor) {
                            Some((_, v)) => v.push(k),
                            None => by_actor.push((actor.clone(), vec![k])),
                        }
                    }
                    _ => {}
                }
            }
            for (_, idx) in by_actor {
                if let [.., last] = idx[..] {
                    if idx.len() > 1 {
                        groups.insert(last, idx);
                    }
                }
            }
        }
        i = j.max(i + 1);
    }
    groups
}

/// Builds a session from observations.
pub fn build_session(name: &str, observed: &[Observed]) -> Session {
    let groups = concurrent_groups(observed);
    let grouped: HashSet<usize> = groups
        .values()
        .flat_map(|v| v[..v.len() - 1].iter().copied())
        .collect();
    let mut state = State::default();
    let mut actors = BTreeMap::new();
    let mut steps = Vec::new();
    let mut isolated = false;
    // Frames still in flight when a client closed its side are not part of the exchange: the
    // client can no longer be expected to see them.
    let mut closed: HashSet<&str> = HashSet::new();
    for (index, o) in observed.iter().enumerate() {
        if grouped.contains(&index) {
            continue;
        }
        if let Some(members) = groups.get(&index) {
            if let Observed::Receive { actor, .. } = o {
                let patterns = members
                    .iter()
                    .filter_map(|k| match &observed[*k] {
                        Observed::Receive { text, .. } => Some(text),
                        _ => None,
                    })
                    .map(|text| {
                        let v = serde_json::from_str::<Value>(text)
                            .unwrap_or(Value::String(text.clone()));
                        state.server_pattern(None, &v)
                    })
                    .collect();
                steps.push(step(actor, Action::ExpectUnordered(patterns)));
                continue;
            }
        }
        match o {
            Observed::Receive { actor, .. }
            | Observed::ServerClose { actor, .. }
            | Observed::Event { actor, .. }
                if closed.contains(actor.as_str()) =>
            {
                continue
            }
            Observed::ClientClose { actor, .. } => {
                closed.insert(actor);
            }
            _ => {}
        }
        match o {
            Observed::Connect {
                actor,
                kind,
                path,
                query,
                status,
            } => {
                actors.insert(actor.clone(), *kind);
                let mut c = Connect {
                    path: path.clone(),
                    query: query.clone(),
                    ..Connect::default()
                };
                if *kind == ActorKind::Sse {
                    c.status = status.filter(|s| *s != 200).map(Value::from);
                }
                steps.push(step(actor, Action::Connect(c)));
            }
            Observed::Send { actor, text } => match serde_json::from_str::<Value>(text) {
                Ok(v) => {
                    let sent = state.client_value(&v);
                    state.learn_client(&v);
                    steps.push(step(actor, Action::Send(sent)));
                }
                Err(_) => steps.push(step(actor, Action::SendRaw(raw_send(text)))),
            },
            Observed::Receive { actor, text } => {
                let v = serde_json::from_str::<Value>(text).unwrap_or(Value::String(text.clone()));
                let p = state.server_pattern(None, &v);
                steps.push(step(actor, Action::Expect(p)));
            }
            Observed::ServerClose { actor, code } => steps.push(step(
                actor,
                Action::ExpectClose(ExpectClose { code: *code }),
            )),
            Observed::ClientClose { actor, clean } => steps.push(step(
                actor,
                Action::Disconnect(if *clean {
                    Disconnect::Clean
                } else {
                    Disconnect::Abrupt
                }),
            )),
            Observed::Event { actor, event, data } => {
                let v = serde_json::from_str::<Value>(data).unwrap_or(Value::String(data.clone()));
                let p = state.server_pattern(None, &v);
                steps.push(step(
                    actor,
                    Action::ExpectEvent(ExpectEvent {
                        event: event.clone(),
                        data: p,
                    }),
                ));
            }
            Observed::Http {
                actor,
                method,
                path,
                query,
                content_type,
                origin,
                body,
                status,
                response,
            } => {
                actors.insert(actor.clone(), ActorKind::Http);
                let mut h = Http {
                    method: method.clone(),
                    path: path.clone(),
                    query: query.clone(),
                    ..Http::default()
                };
                if let Some(origin) = origin {
                    h.headers.insert("Origin".into(), origin.clone());
                }
                let parsed = serde_json::from_str::<Value>(body).ok();
                let is_json = content_type
                    .as_deref()
                    .is_none_or(|c| c.starts_with("application/json"));
                match parsed {
                    Some(v) if is_json && !body.is_empty() => {
                        if method == "POST"
                            && (path == "/updates"
                                || (path == "/notifications" && v.get("userId").is_none()))
                        {
                            isolated = true;
                        }
                        h.body = Some(state.client_value(&v));
                        state.learn_client(&v);
                    }
                    _ if body.is_empty() => {
                        // The server may answer an empty body by its type (415 without one).
                        if let Some(ct) = content_type {
                            h.headers.insert("content-type".into(), ct.clone());
                        }
                    }
                    _ => {
                        h.raw_body = Some(body.clone());
                        if let Some(ct) = content_type {
                            h.headers.insert("content-type".into(), ct.clone());
                        }
                    }
                }
                let resp = if response.is_empty() {
                    None
                } else {
                    Some(
                        serde_json::from_str::<Value>(response)
                            .map(|v| state.server_pattern(None, &v))
                            .unwrap_or(Value::String(response.clone())),
                    )
                };
                h.expect = HttpExpect {
                    status: Value::from(*status),
                    headers: BTreeMap::new(),
                    body: resp,
                };
                steps.push(step(actor, Action::Http(h)));
            }
        }
    }
    Session {
        header: Header {
            session: name.to_owned(),
            description: Some("Recorded; review before adding to the suite.".into()),
            covers: Vec::new(),
            isolated,
            timeout_ms: None,
            requires: Vec::new(),
            allow_trailing: false,
            actors,
        },
        steps,
        path: PathBuf::from(format!("{name}.jsonl")),
    }
}

/// Splits a query string into decoded parameters.
pub fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn captures_and_reuses_ids() {
        let obs = vec![
            Observed::Connect {
                actor: "ws1".into(),
                kind: ActorKind::Ws,
                path: "/ws".into(),
                query: parse_query("a=b%20c"),
                status: None,
            },
            Observed::Receive {
                actor: "ws1".into(),
                text: r#"{"type":"welcome","clientId":"k1"}"#.into(),
            },
            Observed::Send {
                actor: "ws1".into(),
                text: r#"{"type":"join","room":"r","user":{"id":"u1","name":"U"}}"#.into(),
            },
            Observed::Receive {
                actor: "ws1".into(),
                text: r#"{"type":"room_joined","room":"r","users":[{"id":"u1","name":"U"}],"epoch":"e","offset":0}"#.into(),
            },
            Observed::Send {
                actor: "ws1".into(),
                text: r#"{"type":"private_message","target":"k1","text":"x"}"#.into(),
            },
        ];
        let s = build_session("t", &obs);
        let lines: Vec<Value> = s.steps.iter().map(|s| s.to_json()).collect();
        assert_eq!(lines[0]["connect"]["query"]["a"], json!("b c"));
        assert_eq!(lines[1]["expect"]["clientId"], json!("$capture:clientId1"));
        assert_eq!(lines[3]["expect"]["users"][0]["id"], json!("u1"));
        assert_eq!(lines[3]["expect"]["epoch"], json!("$capture:epoch1"));
        assert_eq!(lines[3]["expect"]["offset"], json!("$number"));
        assert_eq!(lines[4]["send"]["target"], json!("${clientId1}"));
        let text = s.to_jsonl();
        let back = Session::parse(&text, std::path::Path::new("t.jsonl")).unwrap();
        assert_eq!(back.steps.len(), 5);
    }

    #[test]
    fn frames_after_simultaneous_closes_are_unordered() {
        let close = |a: &str| Observed::ClientClose {
            actor: a.into(),
            clean: true,
        };
        let left = |u: &str| Observed::Receive {
            actor: "a".into(),
            text: format!(r#"{{"type":"user_left","user":"{u}","room":"r"}}"#),
        };
        let connect = |a: &str| Observed::Connect {
            actor: a.into(),
            kind: ActorKind::Ws,
            path: "/ws".into(),
            query: BTreeMap::new(),
            status: None,
        };
        let obs = vec![
            connect("a"),
            connect("b"),
            connect("c"),
            close("b"),
            close("c"),
            left("c"),
            left("b"),
        ];
        let s = build_session("t", &obs);
        let last = s.steps.last().unwrap().to_json();
        assert_eq!(s.steps.len(), 6);
        assert_eq!(last["expect_unordered"][1]["user"], json!("b"));
        // One close alone keeps the order.
        let s = build_session("t", &[connect("a"), connect("b"), close("b"), left("b")]);
        assert!(s.steps.last().unwrap().to_json().get("expect").is_some());
        // A frame seen after a close that may have caused it is never expected before that
        // close: the group waits for the last close among its frames (the CI failure of stop
        // 23, where a replay expected `c`'s departure before `c` had closed).
        let s = build_session(
            "t",
            &[
                connect("a"),
                connect("b"),
                connect("c"),
                close("b"),
                left("b"),
                close("c"),
                left("c"),
            ],
        );
        let kinds: Vec<Value> = s.steps.iter().map(|s| s.to_json()).collect();
        let at = |k: &str| kinds.iter().position(|j| j.get(k).is_some()).unwrap();
        assert_eq!(s.steps.len(), 6);
        assert!(
            at("expect_unordered")
                > kinds
                    .iter()
                    .rposition(|j| j.get("disconnect").is_some())
                    .unwrap()
        );
    }
}
