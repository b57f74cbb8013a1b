//! The wire contract (`../shared/WIRE.md`, beside the workspace) read as it is: every JSON frame
//! it shows is extracted, its placeholders filled, and the frame validated against the generated
//! schema of its kind and round-tripped through the protocol's types. Server frames are checked
//! twice: as the chapter sends them (the core), and with the fields Herald's capabilities add
//! (`room`, `epoch`, `offset`, `recovered`), which must still validate.
//!
//! The test fails loudly when WIRE.md is missing, when an example cannot be classified or parsed,
//! or when a message type of the contract is no longer found in it.
//!
//! Further down, hand-written cases the contract implies (every error code, users echoed exactly,
//! `data: null`, ...) are checked the same way.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{assert_valid, round_trip, TS};
use herald_protocol::{
    ClientMessage, Connected, ErrorCode, ErrorResponse, NewsItem, Notification, NotifyRequest,
    NotifyResponse, Ping, ServerMessage, StockUpdate, Update, UpdateRequest, UpdateResponse, User,
};
use regex::{Captures, Regex};
use serde_json::{json, Value};

/// Where the wire contract lives: `HERALD_WIRE_MD` when set, else `../shared/WIRE.md` relative to
/// the workspace root.
fn wire_md_path() -> PathBuf {
    match std::env::var_os("HERALD_WIRE_MD") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/WIRE.md"),
    }
}

fn wire_md() -> String {
    let path = wire_md_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the wire contract at {} ({e}); it is ../shared/WIRE.md beside the \
             workspace, or set HERALD_WIRE_MD to its path",
            path.display()
        )
    })
}

/// What schema an example belongs to.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A WebSocket frame from client to server.
    Client,
    /// A WebSocket frame from server to client.
    Server,
    /// Another top-level schema, by file stem (`sse-ping`, `notify-request`, ...).
    Stem(&'static str),
    /// A `<user>` object on its own.
    UserObject,
}

/// One JSON example found in the contract.
#[derive(Debug, Clone)]
struct Example {
    /// 1-based line in WIRE.md.
    line: usize,
    /// The text as written.
    raw: String,
    kind: Kind,
}

/// The code spans of one line (text between single backticks).
fn code_spans(line: &str) -> Vec<String> {
    line.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}

fn sse_stem(event: &str, line: usize) -> &'static str {
    match event {
        "connect" => "sse-connect",
        "ping" => "sse-ping",
        "notification" => "sse-notification",
        "update" => "sse-update",
        "stock_update" => "sse-stock-update",
        "news" => "sse-news",
        other => panic!("WIRE.md line {line}: SSE data for an unknown event `{other}`"),
    }
}

/// Every JSON example of the contract, classified by where it stands: the section (WebSocket or
/// SSE), the table row's direction, the `event:` it follows, the `POST` it belongs to.
fn examples(text: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut section = "";
    let mut in_fence = false;
    let mut last_event: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            section = if heading.contains("WebSocket") {
                "ws"
            } else if heading.contains("Server-Sent Events") {
                "sse"
            } else {
                ""
            };
            continue;
        }
        // Cells of a table row; a plain line (or a fenced line) is one cell.
        let cells: Vec<(Vec<String>, String)> = if in_fence {
            vec![(vec![line.to_owned()], String::new())]
        } else if line.starts_with('|') {
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            let first = cells.first().copied().unwrap_or_default().to_owned();
            cells
                .iter()
                .map(|cell| (code_spans(cell), first.clone()))
                .collect()
        } else {
            vec![(code_spans(line), String::new())]
        };
        for (column, (spans, first_cell)) in cells.iter().enumerate() {
            let mut last_post: Option<&str> = None;
            for span in spans {
                let span = span.trim();
                if let Some(event) = span.strip_prefix("event: ") {
                    last_event = Some(event.trim().to_owned());
                    continue;
                }
                if let Some(path) = span.strip_prefix("POST ") {
                    last_post = Some(path.trim());
                    continue;
                }
                let kind = if let Some(data) = span.strip_prefix("data: ") {
                    if !data.trim_start().starts_with('{') {
                        continue;
                    }
                    let event = last_event.as_deref().unwrap_or_else(|| {
                        panic!("WIRE.md line {number}: SSE data before any `event:`")
                    });
                    Kind::Stem(sse_stem(event, number))
                } else if span.starts_with('{') {
                    classify(span, section, column, first_cell, last_post, number)
                } else {
                    continue;
                };
                out.push(Example {
                    line: number,
                    raw: span.to_owned(),
                    kind,
                });
            }
        }
    }
    out
}

