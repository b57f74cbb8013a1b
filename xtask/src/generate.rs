//! What `cargo xtask gen-schemas` writes into `schemas/`: one JSON Schema per top-level wire type
//! and an AsyncAPI 3.0 document that embeds those same schemas.
//!
//! This file depends only on `herald_protocol` and `serde_json`, so the protocol crate's tests can
//! include it (`#[path]`) and snapshot exactly what the xtask writes.

use herald_protocol::sse::event;
use herald_protocol::{
    ClientMessage, Connected, ErrorCode, ErrorResponse, NewsItem, Notification, NotifyRequest,
    NotifyResponse, Ping, ServerMessage, StockUpdate, StreamPosition, Update, UpdateRequest,
    UpdateResponse, User, UserObject,
};
use serde_json::{json, Map, Value};

/// One file the generator owns, relative to `schemas/`.
pub struct GeneratedFile {
    /// The file name, such as `client-message.schema.json`.
    pub name: String,
    /// The exact bytes to write: pretty JSON with a trailing newline.
    pub contents: String,
}

/// The name of the AsyncAPI document inside `schemas/`.
pub const ASYNCAPI_FILE: &str = "asyncapi.json";

/// Whether a file directly inside `schemas/` belongs to the generator (so a stale or extra copy
/// of it is an error). Subfolders, such as `schemas/conformance/`, are never ours.
pub fn is_owned(file_name: &str) -> bool {
    file_name.ends_with(".schema.json")
        || matches!(
            file_name,
            "asyncapi.json" | "asyncapi.yaml" | "asyncapi.yml"
        )
}

/// Every file the generator writes, in a stable order.
pub fn generate() -> Vec<GeneratedFile> {
    let mut files: Vec<GeneratedFile> = herald_protocol::schemas()
        .into_iter()
        .map(|doc| GeneratedFile {
            name: format!("{}.schema.json", doc.name),
            contents: pretty(&doc.schema.to_value()),
        })
        .collect();
    files.push(GeneratedFile {
        name: ASYNCAPI_FILE.to_owned(),
        contents: pretty(&asyncapi()),
    });
    files
}

/// Pretty JSON with a trailing newline.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
    text.push('\n');
    text
}

/// How each top-level schema appears in the AsyncAPI document.
enum Embed {
    /// A `type`-tagged union whose variants become one message each; the prefix names the
    /// variant schemas (`Client` + `Join` = `ClientJoin`).
    Split(&'static str),
    /// Embedded whole under its title.
    Whole,
}

/// The schemas, with `$defs` hoisted into `components/schemas`.
struct Components {
    schemas: Map<String, Value>,
    /// Variant component names of each split union, with the variant's `type`.
    variants: Map<String, Value>,
    /// Component name of each top-level schema, by file stem.
    top_level: Map<String, Value>,
}

impl Components {
    fn build() -> Components {
        let mut components = Components {
            schemas: Map::new(),
            variants: Map::new(),
            top_level: Map::new(),
        };
        for doc in herald_protocol::schemas() {
            let embed = match doc.name {
                "client-message" => Embed::Split("Client"),
                "server-message" => Embed::Split("Server"),
                _ => Embed::Whole,
            };
            components.add(doc.name, doc.schema.to_value(), embed);
        }
        components
    }

