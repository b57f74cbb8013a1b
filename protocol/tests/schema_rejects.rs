//! Bad frames are refused by the generated schema, and the fault is reported at the right JSON
//! location, so that an `invalid_message` error can name it. Structural faults (a missing or
//! mistyped field, an unknown field, an unknown type) are refused by serde as well; limits and
//! patterns only by the schema.

mod common;

use common::{only_fault, Fault, TS};
use herald_protocol::error::text;
use herald_protocol::limits::{
    MAX_FRAME_BYTES, MAX_NOTIFICATION_CHARS, MAX_ROOM_NAME_CHARS, MAX_USER_ID_CHARS,
    MAX_USER_NAME_CHARS, MAX_USER_OBJECT_BYTES, MAX_USER_OBJECT_FIELDS,
};
use herald_protocol::{
    ClientMessage, ErrorCode, ErrorResponse, NotifyRequest, ServerMessage, UpdateRequest,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// Whether serde refuses the frame too.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Serde {
    Rejects,
    /// The type cannot express this limit; only the schema (and the server's validation) does.
    Accepts,
}

struct Bad {
    what: &'static str,
    frame: Value,
    path: &'static str,
    keyword: &'static str,
    serde: Serde,
}

fn bad(what: &'static str, frame: Value, path: &'static str, keyword: &'static str) -> Bad {
    Bad {
        what,
        frame,
        path,
        keyword,
        serde: Serde::Rejects,
    }
}

fn limit(what: &'static str, frame: Value, path: &'static str, keyword: &'static str) -> Bad {
    Bad {
        serde: Serde::Accepts,
        ..bad(what, frame, path, keyword)
    }
}

fn chars(n: u64) -> String {
    "é".repeat(usize::try_from(n).unwrap())
}