/// The chapter's frames, the ones the wire contract shows (capabilities such as `presence-diff`
/// and `signaling` add others, which PROTOCOL.md specifies and WIRE.md does not name).
const CLIENT_TYPES: [&str; 6] = ["join", "leave", "chat", "typing", "private_message", "ping"];
const SERVER_TYPES: [&str; 11] = [
    "welcome",
    "room_joined",
    "user_joined",
    "room_left",
    "user_left",
    "chat",
    "typing",
    "private_message",
    "notification",
    "pong",
    "error",
];

fn classify(
    span: &str,
    section: &str,
    column: usize,
    first_cell: &str,
    post: Option<&str>,
    line: usize,
) -> Kind {
    let type_re = Regex::new(r#"^\{"type":"([a-z_]+)""#).unwrap();
    if let Some(tag) = type_re.captures(span).map(|c| c[1].to_owned()) {
        assert_eq!(
            section, "ws",
            "WIRE.md line {line}: a typed frame outside the WebSocket section"
        );
        if first_cell.contains("client → server") {
            return Kind::Client;
        }
        if first_cell.contains("server →") {
            return Kind::Server;
        }
        // Outside the table: the type must say which way it goes.
        let client = CLIENT_TYPES.contains(&tag.as_str());
        let server = SERVER_TYPES.contains(&tag.as_str());
        return match (client, server) {
            (true, false) => Kind::Client,
            (false, true) => Kind::Server,
            _ => panic!("WIRE.md line {line}: cannot tell the direction of `{span}`"),
        };
    }
    if span.starts_with(r#"{"success":false"#) {
        return Kind::Stem("error-response");
    }
    if span.starts_with(r#"{"success":true,"notificationId""#) {
        return Kind::Stem("notify-response");
    }
    if span == r#"{"success":true}"# {
        return Kind::Stem("update-response");
    }
    match (column, post) {
        (0, Some("/notifications")) => return Kind::Stem("notify-request"),
        (0, Some("/updates")) => return Kind::Stem("update-request"),
        _ => {}
    }
    if span.starts_with(r#"{"id":"#) && span.contains(r#""name":"#) {
        return Kind::UserObject;
    }
    panic!("WIRE.md line {line}: cannot tell what `{span}` is; teach this test");
}

/// A concrete value for a field the contract leaves open (`"<id>"`, `"..."`, a bare field name).
fn sample(key: &str) -> Value {
    match key {
        "timestamp" => json!(TS),
        "clientId" => json!("c-7f3a"),
        "id" => json!("m-1"),
        "notificationId" => json!("n-1"),
        "userId" => json!("u1"),
        "target" => json!("user123"),
        "message" => json!("Not in a room"),
        "code" => json!("not_in_room"),
        "type" => json!("info"),
        "resource" => json!("order"),
        "action" => json!("created"),
        "data" => json!({"id": 42}),
        other => panic!("no sample value for the open field `{other}`; teach this test"),
    }
}