    fn add(&mut self, stem: &str, schema: Value, embed: Embed) {
        let Value::Object(mut schema) = rewrite_refs(schema) else {
            panic!("schema {stem} is not an object");
        };
        schema.remove("$schema");
        schema.remove("$id");
        if let Some(Value::Object(defs)) = schema.remove("$defs") {
            for (name, def) in defs {
                self.insert(&name, def, stem);
            }
        }
        let title = schema
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("schema {stem} has no title"))
            .to_owned();
        if let Embed::Split(prefix) = embed {
            let Some(Value::Array(variants)) = schema.get_mut("oneOf") else {
                panic!("schema {stem} is not a oneOf union");
            };
            let mut names = Vec::new();
            for variant in variants.iter_mut() {
                let tag = variant
                    .pointer("/properties/type/const")
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("a variant of {stem} has no `type` const"))
                    .to_owned();
                let name = format!("{prefix}{}", pascal_case(&tag));
                let mut body = std::mem::replace(variant, json!({ "$ref": component_ref(&name) }));
                if let Value::Object(fields) = &mut body {
                    // The title goes first so that generated code and documentation name it.
                    let mut titled = Map::new();
                    titled.insert("title".to_owned(), Value::String(name.clone()));
                    titled.extend(std::mem::take(fields));
                    *fields = titled;
                }
                self.insert(&name, body, stem);
                names.push(json!({ "name": name, "type": tag }));
            }
            self.variants.insert(stem.to_owned(), Value::Array(names));
        }
        self.insert(&title, Value::Object(schema), stem);
        self.top_level.insert(stem.to_owned(), Value::String(title));
    }

    /// Adds a component; two schemas may share a name only when they are the same schema (a type
    /// used by several top-level types), possibly except for the top-level `title`.
    fn insert(&mut self, name: &str, schema: Value, stem: &str) {
        match self.schemas.get_mut(name) {
            None => {
                self.schemas.insert(name.to_owned(), schema);
            }
            Some(existing) => {
                let without_title = |v: &Value| {
                    let mut v = v.clone();
                    if let Value::Object(fields) = &mut v {
                        fields.remove("title");
                    }
                    v
                };
                assert!(
                    without_title(existing) == without_title(&schema),
                    "two different schemas are both named {name} (the second from {stem})"
                );
                if schema.get("title").is_some() && existing.get("title").is_none() {
                    *existing = schema;
                }
            }
        }
    }

    fn top_level(&self, stem: &str) -> &str {
        self.top_level
            .get(stem)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no schema named {stem}"))
    }

    /// `(component name, type tag)` of every variant of a split union.
    fn variants(&self, stem: &str) -> Vec<(String, String)> {
        self.variants[stem]
            .as_array()
            .expect("variants are an array")
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

fn component_ref(name: &str) -> String {
    format!("#/components/schemas/{name}")
}

/// Points every `#/$defs/X` at `#/components/schemas/X`.
fn rewrite_refs(value: Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => {
                        let target = match target.strip_prefix("#/$defs/") {
                            Some(name) => component_ref(name),
                            None => target,
                        };
                        (key, Value::String(target))
                    }
                    (_, value) => (key, rewrite_refs(value)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(rewrite_refs).collect()),
        other => other,
    }
}

fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect()
}

/// A message component whose payload is the named schema component.
fn message(name: &str, title: &str, description: &str, schema: &str) -> Value {
    json!({
        "name": name,
        "title": title,
        "summary": description.lines().next().unwrap_or_default(),
        "description": description,
        "contentType": "application/json",
        "payload": { "$ref": component_ref(schema) },
    })
}

fn description_of(components: &Components, schema: &str) -> String {
    components.schemas[schema]
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn refs(prefix: &str, names: &[String]) -> Value {
    names
        .iter()
        .map(|name| json!({ "$ref": format!("{prefix}/{name}") }))
        .collect()
}

fn channel_messages(names: &[String]) -> Value {
    Value::Object(
        names
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    json!({ "$ref": format!("#/components/messages/{name}") }),
                )
            })
            .collect(),
    )
}

