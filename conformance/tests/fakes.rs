//! The suite must catch deviations. These tests start a small in-process server that speaks the
//! WebSocket part of the protocol (and a bare `/events`), once correctly and once with a
//! deliberate bug each, and check which sessions pass and what the failure says.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use conformance::{run_all, Options, Outcome, Session};
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::Message;

/// Which bug the fake server has.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Bug {
    None,
    /// `user_joined` without `users`.
    OmitUsers,
    /// `typing` sent back to its sender too.
    EchoTyping,
    /// Every `chat` frame carries a field the schema does not allow.
    StrayField,
    /// `Not in a room` said with other words.
    WrongErrorText,
    /// Every `chat` frame is sent twice to each member.
    DuplicateChat,
}

struct Client {
    tx: UnboundedSender<Value>,
    room: Option<String>,
    user: Option<Value>,
}

#[derive(Default)]
struct State {
    clients: HashMap<u64, Client>,
    next: u64,
    offsets: HashMap<String, u64>,
}

type Shared = Arc<Mutex<State>>;

fn members(state: &State, room: &str) -> Vec<Value> {
    let mut ids: Vec<_> = state
        .clients
        .iter()
        .filter(|(_, c)| c.room.as_deref() == Some(room))
        .map(|(id, c)| (*id, c.user.clone().unwrap_or(Value::Null)))
        .collect();
    ids.sort_by_key(|(id, _)| *id);
    ids.into_iter().map(|(_, u)| u).collect()
}

fn to_room(state: &State, room: &str, frame: &Value, except: Option<u64>) {
    for (id, c) in &state.clients {
        if c.room.as_deref() == Some(room) && Some(*id) != except {
            let _ = c.tx.send(frame.clone());
        }
    }
}

fn leave(state: &mut State, me: u64) -> Option<String> {
    let client = state.clients.get_mut(&me)?;
    let room = client.room.take()?;
    let user = client.user.clone().unwrap_or(Value::Null);
    to_room(
        state,
        &room,
        &json!({"type":"user_left","user":user,"room":room}),
        Some(me),
    );
    Some(room)
}

fn error(text: &str, code: &str) -> Value {
    json!({"type":"error","message":text,"code":code})
}

fn handle(state: &Shared, me: u64, text: &str, bug: Bug) {
    let mut s = state.lock().unwrap();
    let reply = |s: &State, v: Value| {
        let _ = s.clients[&me].tx.send(v);
    };
    let Ok(msg) = serde_json::from_str::<Value>(text) else {
        return reply(&s, error("Invalid message format", "invalid_format"));
    };
    let Some(ty) = msg.get("type").and_then(Value::as_str) else {
        return reply(&s, error("Invalid message format", "invalid_format"));
    };
    let not_in_room = if bug == Bug::WrongErrorText {
        "You are not in a room"
    } else {
        "Not in a room"
    };
    let room = s.clients[&me].room.clone();
    let user = s.clients[&me].user.clone().unwrap_or(Value::Null);
    match ty {
        "ping" => reply(&s, json!({"type":"pong"})),
        "join" => {
            let (Some(new_room), Some(new_user)) =
                (msg.get("room").and_then(Value::as_str), msg.get("user"))
            else {
                return reply(&s, error("join needs room and user", "invalid_message"));
            };
            leave(&mut s, me);
            let c = s.clients.get_mut(&me).unwrap();
            c.room = Some(new_room.to_owned());
            c.user = Some(new_user.clone());
            let users = members(&s, new_room);
            let offset = s.offsets.get(new_room).copied().unwrap_or(0);
            reply(
                &s,
                json!({"type":"room_joined","room":new_room,"users":users,"epoch":"e1","offset":offset}),
            );
            let mut joined =
                json!({"type":"user_joined","user":new_user,"users":users,"room":new_room});
            if bug == Bug::OmitUsers {
                joined.as_object_mut().unwrap().remove("users");
            }
            to_room(&s, new_room, &joined, Some(me));
        }
        "leave" => match leave(&mut s, me) {
            Some(r) => reply(&s, json!({"type":"room_left","room":r})),
            None => reply(&s, error(not_in_room, "not_in_room")),
        },
        "chat" => {
            let Some(room) = room else {
                return reply(&s, error(not_in_room, "not_in_room"));
            };
            let offset = {
                let o = s.offsets.entry(room.clone()).or_insert(0);
                *o += 1;
                *o
            };
            let mut frame = json!({
                "type":"chat","id":format!("m{offset}"),"user":user,
                "text":msg.get("text").cloned().unwrap_or(Value::Null),
                "timestamp":"2025-01-01T00:00:00.000Z","room":room,"offset":offset
            });
            if bug == Bug::StrayField {
                frame["serverNode"] = json!("fake-1");
            }
            to_room(&s, &room, &frame, None);
            if bug == Bug::DuplicateChat {
                to_room(&s, &room, &frame, None);
            }
        }
        "typing" => {
            let Some(room) = room else {
                return reply(&s, error(not_in_room, "not_in_room"));
            };
            let frame = json!({"type":"typing","user":user,"isTyping":msg["isTyping"],"room":room});
            let except = if bug == Bug::EchoTyping {
                None
            } else {
                Some(me)
            };
            to_room(&s, &room, &frame, except);
        }
        _ => reply(&s, error("Unknown message type", "unknown_type")),
    }
}