/// The example as JSON, with `user` standing for `<user>`.
fn fill(raw: &str, user: &Value) -> Result<Value, String> {
    let data = raw.strip_prefix("data: ").unwrap_or(raw);
    let user_text = user.to_string();
    // `[<user>...]`: a list of users; one is enough.
    let text = data
        .replace("<user>...", "<user>")
        .replace("<user>", &user_text);
    // `"key":"<placeholder>"` and `"key":"..."`: a value the contract leaves open.
    let open = Regex::new(r#""(\w+)":"(<[^>"]*>|\.\.\.)""#).unwrap();
    let text = open.replace_all(&text, |c: &Captures| {
        format!(r#""{}":{}"#, &c[1], sample(&c[1]))
    });
    // `"data":{...}`: any object.
    let text = text.replace("{...}", r#"{"id":42}"#);
    // `{"id","userId",...}`: an object given by its field names.
    let names = Regex::new(r#"\{("\w+"(?:,"\w+")*)\}"#).unwrap();
    let text = names.replace_all(&text, |c: &Captures| {
        let fields: Vec<String> = c[1]
            .split(',')
            .map(|name| {
                let key = name.trim_matches('"');
                format!("{name}:{}", sample(key))
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    });
    serde_json::from_str(&text).map_err(|e| format!("`{text}` is not JSON: {e}"))
}

/// The fields Herald's capabilities add to a core server frame, or `None` for a frame no
/// capability extends.
fn capability_fields(tag: &str) -> Vec<Value> {
    match tag {
        // offsets + recovery; and a resumed join.
        "room_joined" => vec![
            json!({"epoch": "e1", "offset": 3}),
            json!({"epoch": "e1", "offset": 3, "recovered": true}),
            json!({"epoch": "e1", "offset": 3, "recovered": false}),
        ],
        // room-in-presence
        "user_joined" | "user_left" | "typing" => vec![json!({"room": "general"})],
        // offsets
        "chat" => vec![json!({"offset": 7})],
        // The announcement itself.
        "welcome" => vec![json!({"protocol": herald_protocol::PROTOCOL_VERSION,
            "capabilities": herald_protocol::capability::herald_capabilities(true)})],
        _ => vec![],
    }
}

/// `core` with `additions`, which must all be new fields.
fn extended(core: &Value, additions: &Value) -> Value {
    let mut full = core.clone();
    for (key, value) in additions.as_object().unwrap() {
        let previous = full
            .as_object_mut()
            .unwrap()
            .insert(key.clone(), value.clone());
        assert!(
            previous.is_none(),
            "`{key}` is a core field of {core} already"
        );
    }
    full
}

fn check_example(example: &Example, value: &Value) {
    match &example.kind {
        Kind::Client => {
            round_trip::<ClientMessage>("client-message", value);
        }
        Kind::Server => {
            // The core frame, exactly as the chapter sends it.
            let parsed: ServerMessage = round_trip("server-message", value);
            let tag = value["type"].as_str().unwrap();
            // The same frame from Herald, with each capability's fields.
            for additions in capability_fields(tag) {
                let full = extended(value, &additions);
                let herald: ServerMessage = round_trip("server-message", &full);
                assert_ne!(
                    herald, parsed,
                    "the capability fields were dropped from {full}"
                );
            }
            if tag == "chat" {
                // `offset` stays the last field when present (servers append it).
                let full = extended(value, &json!({"offset": 7}));
                let parsed: ServerMessage = serde_json::from_value(full).unwrap();
                let text = serde_json::to_string(&parsed).unwrap();
                assert!(text.ends_with(r#","offset":7}"#), "{text}");
            }
        }
        Kind::Stem(stem) => match *stem {
            "sse-connect" => drop(round_trip::<Connected>(stem, value)),
            "sse-ping" => drop(round_trip::<Ping>(stem, value)),
            "sse-notification" => drop(round_trip::<Notification>(stem, value)),
            "sse-update" => drop(round_trip::<Update>(stem, value)),
            "sse-stock-update" => drop(round_trip::<StockUpdate>(stem, value)),
            "sse-news" => drop(round_trip::<NewsItem>(stem, value)),
            "notify-request" => drop(round_trip::<NotifyRequest>(stem, value)),
            "notify-response" => drop(round_trip::<NotifyResponse>(stem, value)),
            "update-request" => drop(round_trip::<UpdateRequest>(stem, value)),
            "update-response" => drop(round_trip::<UpdateResponse>(stem, value)),
            "error-response" => drop(round_trip::<ErrorResponse>(stem, value)),
            other => panic!("no type for schema {other}"),
        },
        Kind::UserObject => {
            let user: User = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(&serde_json::to_value(&user).unwrap(), value);
            assert_valid(
                "client-message",
                &json!({"type": "join", "room": "general", "user": value}),
            );
        }
    }
}

#[test]
fn every_frame_in_the_wire_contract_validates() {
    let text = wire_md();
    let examples = examples(&text);
    let users = [
        json!("JohnDoe"),
        json!({"id": "user123", "name": "John Doe", "avatar": "https://example.com/a.png"}),
    ];
    let mut seen_client = BTreeSet::new();
    let mut seen_server = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut failures = Vec::new();
    for example in &examples {
        for user in &users {
            let value = match fill(&example.raw, user) {
                Ok(value) => value,
                Err(e) => {
                    failures.push(format!("line {}: {e}", example.line));
                    continue;
                }
            };
            let tag = value.get("type").and_then(Value::as_str).map(str::to_owned);
            match (&example.kind, tag) {
                (Kind::Client, Some(tag)) => drop(seen_client.insert(tag)),
                (Kind::Server, Some(tag)) => drop(seen_server.insert(tag)),
                (kind, _) => drop(kinds.insert(format!("{kind:?}"))),
            }
            let outcome = std::panic::catch_unwind(|| check_example(example, &value));
            if let Err(panic) = outcome {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!(
                    "line {} `{}` ({:?}): {why}",
                    example.line, example.raw, example.kind
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} WIRE.md examples fail:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
    // Every message of the contract was found, so a reformatted WIRE.md cannot pass by
    // yielding nothing.
    let client: BTreeSet<String> = CLIENT_TYPES.iter().map(|&t| t.to_owned()).collect();
    assert_eq!(seen_client, client, "client frames found in WIRE.md");
    let server: BTreeSet<String> = SERVER_TYPES.iter().map(|&t| t.to_owned()).collect();
    assert_eq!(seen_server, server, "server frames found in WIRE.md");
    for kind in [
        "UserObject",
        "Stem(\"sse-connect\")",
        "Stem(\"sse-ping\")",
        "Stem(\"sse-notification\")",
        "Stem(\"sse-update\")",
        "Stem(\"notify-request\")",
        "Stem(\"notify-response\")",
        "Stem(\"update-request\")",
        "Stem(\"update-response\")",
        "Stem(\"error-response\")",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} example found in WIRE.md: {kinds:?}"
        );
    }
}

/// The chapter's own frames, as the issue quotes them, are valid core frames.
#[test]
fn chapter_frames_quoted_in_the_issue_validate() {
    for frame in [
        json!({"type": "user_joined", "user": "JohnDoe", "users": ["JohnDoe"]}),
        json!({"type": "typing", "user": "JohnDoe", "isTyping": false}),
        json!({"type": "user_left", "user": "JohnDoe"}),
        json!({"type": "room_joined", "room": "general", "users": ["JohnDoe"]}),
        json!({"type": "chat", "id": "m1", "user": "JohnDoe", "text": "hi", "timestamp": TS,
            "room": "general"}),
        json!({"type": "welcome", "clientId": "abc123def"}),
    ] {
        round_trip::<ServerMessage>("server-message", &frame);
    }
}

/// The extractor itself: it finds what it should, and an unknown shape is an error, not a skip.
#[test]
fn the_extractor_classifies_and_fills() {
    let doc = "## WebSocket\n\
        | server → client | `{\"type\":\"welcome\",\"clientId\":\"<id>\"}` | x |\n\
        | client → server | `{\"type\":\"chat\",\"text\":\"hi\"}` | |\n\
        ## Server-Sent Events\n\
        ```\nevent: connect\ndata: {\"type\":\"connected\",\"timestamp\":\"<RFC 3339>\"}\n```\n\
        | `POST /updates` `{\"resource\":\"a\",\"action\":\"b\",\"data\":{...}}` | `{\"success\":true}` | |\n";
    let found = examples(doc);
    let kinds: Vec<&Kind> = found.iter().map(|e| &e.kind).collect();
    assert_eq!(
        kinds,
        [
            &Kind::Server,
            &Kind::Client,
            &Kind::Stem("sse-connect"),
            &Kind::Stem("update-request"),
            &Kind::Stem("update-response"),
        ]
    );
    assert_eq!(
        fill(&found[0].raw, &json!("u")).unwrap(),
        json!({"type": "welcome", "clientId": "c-7f3a"})
    );
    assert_eq!(
        fill(&found[3].raw, &json!("u")).unwrap(),
        json!({"resource": "a", "action": "b", "data": {"id": 42}})
    );
    let unknown = std::panic::catch_unwind(|| examples("## Other\n`{\"what\":1}`\n"));
    assert!(
        unknown.is_err(),
        "an unclassifiable example must fail the test"
    );
}

#[test]
fn every_client_type_is_covered_and_tagged() {
    // The list of types in the crate matches the schema's variants, in order.
    let schema = herald_protocol::schema("client-message")
        .unwrap()
        .to_value();
    let tags: Vec<&str> = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["properties"]["type"]["const"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ClientMessage::TYPES);
}

#[test]
fn error_texts_are_kept_word_for_word() {
    use herald_protocol::error::text;
    assert_eq!(text::INVALID_FORMAT, "Invalid message format");
    assert_eq!(text::UNKNOWN_TYPE, "Unknown message type");
    assert_eq!(text::NOT_IN_ROOM, "Not in a room");
}

#[test]
fn every_error_code_is_in_the_schema() {
    for code in ErrorCode::ALL {
        let wire = serde_json::to_value(code).unwrap();
        assert_eq!(wire, json!(code.as_str()));
        let frame = json!({"type": "error", "message": "x", "code": wire});
        round_trip::<ServerMessage>("server-message", &frame);
        let body = json!({"success": false, "error": {"code": code.as_str(), "message": "x"}});
        round_trip::<ErrorResponse>("error-response", &body);
    }
}

#[test]
fn sse_data_from_the_contract() {
    let connected: Connected = round_trip(
        "sse-connect",
        &json!({"type": "connected", "timestamp": TS}),
    );
    assert!(matches!(connected, Connected::Connected { .. }));

    let ping: Ping = round_trip("sse-ping", &json!({"timestamp": TS}));
    assert_eq!(ping.timestamp, TS);

    let notification: Notification = round_trip(
        "sse-notification",
        &json!({"id": "n-1", "userId": "u1", "message": "hi", "type": "info", "timestamp": TS}),
    );
    assert_eq!(notification.user_id.as_deref(), Some("u1"));
    let broadcast: Notification = round_trip(
        "sse-notification",
        &json!({"id": "n-2", "message": "hi all", "type": "warning", "timestamp": TS}),
    );
    assert_eq!(broadcast.user_id, None);

    let update: Update = round_trip(
        "sse-update",
        &json!({"resource": "order", "action": "created",
            "data": {"id": 42, "items": [{"sku": "A-1", "qty": 2}], "note": null},
            "timestamp": TS}),
    );
    assert_eq!(update.resource, "order");
    round_trip::<Update>(
        "sse-update",
        &json!({"resource": "order", "action": "deleted", "timestamp": TS}),
    );

    // The chapter's demo feeds.
    let stock: StockUpdate = round_trip(
        "sse-stock-update",
        &json!({"symbol": "ACME", "price": 101.25, "change": -0.0125, "timestamp": TS}),
    );
    assert_eq!(stock.symbol, "ACME");
    let news: NewsItem = round_trip(
        "sse-news",
        &json!({"id": "news-1", "headline": "Markets calm", "timestamp": TS}),
    );
    assert_eq!(news.headline, "Markets calm");
}

#[test]
fn http_bodies_from_the_contract() {
    let request: NotifyRequest = round_trip(
        "notify-request",
        &json!({"userId": "u1", "message": "hi", "type": "info"}),
    );
    assert_eq!(request.user_id.as_deref(), Some("u1"));
    let to_everyone: NotifyRequest = round_trip("notify-request", &json!({"message": "hi"}));
    assert_eq!((to_everyone.user_id, to_everyone.kind), (None, None));

    let response: NotifyResponse = round_trip(
        "notify-response",
        &json!({"success": true, "notificationId": "n-1"}),
    );
    assert_eq!(response.notification_id, "n-1");

    let update: UpdateRequest = round_trip(
        "update-request",
        &json!({"resource": "order", "action": "created", "data": {"id": 42, "total": 9.5}}),
    );
    assert_eq!(update.data, Some(json!({"id": 42, "total": 9.5})));
    round_trip::<UpdateRequest>(
        "update-request",
        &json!({"resource": "order", "action": "created"}),
    );
    round_trip::<UpdateRequest>(
        "update-request",
        &json!({"resource": "order", "action": "created", "data": [1, "two", false]}),
    );

    // `data` is passed on unchanged, an explicit `null` included.
    let null_data: UpdateRequest = round_trip(
        "update-request",
        &json!({"resource": "order", "action": "cleared", "data": null}),
    );
    assert_eq!(null_data.data, Some(Value::Null));
    let event: Update = round_trip(
        "sse-update",
        &json!({"resource": "order", "action": "cleared", "data": null, "timestamp": TS}),
    );
    assert_eq!(event.data, Some(Value::Null));

    let ok: UpdateResponse = round_trip("update-response", &json!({"success": true}));
    assert!(ok.success);

    let error: ErrorResponse = round_trip(
        "error-response",
        &json!({"success": false, "error": {"code": "invalid_json",
            "message": "body is not valid JSON"}}),
    );
    assert_eq!(
        error,
        ErrorResponse::new(ErrorCode::InvalidJson, "body is not valid JSON")
    );
    round_trip::<ErrorResponse>(
        "error-response",
        &json!({"success": false, "error": {"code": "invalid_request",
            "message": "/message: expected a string"}}),
    );
}

#[test]
fn users_round_trip_exactly() {
    // A string user stays a string.
    let frame = json!({"type": "join", "room": "general", "user": "JohnDoe"});
    let parsed: ClientMessage = round_trip("client-message", &frame);
    let ClientMessage::Join { user, .. } = parsed else {
        panic!("not a join")
    };
    assert_eq!(user, User::Name("JohnDoe".into()));
    assert_eq!(user.id(), "JohnDoe");

    // An object user keeps every extra field, nested ones included.
    let rich = json!({"id": "user123", "name": "John Doe", "color": "#ff8800",
        "profile": {"badges": ["mod", {"since": 2021}], "status": null, "level": 3}});
    let frame = json!({"type": "join", "room": "general", "user": rich});
    let ClientMessage::Join { user, .. } = round_trip::<ClientMessage>("client-message", &frame)
    else {
        panic!("not a join")
    };
    assert_eq!(user.id(), "user123");
    assert_eq!(user.display_name(), "John Doe");
    let echoed = serde_json::to_value(&user).unwrap();
    assert_eq!(echoed, rich);
    // Absent avatar stays absent: no `"avatar": null` appears.
    assert!(echoed.get("avatar").is_none());
    let text = serde_json::to_string(&user).unwrap();
    assert!(!text.contains("avatar"), "{text}");

    // The same user, echoed in a server frame, still round-trips exactly.
    let joined = json!({"type": "room_joined", "room": "general", "users": [rich, "JohnDoe"],
        "epoch": "e1", "offset": 0});
    round_trip::<ServerMessage>("server-message", &joined);

    // A present avatar is kept, and field order does not matter.
    let with_avatar = json!({"avatar": "https://example.com/a.png", "name": "A", "id": "a"});
    let user: User = serde_json::from_value(with_avatar.clone()).unwrap();
    assert_eq!(serde_json::to_value(&user).unwrap(), with_avatar);
}