/// The AsyncAPI 3.0 document of Herald's three transports, from the server's point of view: it
/// receives client frames and publish requests, and sends server frames and SSE events.
pub fn asyncapi() -> Value {
    let components = Components::build();
    let mut messages = Map::new();

    let mut websocket_in = Vec::new();
    for (name, tag) in components.variants("client-message") {
        let text = description_of(&components, &name);
        messages.insert(name.clone(), message(&tag, &name, &text, &name));
        websocket_in.push(name);
    }
    let mut websocket_out = Vec::new();
    for (name, tag) in components.variants("server-message") {
        let text = description_of(&components, &name);
        messages.insert(name.clone(), message(&tag, &name, &text, &name));
        websocket_out.push(name);
    }

    let sse_events = [
        ("SseConnect", event::CONNECT, "sse-connect"),
        ("SsePing", event::PING, "sse-ping"),
        ("SseNotification", event::NOTIFICATION, "sse-notification"),
        ("SseUpdate", event::UPDATE, "sse-update"),
        ("SseStockUpdate", event::STOCK_UPDATE, "sse-stock-update"),
        ("SseNews", event::NEWS, "sse-news"),
    ];
    let mut sse_out = Vec::new();
    for (name, event_name, stem) in sse_events {
        let schema = components.top_level(stem);
        let text = format!(
            "Sent as `event: {event_name}` with this JSON as `data`. {}",
            description_of(&components, schema)
        );
        let mut msg = message(event_name, name, &text, schema);
        msg["x-sse-event"] = Value::String(event_name.to_owned());
        messages.insert(name.to_owned(), msg);
        sse_out.push(name.to_owned());
    }

    let http = [
        ("NotifyRequest", "notify-request", None),
        ("NotifyResponse", "notify-response", Some(200)),
        ("UpdateRequest", "update-request", None),
        ("UpdateResponse", "update-response", Some(200)),
        ("ErrorResponse", "error-response", None),
        ("TopicRoomMessage", "topic-room-message", None),
        ("TopicSystemEvent", "topic-system-event", None),
        ("StreamSpec", "stream-spec", None),
        ("StreamCreated", "stream-created", Some(201)),
        ("PointsRequest", "points-request", None),
        ("PointsResponse", "points-response", Some(200)),
        ("TopicStreamPoints", "topic-stream-points", None),
        ("PollOpened", "poll-opened", Some(200)),
        ("PollAnswer", "poll-answer", Some(200)),
        ("PollSend", "poll-send", None),
        ("PollSent", "poll-sent", Some(200)),
    ];
    for (name, stem, status) in http {
        let schema = components.top_level(stem);
        let text = description_of(&components, schema);
        let mut msg = message(name, name, &text, schema);
        if let Some(status) = status {
            msg["bindings"] =
                json!({ "http": { "statusCode": status, "bindingVersion": "0.3.0" } });
        }
        messages.insert(name.to_owned(), msg);
    }

    for (name, examples) in examples() {
        let message = messages
            .get_mut(name)
            .unwrap_or_else(|| panic!("an example for {name}, which is no message"));
        message["examples"] = Value::Array(examples);
    }

    let websocket_all: Vec<String> = websocket_in.iter().chain(&websocket_out).cloned().collect();
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let notifications = names(&["NotifyRequest", "NotifyResponse", "ErrorResponse"]);
    let updates = names(&["UpdateRequest", "UpdateResponse", "ErrorResponse"]);
    let streams = names(&["StreamSpec", "StreamCreated", "ErrorResponse"]);
    let points = names(&["PointsRequest", "PointsResponse", "ErrorResponse"]);
    let poll_open = names(&["PollOpened", "ErrorResponse"]);
    let poll_session = names(&["PollAnswer", "PollSend", "PollSent", "ErrorResponse"]);

    let websocket_channel = |address: &str| {
        json!({
            "address": address,
            "title": format!("WebSocket on {address}"),
            "description": "A WebSocket opened by `GET` with an upgrade on `/` or `/ws` (the two \
                are the same). Every frame is one JSON text message. The first frame from the \
                server is always `welcome`.",
            "servers": [{ "$ref": "#/servers/websocket" }],
            "messages": channel_messages(&websocket_all),
            "bindings": { "ws": { "method": "GET", "bindingVersion": "0.1.0" } },
        })
    };
    let websocket_operations = |channel: &str| {
        let prefix = format!("#/channels/{channel}/messages");
        [
            (
                format!("{channel}ReceiveClientFrames"),
                json!({
                    "action": "receive",
                    "channel": { "$ref": format!("#/channels/{channel}") },
                    "title": "Client frames",
                    "summary": "Frames a client sends; an invalid one is answered with `error` and the connection stays open.",
                    "messages": refs(&prefix, &websocket_in),
                }),
            ),
            (
                format!("{channel}SendServerFrames"),
                json!({
                    "action": "send",
                    "channel": { "$ref": format!("#/channels/{channel}") },
                    "title": "Server frames",
                    "summary": "Frames the server sends to a connection.",
                    "messages": refs(&prefix, &websocket_out),
                }),
            ),
        ]
    };
    let publish_operation = |channel: &str, request: &str, response: &str, summary: &str| {
        let prefix = format!("#/channels/{channel}/messages");
        json!({
            "action": "receive",
            "channel": { "$ref": format!("#/channels/{channel}") },
            "summary": summary,
            "messages": refs(&prefix, &[request.to_owned()]),
            "reply": {
                "channel": { "$ref": format!("#/channels/{channel}") },
                "messages": refs(&prefix, &[response.to_owned(), "ErrorResponse".to_owned()]),
            },
            "bindings": { "http": { "method": "POST", "bindingVersion": "0.3.0" } },
        })
    };

    let mut operations = Map::new();
    for channel in ["websocket", "websocketWs"] {
        operations.extend(websocket_operations(channel));
    }
    operations.insert(
        "streamEvents".to_owned(),
        json!({
            "action": "send",
            "channel": { "$ref": "#/channels/events" },
            "title": "Server-Sent Events",
            "summary": "Events the server pushes on an open `GET /events` stream.",
            "messages": refs("#/channels/events/messages", &sse_out),
            "bindings": { "http": { "method": "GET", "bindingVersion": "0.3.0" } },
        }),
    );
    operations.insert(
        "publishNotification".to_owned(),
        publish_operation(
            "notifications",
            "NotifyRequest",
            "NotifyResponse",
            "Publish a notification to one user's streams and WebSockets, or to everyone. A body \
             that is not JSON or breaks the schema gets 400 and nothing is broadcast.",
        ),
    );
    operations.insert(
        "publishUpdate".to_owned(),
        publish_operation(
            "updates",
            "UpdateRequest",
            "UpdateResponse",
            "Publish a resource update to every SSE stream. A body that is not JSON or breaks \
             the schema gets 400 and nothing is broadcast.",
        ),
    );

    operations.insert(
        "createStream".to_owned(),
        publish_operation(
            "streams",
            "StreamSpec",
            "StreamCreated",
            "Capability `streams`: declare a data stream (201; 200 when the same declaration \
             exists; 409 `stream_conflict` for another one).",
        ),
    );
    operations.insert(
        "publishPoints".to_owned(),
        publish_operation(
            "streamPoints",
            "PointsRequest",
            "PointsResponse",
            "Capability `streams`: publish one point or a batch into a stream; subscribers get \
             them as `stream_point` (404 `stream_not_found` for an unknown stream).",
        ),
    );

    operations.insert(
        "pollOpen".to_owned(),
        json!({
            "action": "send",
            "channel": { "$ref": "#/channels/pollOpen" },
            "summary": "Capability `long-polling`: the answer to `POST /poll`, a new session.",
            "messages": refs("#/channels/pollOpen/messages", &["PollOpened".to_owned()]),
            "bindings": { "http": { "method": "POST", "bindingVersion": "0.3.0" } },
        }),
    );
    operations.insert(
        "pollFrames".to_owned(),
        json!({
            "action": "send",
            "channel": { "$ref": "#/channels/pollSession" },
            "summary": "Capability `long-polling`: the answer to `GET /poll/{session}?ack=N`: \
                        frames after the cursor, kept until a later poll acknowledges them.",
            "messages": refs("#/channels/pollSession/messages", &["PollAnswer".to_owned()]),
            "bindings": { "http": { "method": "GET", "bindingVersion": "0.3.0" } },
        }),
    );
    operations.insert(
        "pollSend".to_owned(),
        publish_operation(
            "pollSession",
            "PollSend",
            "PollSent",
            "Capability `long-polling`: numbered client frames; a retried number is applied \
             once and answered the same.",
        ),
    );

    let topic_operation = |channel: &str, message: &str, summary: &str| {
        json!({
            "action": "receive",
            "channel": { "$ref": format!("#/channels/{channel}") },
            "summary": summary,
            "messages": refs(&format!("#/channels/{channel}/messages"), &[message.to_owned()]),
        })
    };
    operations.insert(
        "topicRoomMessages".to_owned(),
        topic_operation(
            "roomMessages",
            "TopicRoomMessage",
            "A backend publishes a message for a room; one node stamps it (id, timestamp, the \
             room's next offset) and every node delivers it to its members as `chat`.",
        ),
    );
    operations.insert(
        "topicUserNotifications".to_owned(),
        topic_operation(
            "userNotifications",
            "NotifyRequest",
            "A backend publishes a notification; every node delivers it to that user's \
             connections (or to everyone without `userId`), as `POST /notifications` does.",
        ),
    );
    operations.insert(
        "topicSystemEvents".to_owned(),
        topic_operation(
            "systemEvents",
            "TopicSystemEvent",
            "A backend publishes an announcement; every node delivers it to every connection \
             as a notification without `userId`.",
        ),
    );
    operations.insert(
        "topicStreamPoints".to_owned(),
        topic_operation(
            "streamPointsTopic",
            "TopicStreamPoints",
            "Capability `streams`: a backend publishes points for a data stream; one node takes \
             them and every node delivers them, as `POST /streams/{id}/points` does.",
        ),
    );
    let topic_channel = |address: &str, message: &str, title: &str| {
        json!({
            "address": address,
            "title": title,
            "description": "A Redis pub/sub channel, read by nodes started with \
                `--broker redis://...`; its name is preceded by the nodes' `--topic-prefix` \
                when one is set. Each payload is one JSON document; one that does not match \
                the schema is logged and dropped.",
            "servers": [{ "$ref": "#/servers/redis" }],
            "messages": channel_messages(&[message.to_owned()]),
        })
    };

    json!({
        "asyncapi": "3.0.0",
        "id": "urn:dev:herald:api",
        "info": {
            "title": "Herald",
            "version": herald_protocol::PROTOCOL_VERSION,
            "description": "Herald's real-time API: a WebSocket for rooms, chat, typing and \
                private messages; a Server-Sent Events stream for notifications and updates; and \
                HTTP endpoints that publish to both. The core is what the clients of the \
                \"Real-time APIs\" chapter speak; fields and frames that Herald adds belong to \
                named capabilities, announced in `welcome` and described in PROTOCOL.md. \
                Generated by `cargo xtask gen-schemas` from \
                the `herald-protocol` crate; every payload is the JSON Schema in \
                `schemas/*.schema.json`.",
            "license": { "name": "MIT OR Apache-2.0" },
        },
        "defaultContentType": "application/json",
        "servers": {
            "websocket": {
                "host": "{host}",
                "protocol": "ws",
                "description": "WebSocket endpoint (use `wss` behind TLS).",
                "variables": { "host": { "default": "localhost:8080" } },
            },
            "http": {
                "host": "{host}",
                "protocol": "http",
                "description": "SSE stream and publish endpoints (use `https` behind TLS).",
                "variables": { "host": { "default": "localhost:8080" } },
            },
            "redis": {
                "host": "{host}",
                "protocol": "redis",
                "description": "The Redis that the nodes share (`--broker`), for backends \
                    publishing into Herald.",
                "variables": { "host": { "default": "localhost:6379" } },
            },
        },
        "channels": {
            "websocket": websocket_channel("/"),
            "websocketWs": websocket_channel("/ws"),
            "events": {
                "address": "/events",
                "title": "Server-Sent Events",
                "description": "`GET /events` answers `Content-Type: text/event-stream`. The first \
                    event is `connect`, then `ping` every 30 s (configurable) and the events \
                    below. Opened as `/events?userId=<id>` (or with a token when authentication \
                    is on), the stream also gets that user's notifications. `stock_update` and \
                    `news` are sent only in demo mode.",
                "servers": [{ "$ref": "#/servers/http" }],
                "messages": channel_messages(&sse_out),
            },
            "notifications": {
                "address": "/notifications",
                "title": "POST /notifications",
                "servers": [{ "$ref": "#/servers/http" }],
                "messages": channel_messages(&notifications),
            },
            "updates": {
                "address": "/updates",
                "title": "POST /updates",
                "servers": [{ "$ref": "#/servers/http" }],
                "messages": channel_messages(&updates),
            },
            "roomMessages": topic_channel("room.messages", "TopicRoomMessage", "Topic room.messages"),
            "userNotifications": topic_channel("user.notifications", "NotifyRequest", "Topic user.notifications"),
            "systemEvents": topic_channel("system.events", "TopicSystemEvent", "Topic system.events"),
            "streams": {
                "address": "/streams",
                "title": "POST /streams",
                "servers": [{ "$ref": "#/servers/http" }],
                "messages": channel_messages(&streams),
            },
            "streamPoints": {
                "address": "/streams/{id}/points",
                "title": "POST /streams/{id}/points",
                "servers": [{ "$ref": "#/servers/http" }],
                "parameters": { "id": { "description": "The stream's id." } },
                "messages": channel_messages(&points),
            },
            "streamPointsTopic": topic_channel("stream.points", "TopicStreamPoints", "Topic stream.points"),
            "pollOpen": {
                "address": "/poll",
                "title": "POST /poll",
                "description": "Capability `long-polling`: opens a polling session (PROTOCOL.md \
                    section 10); the answer carries the session's secret id and its first frames.",
                "servers": [{ "$ref": "#/servers/http" }],
                "messages": channel_messages(&poll_open),
            },
            "pollSession": {
                "address": "/poll/{session}",
                "title": "GET, POST and DELETE /poll/{session}",
                "description": "Capability `long-polling`: `GET ?ack=N` polls (held until frames \
                    come or the hold ends), `POST` sends numbered frames, `DELETE` ends the \
                    session. The frames are the WebSocket's own.",
                "servers": [{ "$ref": "#/servers/http" }],
                "parameters": { "session": { "description": "The session's secret id." } },
                "messages": channel_messages(&poll_session),
            },
        },
        "operations": operations,
        "components": {
            "schemas": components.schemas,
            "messages": messages,
        },
    })
}