type Body = Full<Bytes>;

async fn serve(state: Shared, bug: Bug, mut req: Request<hyper::body::Incoming>) -> Response<Body> {
    if hyper_tungstenite::is_upgrade_request(&req) {
        let (response, websocket) = hyper_tungstenite::upgrade(&mut req, None).unwrap();
        tokio::spawn(async move {
            let Ok(ws) = websocket.await else { return };
            let (mut sink, mut stream) = ws.split();
            let (tx, mut rx) = unbounded_channel::<Value>();
            let me = {
                let mut s = state.lock().unwrap();
                s.next += 1;
                let me = s.next;
                s.clients.insert(
                    me,
                    Client {
                        tx: tx.clone(),
                        room: None,
                        user: None,
                    },
                );
                me
            };
            let _ = tx.send(json!({"type":"welcome","clientId":format!("c{me}")}));
            let writer = tokio::spawn(async move {
                while let Some(v) = rx.recv().await {
                    if sink.send(Message::text(v.to_string())).await.is_err() {
                        break;
                    }
                }
            });
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    Message::Text(t) => handle(&state, me, t.as_str(), bug),
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let mut s = state.lock().unwrap();
            leave(&mut s, me);
            s.clients.remove(&me);
            writer.abort();
        });
        return response;
    }
    let mut r = Response::new(Full::new(Bytes::from_static(b"{}")));
    *r.status_mut() = hyper::StatusCode::NOT_FOUND;
    r
}

async fn start(bug: Bug) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state: Shared = Arc::default();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let state = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(serve(state, bug, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Sessions the fake server is meant to pass.
const COVERED: &[&str] = &[
    "ws-welcome",
    "ws-welcome-root-path",
    "ws-join-string-user",
    "ws-join-object-user-extra-fields",
    "ws-user-joined-string",
    "ws-user-joined-object",
    "ws-user-joined-three",
    "ws-chat-to-all",
    "ws-chat-offsets",
    "ws-typing-not-echoed",
    "ws-app-ping-pong",
    "ws-error-not-in-room",
    "ws-leave",
    "ws-disconnect-clean-user-left",
    "ws-disconnect-abrupt-user-left",
];

async fn run(bug: Bug) -> Vec<Outcome> {
    let target = start(bug).await;
    let sessions: Vec<Session> = Session::load_dir(&conformance::default_sessions_dir())
        .unwrap()
        .into_iter()
        .filter(|s| COVERED.contains(&s.name()))
        .collect();
    assert_eq!(
        sessions.len(),
        COVERED.len(),
        "a covered session is missing"
    );
    let mut opts = Options::new(target);
    opts.step_timeout = std::time::Duration::from_secs(2);
    run_all(sessions, &opts).await
}

fn failure<'a>(outcomes: &'a [Outcome], name: &str) -> &'a str {
    let o = outcomes.iter().find(|o| o.name == name).unwrap();
    o.failure
        .as_deref()
        .unwrap_or_else(|| panic!("{name} should have failed"))
}