fn check<T: DeserializeOwned + std::fmt::Debug>(stem: &str, cases: Vec<Bad>) {
    let mut failures = Vec::new();
    for case in cases {
        let faults = only_fault(stem, &case.frame);
        let expected = (case.path, case.keyword);
        if !faults
            .iter()
            .any(|f: &Fault| (f.path.as_str(), f.keyword.as_str()) == expected)
        {
            failures.push(format!(
                "{}: expected {expected:?}, got {faults:#?}",
                case.what
            ));
        }
        let parsed = serde_json::from_value::<T>(case.frame.clone());
        match (case.serde, &parsed) {
            (Serde::Rejects, Ok(v)) => {
                failures.push(format!("{}: serde accepted it as {v:?}", case.what))
            }
            (Serde::Accepts, Err(e)) => {
                failures.push(format!("{}: serde refused it ({e})", case.what))
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_client_frames() {
    check::<ClientMessage>(
        "client-message",
        vec![
            bad(
                "missing type",
                json!({"room": "general", "user": "x"}),
                "",
                "required",
            ),
            bad(
                "type not a string",
                json!({"type": 5, "text": "hi"}),
                "/type",
                "const",
            ),
            bad(
                "unknown type",
                json!({"type": "shout", "text": "hi"}),
                "/type",
                "const",
            ),
            bad(
                "text not a string",
                json!({"type": "chat", "text": 5}),
                "/text",
                "type",
            ),
            bad("missing text", json!({"type": "chat"}), "", "required"),
            bad(
                "isTyping not a boolean",
                json!({"type": "typing", "isTyping": "yes"}),
                "/isTyping",
                "type",
            ),
            bad(
                "room not a string",
                json!({"type": "join", "room": ["general"], "user": "x"}),
                "/room",
                "type",
            ),
            bad(
                "user neither string nor object",
                json!({"type": "join", "room": "general", "user": 42}),
                "/user",
                "type",
            ),
            bad(
                "user object without name",
                json!({"type": "join", "room": "general", "user": {"id": "u1"}}),
                "/user",
                "required",
            ),
            bad(
                "user id not a string",
                json!({"type": "join", "room": "general", "user": {"id": 7, "name": "A"}}),
                "/user/id",
                "type",
            ),
            bad(
                "since offset negative",
                json!({"type": "join", "room": "general", "user": "x",
                    "since": {"offset": -1, "epoch": "e1"}}),
                "/since/offset",
                "minimum",
            ),
            bad(
                "unknown field in since",
                json!({"type": "join", "room": "general", "user": "x",
                    "since": {"offset": 1, "epoch": "e1", "extra": true}}),
                "/since",
                "additionalProperties",
            ),
            bad(
                "unknown field on chat",
                json!({"type": "chat", "text": "hi", "room": "general"}),
                "",
                "additionalProperties",
            ),
            bad(
                "unknown field on leave",
                json!({"type": "leave", "room": "general"}),
                "",
                "additionalProperties",
            ),
            bad(
                "unknown field on ping",
                json!({"type": "ping", "at": 1}),
                "",
                "additionalProperties",
            ),
            bad(
                "camelCase field in snake_case",
                json!({"type": "typing", "is_typing": true}),
                "",
                "additionalProperties",
            ),
            limit(
                "user object with too many fields",
                json!({"type": "join", "room": "general", "user": Value::Object(
                    (0..MAX_USER_OBJECT_FIELDS - 1)
                        .map(|i| (format!("f{i}"), json!(i)))
                        .chain([("id".to_owned(), json!("u1")), ("name".to_owned(), json!("A"))])
                        .collect())}),
                "/user",
                "maxProperties",
            ),
            limit(
                "empty target",
                json!({"type": "private_message", "target": "", "text": "psst"}),
                "/target",
                "minLength",
            ),
            limit(
                "target over the limit",
                json!({"type": "private_message", "target": chars(MAX_USER_ID_CHARS + 1),
                    "text": "psst"}),
                "/target",
                "maxLength",
            ),
            limit(
                "room with a space",
                json!({"type": "join", "room": "gen eral", "user": "x"}),
                "/room",
                "pattern",
            ),
            limit(
                "room with a slash",
                json!({"type": "join", "room": "a/b", "user": "x"}),
                "/room",
                "pattern",
            ),
            limit(
                "room with markup",
                json!({"type": "join", "room": "<script>", "user": "x"}),
                "/room",
                "pattern",
            ),
            limit(
                "room with a non-ASCII letter",
                json!({"type": "join", "room": "café", "user": "x"}),
                "/room",
                "pattern",
            ),
            limit(
                "empty room",
                json!({"type": "join", "room": "", "user": "x"}),
                "/room",
                "minLength",
            ),
            limit(
                "room over the limit",
                json!({"type": "join", "room": "r".repeat(MAX_ROOM_NAME_CHARS as usize + 1),
                    "user": "x"}),
                "/room",
                "maxLength",
            ),
            limit(
                "empty string user",
                json!({"type": "join", "room": "general", "user": ""}),
                "/user",
                "minLength",
            ),
            limit(
                "user name over the limit",
                json!({"type": "join", "room": "general",
                    "user": {"id": "u1", "name": chars(MAX_USER_NAME_CHARS + 1)}}),
                "/user/name",
                "maxLength",
            ),
        ],
    );
}

#[test]
fn limits_are_inclusive() {
    for frame in [
        json!({"type": "chat", "text": chars(8)}),
        json!({"type": "join", "room": "a-Z_0.9:x", "user": chars(MAX_USER_NAME_CHARS)}),
        json!({"type": "join", "room": "r".repeat(MAX_ROOM_NAME_CHARS as usize), "user": "x"}),
    ] {
        common::round_trip::<ClientMessage>("client-message", &frame);
    }
}

/// The frame limit governs chat text: a chat whose frame is just under 64 KiB is valid, and so is
/// a private message (protocol 1.0 refused both past 8,192 characters).
#[test]
fn chat_text_is_bounded_by_the_frame_limit_only() {
    let overhead = r#"{"type":"chat","text":""}"#.len();
    let text = "x".repeat(MAX_FRAME_BYTES - overhead);
    let frame = json!({"type": "chat", "text": text});
    assert_eq!(frame.to_string().len(), MAX_FRAME_BYTES);
    common::round_trip::<ClientMessage>("client-message", &frame);
    // 60 KiB of two-byte characters: 30,720 characters, well past the old cap.
    let frame = json!({"type": "private_message", "target": "u1", "text": chars(30 * 1024)});
    common::round_trip::<ClientMessage>("client-message", &frame);
    let payload = json!({"room": "general", "text": chars(30 * 1024)});
    common::round_trip::<herald_protocol::RoomMessage>("topic-room-message", &payload);
}

/// A user object of `bytes` bytes as compact JSON.
fn user_object_of(bytes: usize) -> Value {
    let mut user = json!({"id": "u1", "name": "A", "bio": ""});
    let base = user.to_string().len();
    user["bio"] = json!("b".repeat(bytes - base));
    assert_eq!(user.to_string().len(), bytes);
    user
}

#[test]
fn user_objects_are_capped_at_1_kib() {
    assert!(text::USER_TOO_LARGE.contains(&MAX_USER_OBJECT_BYTES.to_string()));
    for (bytes, ok) in [
        (MAX_USER_OBJECT_BYTES, true),
        (MAX_USER_OBJECT_BYTES + 1, false),
        (60 * 1024, false),
    ] {
        let frame = json!({"type": "join", "room": "general", "user": user_object_of(bytes)});
        // The schema cannot count bytes: it accepts the frame, and check_limits decides.
        let parsed: ClientMessage = common::round_trip("client-message", &frame);
        let verdict = parsed.check_limits();
        if ok {
            assert_eq!(verdict, Ok(()), "{bytes} bytes");
        } else {
            let refused = verdict.expect_err("over the cap");
            assert_eq!(refused.code, ErrorCode::InvalidMessage);
            assert_eq!(refused.message, "user object over 1024 bytes");
        }
    }
    // Multi-byte characters count as their UTF-8 bytes.
    let user = json!({"id": "u1", "name": "A", "bio": "é".repeat(510)});
    assert!(user.to_string().len() > MAX_USER_OBJECT_BYTES);
    let join: ClientMessage =
        serde_json::from_value(json!({"type": "join", "room": "g", "user": user})).unwrap();
    assert!(join.check_limits().is_err());
    // String users and other frames pass.
    let join: ClientMessage =
        serde_json::from_value(json!({"type": "join", "room": "g", "user": "JohnDoe"})).unwrap();
    assert_eq!(join.check_limits(), Ok(()));
    assert_eq!(ClientMessage::Ping {}.check_limits(), Ok(()));
    // The same rule for a backend's room message.
    let message: herald_protocol::RoomMessage =
        serde_json::from_value(json!({"room": "g", "text": "x", "user": user_object_of(2048)}))
            .unwrap();
    assert!(message.check_limits().is_err());
}

#[test]
fn bad_server_frames() {
    check::<ServerMessage>(
        "server-message",
        vec![
            bad(
                "unknown field on welcome",
                json!({"type": "welcome", "clientId": "c1", "server": "x"}),
                "",
                "additionalProperties",
            ),
            bad(
                "negative offset",
                json!({"type": "chat", "id": "m1", "user": "x", "text": "hi", "timestamp": TS,
                    "room": "general", "offset": -3}),
                "/offset",
                "minimum",
            ),
            bad(
                "unknown error code",
                json!({"type": "error", "message": "x", "code": "oops"}),
                "/code",
                "const",
            ),
            bad(
                "unknown field in notification content",
                json!({"type": "notification", "content": {"id": "n", "message": "m",
                    "type": "info", "timestamp": TS, "priority": 1}}),
                "/content",
                "additionalProperties",
            ),
            bad(
                "user in a list not a user",
                json!({"type": "user_joined", "user": "x", "users": ["x", 3], "room": "g"}),
                "/users/1",
                "type",
            ),
            limit(
                "timestamp not RFC 3339",
                json!({"type": "private_message", "id": "m", "from": "x", "text": "t",
                    "timestamp": "yesterday"}),
                "/timestamp",
                "format",
            ),
        ],
    );
}

#[test]
fn bad_http_bodies() {
    check::<NotifyRequest>(
        "notify-request",
        vec![
            bad("missing message", json!({"userId": "u1"}), "", "required"),
            bad(
                "message not a string",
                json!({"message": {"text": "hi"}}),
                "/message",
                "type",
            ),
            bad(
                "unknown field",
                json!({"message": "hi", "priority": "high"}),
                "",
                "additionalProperties",
            ),
            limit(
                "message over the limit",
                json!({"message": chars(MAX_NOTIFICATION_CHARS + 1)}),
                "/message",
                "maxLength",
            ),
            limit(
                "empty userId",
                json!({"message": "hi", "userId": ""}),
                "/userId",
                "minLength",
            ),
        ],
    );
    check::<UpdateRequest>(
        "update-request",
        vec![
            bad(
                "missing action",
                json!({"resource": "order"}),
                "",
                "required",
            ),
            bad(
                "resource not a string",
                json!({"resource": 1, "action": "created"}),
                "/resource",
                "type",
            ),
            bad(
                "unknown field",
                json!({"resource": "order", "action": "created", "when": "now"}),
                "",
                "additionalProperties",
            ),
        ],
    );
    check::<ErrorResponse>(
        "error-response",
        vec![limit(
            "success true on an error",
            json!({"success": true, "error": {"code": "internal", "message": "x"}}),
            "/success",
            "const",
        )],
    );
}

/// serde's `deny_unknown_fields` on an internally tagged enum: the tag itself is accepted, any
/// other unknown field is refused, and the schema of every variant forbids extra properties.
#[test]
fn tagged_enums_deny_unknown_fields() {
    for stem in ["client-message", "server-message", "sse-connect"] {
        let schema = herald_protocol::schema(stem).unwrap().to_value();
        for variant in schema["oneOf"].as_array().unwrap() {
            assert_eq!(
                variant["additionalProperties"],
                json!(false),
                "{stem} variant {} allows extra properties",
                variant["properties"]["type"]["const"]
            );
        }
    }
    for stem in [
        "sse-ping",
        "sse-notification",
        "sse-update",
        "sse-stock-update",
        "sse-news",
        "notify-request",
        "notify-response",
        "update-request",
        "update-response",
        "error-response",
    ] {
        let schema = herald_protocol::schema(stem).unwrap().to_value();
        assert_eq!(schema["additionalProperties"], json!(false), "{stem}");
    }

    let refused = |frame: Value| {
        let error = serde_json::from_value::<ClientMessage>(frame.clone())
            .expect_err(&format!("{frame} was accepted"));
        assert!(error.to_string().contains("unknown field"), "{error}");
    };
    refused(json!({"type": "leave", "room": "general"}));
    refused(json!({"type": "ping", "id": 1}));
    refused(json!({"type": "chat", "text": "hi", "room": "general"}));
    refused(json!({"type": "join", "room": "g", "user": "x", "since": null, "token": "t"}));
    let error = serde_json::from_value::<ServerMessage>(json!({"type": "pong", "x": 1}))
        .expect_err("accepted");
    assert!(error.to_string().contains("unknown field"), "{error}");

    // The object user is open on purpose: its extra fields are kept, not refused.
    let schema = herald_protocol::schema("client-message")
        .unwrap()
        .to_value();
    assert_eq!(
        schema["$defs"]["UserObject"]["additionalProperties"],
        json!(true)
    );
}