/// One named example payload. (A macro rather than a function generic over `Serialize`, so this
/// file needs no dependency beyond `serde_json`.)
macro_rules! example {
    ($name:expr, $payload:expr $(,)?) => {
        json!({
            "name": $name,
            "payload": serde_json::to_value($payload).expect("examples serialise"),
        })
    };
}

/// Example payloads for the messages, built from the protocol's types so that they cannot
/// disagree with the schemas. They follow the wire contract's examples.
fn examples() -> Vec<(&'static str, Vec<Value>)> {
    const TS: &str = "2026-01-15T09:30:00.000Z";
    let john = || User::Name("JohnDoe".to_owned());
    let object_user = || {
        User::Object(Box::new(UserObject {
            id: "user123".to_owned(),
            name: "John Doe".to_owned(),
            avatar: Some("https://example.com/avatars/john.jpg".to_owned()),
            extra: Map::new(),
        }))
    };
    let general = || "general".into();
    let notification = || Notification {
        id: "n-8c1f".to_owned(),
        user_id: Some("u1".to_owned()),
        message: "hi".to_owned(),
        kind: "info".to_owned(),
        timestamp: TS.to_owned(),
    };
    vec![
        (
            "ClientJoin",
            vec![
                example!(
                    "string user",
                    ClientMessage::Join {
                        room: general(),
                        user: john(),
                        since: None,
                        presence: None,
                    },
                ),
                example!(
                    "presence as diffs",
                    ClientMessage::Join {
                        room: general(),
                        user: john(),
                        since: None,
                        presence: Some(herald_protocol::PresenceMode::Diff),
                    },
                ),
                example!(
                    "object user, resuming",
                    ClientMessage::Join {
                        room: general(),
                        user: object_user(),
                        since: Some(StreamPosition {
                            offset: 41,
                            epoch: "e-5d2a".to_owned(),
                        }),
                        presence: None,
                    },
                ),
            ],
        ),
        (
            "ClientLeave",
            vec![example!("leave", ClientMessage::Leave {})],
        ),
        (
            "ClientChat",
            vec![example!(
                "chat",
                ClientMessage::Chat {
                    text: "hi".to_owned(),
                },
            )],
        ),
        (
            "ClientTyping",
            vec![example!(
                "typing",
                ClientMessage::Typing { is_typing: true },
            )],
        ),
        (
            "ClientPrivateMessage",
            vec![example!(
                "private message",
                ClientMessage::PrivateMessage {
                    target: "user123".to_owned(),
                    text: "psst".to_owned(),
                },
            )],
        ),
        ("ClientPing", vec![example!("ping", ClientMessage::Ping {})]),
        (
            "ClientPresence",
            vec![example!("presence", ClientMessage::Presence {})],
        ),
        (
            "ServerWelcome",
            vec![
                example!(
                    "welcome",
                    ServerMessage::Welcome {
                        client_id: "c-7f3a".to_owned(),
                        protocol: herald_protocol::PROTOCOL_VERSION.to_owned(),
                        capabilities: herald_protocol::capability::herald_capabilities(false),
                    },
                ),
                example!(
                    "core server",
                    ServerMessage::Welcome {
                        client_id: "c-7f3a".to_owned(),
                        protocol: String::new(),
                        capabilities: Vec::new(),
                    },
                ),
            ],
        ),
        (
            "ServerRoomJoined",
            vec![
                example!(
                    "joined",
                    ServerMessage::RoomJoined {
                        room: general(),
                        users: vec![object_user(), john()],
                        epoch: Some("e-5d2a".to_owned()),
                        offset: Some(41),
                        recovered: None,
                    },
                ),
                example!(
                    "core server",
                    ServerMessage::RoomJoined {
                        room: general(),
                        users: vec![object_user(), john()],
                        epoch: None,
                        offset: None,
                        recovered: None,
                    },
                ),
            ],
        ),
        (
            "ServerUserJoined",
            vec![example!(
                "someone joined",
                ServerMessage::UserJoined {
                    user: john(),
                    users: vec![object_user(), john()],
                    room: Some(general()),
                },
            )],
        ),
        (
            "ServerRoomLeft",
            vec![example!(
                "left",
                ServerMessage::RoomLeft { room: general() }
            )],
        ),
        (
            "ServerUserLeft",
            vec![example!(
                "someone left",
                ServerMessage::UserLeft {
                    user: john(),
                    room: Some(general()),
                },
            )],
        ),
        (
            "ServerChat",
            vec![example!(
                "chat",
                ServerMessage::Chat {
                    id: "m-19b0".to_owned(),
                    user: john(),
                    text: "hi".to_owned(),
                    timestamp: TS.to_owned(),
                    room: general(),
                    offset: Some(42),
                },
            )],
        ),
        (
            "ServerTyping",
            vec![example!(
                "typing",
                ServerMessage::Typing {
                    user: john(),
                    is_typing: true,
                    room: Some(general()),
                },
            )],
        ),
        (
            "ServerPrivateMessage",
            vec![example!(
                "private message",
                ServerMessage::PrivateMessage {
                    id: "m-19b1".to_owned(),
                    from: john(),
                    text: "psst".to_owned(),
                    timestamp: TS.to_owned(),
                },
            )],
        ),
        (
            "ServerNotification",
            vec![example!(
                "notification",
                ServerMessage::Notification {
                    content: notification(),
                },
            )],
        ),
        ("ServerPong", vec![example!("pong", ServerMessage::Pong {})]),
        (
            "ServerPresenceDiff",
            vec![example!(
                "a member joined",
                ServerMessage::PresenceDiff {
                    room: general(),
                    joins: vec![john()],
                    leaves: Vec::new(),
                },
            )],
        ),
        (
            "ServerPresenceState",
            vec![example!(
                "the whole list",
                ServerMessage::PresenceState {
                    room: general(),
                    users: vec![john(), object_user()],
                },
            )],
        ),
        (
            "ServerError",
            vec![example!(
                "not in a room",
                ServerMessage::error(
                    ErrorCode::NotInRoom,
                    herald_protocol::error::text::NOT_IN_ROOM,
                ),
            )],
        ),
        (
            "SseConnect",
            vec![example!(
                "connect",
                Connected::Connected {
                    timestamp: TS.to_owned(),
                },
            )],
        ),
        (
            "SsePing",
            vec![example!(
                "ping",
                Ping {
                    timestamp: TS.to_owned(),
                },
            )],
        ),
        (
            "SseNotification",
            vec![example!("notification", notification())],
        ),
        (
            "SseUpdate",
            vec![example!(
                "update",
                Update {
                    resource: "order".to_owned(),
                    action: "created".to_owned(),
                    data: Some(json!({"id": 42, "total": 9.5})),
                    timestamp: TS.to_owned(),
                },
            )],
        ),
        (
            "SseStockUpdate",
            vec![example!(
                "stock update",
                StockUpdate {
                    symbol: "ACME".to_owned(),
                    price: 101.25,
                    change: -0.0125,
                    timestamp: TS.to_owned(),
                },
            )],
        ),
        (
            "SseNews",
            vec![example!(
                "news",
                NewsItem {
                    id: "news-1".to_owned(),
                    headline: "Markets calm".to_owned(),
                    timestamp: TS.to_owned(),
                },
            )],
        ),
        (
            "NotifyRequest",
            vec![
                example!(
                    "to one user",
                    NotifyRequest {
                        user_id: Some("u1".to_owned()),
                        message: "hi".to_owned(),
                        kind: Some("info".to_owned()),
                    },
                ),
                example!(
                    "to everyone",
                    NotifyRequest {
                        user_id: None,
                        message: "maintenance at noon".to_owned(),
                        kind: None,
                    },
                ),
            ],
        ),
        (
            "NotifyResponse",
            vec![example!(
                "accepted",
                NotifyResponse {
                    success: true,
                    notification_id: "n-8c1f".to_owned(),
                },
            )],
        ),
        (
            "UpdateRequest",
            vec![example!(
                "order created",
                UpdateRequest {
                    resource: "order".to_owned(),
                    action: "created".to_owned(),
                    data: Some(json!({"id": 42, "total": 9.5})),
                },
            )],
        ),
        (
            "UpdateResponse",
            vec![example!("accepted", UpdateResponse { success: true })],
        ),
        (
            "ErrorResponse",
            vec![example!(
                "invalid JSON",
                ErrorResponse::new(ErrorCode::InvalidJson, "body is not valid JSON"),
            )],
        ),
    ]
}