fn failed(outcomes: &[Outcome]) -> Vec<&str> {
    let mut v: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| o.name.as_str())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_correct_server_passes() {
    let outcomes = run(Bug::None).await;
    for o in &outcomes {
        assert!(o.passed(), "{}", o.render());
    }
    assert_eq!(
        conformance::summary(&outcomes),
        format!("{} passed, 0 failed", COVERED.len())
    );
}

#[tokio::test]
async fn user_joined_without_users_fails() {
    let outcomes = run(Bug::OmitUsers).await;
    let f = failure(&outcomes, "ws-user-joined-string");
    assert!(f.contains("$.users: missing"), "{f}");
    assert!(
        f.contains("`user_joined` frame lacks required field `users`"),
        "{f}"
    );
    assert!(failed(&outcomes).contains(&"ws-user-joined-three"));
    assert!(!failed(&outcomes).contains(&"ws-chat-offsets"));
}

#[tokio::test]
async fn typing_echoed_to_sender_fails() {
    let outcomes = run(Bug::EchoTyping).await;
    assert_eq!(failed(&outcomes), vec!["ws-typing-not-echoed"]);
    let f = failure(&outcomes, "ws-typing-not-echoed");
    assert!(f.contains("expected nothing for 300 ms"), "{f}");
    assert!(f.contains("\"type\":\"typing\""), "{f}");
    assert!(f.contains("typing is not echoed to the sender"), "{f}");
}

#[tokio::test]
async fn a_stray_field_fails_even_where_no_step_looks() {
    let outcomes = run(Bug::StrayField).await;
    let f = failure(&outcomes, "ws-chat-to-all");
    assert!(f.contains("$.serverNode: unexpected field"), "{f}");
    assert!(
        f.contains("`chat` frame has a field the schema does not allow: `serverNode`"),
        "{f}"
    );
    let failed = failed(&outcomes);
    assert!(failed.contains(&"ws-chat-offsets"), "{failed:?}");
    // ws-leave never expects a chat frame on bob, but alice's chat still passes through the
    // schema check.
    assert!(failed.contains(&"ws-leave"), "{failed:?}");
    assert!(!failed.contains(&"ws-typing-not-echoed"), "{failed:?}");
}

#[tokio::test]
async fn a_changed_error_text_fails() {
    let outcomes = run(Bug::WrongErrorText).await;
    assert_eq!(failed(&outcomes), vec!["ws-error-not-in-room"]);
    let f = failure(&outcomes, "ws-error-not-in-room");
    assert!(
        f.contains("expected \"Not in a room\", got \"You are not in a room\""),
        "{f}"
    );
}

#[tokio::test]
async fn a_duplicated_final_chat_fails() {
    let outcomes = run(Bug::DuplicateChat).await;
    // The duplicate of the last chat arrives after the session's last step: only the check for
    // trailing frames sees it.
    let f = failure(&outcomes, "ws-chat-to-all");
    assert!(f.contains("after the last step"), "{f}");
    assert!(f.contains("got frame {\"type\":\"chat\""), "{f}");
    assert!(f.contains("that no step expected"), "{f}");
    assert!(f.contains("\"text\":\"hello room\""), "{f}");
    let f = failure(&outcomes, "ws-leave");
    assert!(f.contains("alice got frame {\"type\":\"chat\""), "{f}");
    // Where a later step expects the next message, the duplicate fails that step.
    let f = failure(&outcomes, "ws-chat-offsets");
    assert!(f.contains("$.text: expected \"two\", got \"one\""), "{f}");
    let failed = failed(&outcomes);
    assert_eq!(
        failed,
        vec!["ws-chat-offsets", "ws-chat-to-all", "ws-leave"],
        "only sessions with chats fail"
    );
}

/// The same fake, run by profile: its welcome has no capabilities list, so it is a core-only
/// server; the sessions that need a capability are skipped and said to be, and the summary
/// counts only the sessions that applied.
#[tokio::test]
async fn a_server_without_capabilities_gets_the_core_profile() {
    let target = start(Bug::None).await;
    let sessions: Vec<Session> = Session::load_dir(&conformance::default_sessions_dir())
        .unwrap()
        .into_iter()
        .filter(|s| COVERED.contains(&s.name()))
        .collect();
    let report = conformance::profile::run_profile(sessions.clone(), &Options::new(&target))
        .await
        .unwrap();
    assert!(report.capabilities.names.is_empty());
    let mut skipped: Vec<&str> = report.skipped.iter().map(|s| s.name.as_str()).collect();
    skipped.sort();
    assert_eq!(skipped, vec!["ws-app-ping-pong", "ws-chat-offsets"]);
    let applied = COVERED.len() - 2;
    assert_eq!(
        report.summary(),
        format!("{applied} passed, 0 failed, 2 skipped")
    );
    let lines = report.capability_lines();
    assert_eq!(lines[0], format!("core: {applied} passed, 0 failed"));
    assert!(
        lines.contains(
            &"offsets: 0 passed, 0 failed, 1 skipped (the server does not have it)".to_owned()
        ),
        "{lines:?}"
    );
    assert!(report.skipped_lines().contains(
        &"SKIP ws-chat-offsets: needs offsets, which the server does not have".to_owned()
    ));
    // Given capabilities win over the welcome: with app-ping and offsets everything applies,
    // and the trailing check then synchronises with ping / pong.
    let mut opts = Options::new(&target);
    opts.capabilities = Some(conformance::profile::Capabilities::given(
        "app-ping,offsets",
    ));
    let report = conformance::profile::run_profile(sessions, &opts)
        .await
        .unwrap();
    assert!(report.skipped.is_empty());
    assert_eq!(
        report.summary(),
        format!("{} passed, 0 failed", COVERED.len())
    );
    assert!(report
        .capability_lines()
        .contains(&"app-ping: 1 passed, 0 failed".to_owned()));
}

#[tokio::test]
async fn recording_through_the_proxy_replays() {
    let target = start(Bug::None).await;
    let proxy = conformance::record::Proxy::start("127.0.0.1:0", &target)
        .await
        .unwrap();
    let via = format!("ws://{}/ws", proxy.addr);
    let (mut a, _) = tokio_tungstenite::connect_async(via.as_str())
        .await
        .unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(via.as_str())
        .await
        .unwrap();
    async fn next(
        ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
    ) -> Value {
        loop {
            if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }
    next(&mut a).await;
    next(&mut b).await;
    let room = format!("rec-{}", std::process::id());
    a.send(Message::text(
        json!({"type":"join","room":room,"user":"ann"}).to_string(),
    ))
    .await
    .unwrap();
    next(&mut a).await;
    b.send(Message::text(
        json!({"type":"join","room":room,"user":"ben"}).to_string(),
    ))
    .await
    .unwrap();
    next(&mut b).await;
    next(&mut a).await;
    a.send(Message::text(
        json!({"type":"chat","text":"hi"}).to_string(),
    ))
    .await
    .unwrap();
    next(&mut a).await;
    next(&mut b).await;
    b.close(None).await.unwrap();
    next(&mut a).await;
    a.close(None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let session = proxy.finish("recorded-chat");
    let text = session.to_jsonl();
    assert!(
        text.contains("\"clientId\":\"$capture:clientId1\""),
        "{text}"
    );
    assert!(text.contains("\"timestamp\":\"$timestamp\""), "{text}");
    assert!(text.contains("\"$unordered\""), "{text}");
    assert!(text.contains("\"disconnect\":\"clean\""), "{text}");
    // The recording replays against the server it was recorded from (the room is empty again).
    let replay = Session::parse(&text, std::path::Path::new("recorded-chat.jsonl")).unwrap();
    let outcome = conformance::run_session(&replay, &Options::new(target)).await;
    assert!(outcome.passed(), "{}\n{text}", outcome.render());
}
