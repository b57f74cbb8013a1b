//! Every example in the wire contract (`WIRE.md`) parses as the right type and variant,
//! serialises back to the same JSON, and is valid under its generated schema.
//!
//! Placeholders in the contract (`<id>`, `<RFC 3339>`, `<user>`) are filled with concrete values.
//! Where this project adds fields to a server frame (the room, stream offsets), the example is the
//! contract's frame plus those additions, and the test checks that every field the contract lists
//! is still there with the same value.

mod common;

use common::{round_trip, TS};
use herald_protocol::{
    ClientMessage, Connected, ErrorCode, ErrorResponse, NewsItem, Notification, NotifyRequest,
    NotifyResponse, Ping, ServerMessage, StockUpdate, Update, UpdateRequest, UpdateResponse, User,
};
use serde_json::{json, Value};

fn string_user() -> Value {
    json!("JohnDoe")
}

fn object_user() -> Value {
    json!({"id": "user123", "name": "John Doe", "avatar": "https://example.com/avatars/john.jpg"})
}

/// `wire` with the fields of `additions` added.
fn with(wire: &Value, additions: Value) -> Value {
    let mut full = wire.clone();
    let (Value::Object(full_fields), Value::Object(extra)) = (&mut full, additions) else {
        panic!("frames are objects");
    };
    for (key, value) in extra {
        assert!(
            full_fields.insert(key.clone(), value).is_none(),
            "`{key}` is in the contract's frame already"
        );
    }
    full
}

/// Checks a server frame: the contract's fields survive with their values, and the whole frame
/// round-trips.
fn server_frame(wire: Value, additions: Value) -> ServerMessage {
    let full = with(&wire, additions);
    let parsed: ServerMessage = round_trip("server-message", &full);
    let back = serde_json::to_value(&parsed).unwrap();
    for (key, value) in wire.as_object().unwrap() {
        assert_eq!(back.get(key), Some(value), "contract field `{key}` changed");
    }
    parsed
}

#[test]
fn client_frames_from_the_contract() {
    for user in [string_user(), object_user()] {
        let frame = json!({"type": "join", "room": "general", "user": user});
        let parsed: ClientMessage = round_trip("client-message", &frame);
        assert!(
            matches!(&parsed, ClientMessage::Join { room, since: None, .. } if room.as_str() == "general")
        );
    }
    let resume = json!({"type": "join", "room": "general", "user": "JohnDoe",
        "since": {"offset": 17, "epoch": "e1"}});
    assert!(matches!(
        round_trip::<ClientMessage>("client-message", &resume),
        ClientMessage::Join { since: Some(_), .. }
    ));
    assert_eq!(
        round_trip::<ClientMessage>("client-message", &json!({"type": "leave"})),
        ClientMessage::Leave {}
    );
    assert_eq!(
        round_trip::<ClientMessage>("client-message", &json!({"type": "chat", "text": "hi"})),
        ClientMessage::Chat { text: "hi".into() }
    );
    for typing in [true, false] {
        assert_eq!(
            round_trip::<ClientMessage>(
                "client-message",
                &json!({"type": "typing", "isTyping": typing})
            ),
            ClientMessage::Typing { is_typing: typing }
        );
    }
    assert_eq!(
        round_trip::<ClientMessage>(
            "client-message",
            &json!({"type": "private_message", "target": "user123", "text": "psst"})
        ),
        ClientMessage::PrivateMessage {
            target: "user123".into(),
            text: "psst".into()
        }
    );
    assert_eq!(
        round_trip::<ClientMessage>("client-message", &json!({"type": "ping"})),
        ClientMessage::Ping {}
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
fn server_frames_from_the_contract() {
    for user in [string_user(), object_user()] {
        let parsed = server_frame(json!({"type": "welcome", "clientId": "c-7f3a"}), json!({}));
        assert!(matches!(parsed, ServerMessage::Welcome { .. }));

        let parsed = server_frame(
            json!({"type": "room_joined", "room": "general", "users": [user, "Alice"]}),
            json!({"epoch": "e1", "offset": 0}),
        );
        assert!(matches!(
            parsed,
            ServerMessage::RoomJoined {
                recovered: None,
                ..
            }
        ));

        let parsed = server_frame(
            json!({"type": "room_joined", "room": "general", "users": [user]}),
            json!({"epoch": "e1", "offset": 12, "recovered": true}),
        );
        assert!(matches!(
            parsed,
            ServerMessage::RoomJoined {
                recovered: Some(true),
                ..
            }
        ));

        let parsed = server_frame(
            json!({"type": "user_joined", "user": user, "users": ["Alice", user]}),
            json!({"room": "general"}),
        );
        assert!(matches!(parsed, ServerMessage::UserJoined { .. }));

        let parsed = server_frame(json!({"type": "room_left", "room": "general"}), json!({}));
        assert!(matches!(parsed, ServerMessage::RoomLeft { .. }));

        let parsed = server_frame(
            json!({"type": "user_left", "user": user}),
            json!({"room": "general"}),
        );
        assert!(matches!(parsed, ServerMessage::UserLeft { .. }));

        let parsed = server_frame(
            json!({"type": "chat", "id": "m-1", "user": user, "text": "hi", "timestamp": TS,
                "room": "general"}),
            json!({"offset": 1}),
        );
        assert!(matches!(parsed, ServerMessage::Chat { offset: 1, .. }));

        let parsed = server_frame(
            json!({"type": "typing", "user": user, "isTyping": true}),
            json!({"room": "general"}),
        );
        assert!(matches!(
            parsed,
            ServerMessage::Typing {
                is_typing: true,
                ..
            }
        ));

        let parsed = server_frame(
            json!({"type": "private_message", "id": "m-2", "from": user, "text": "psst",
                "timestamp": TS}),
            json!({}),
        );
        assert!(matches!(parsed, ServerMessage::PrivateMessage { .. }));
    }

    let parsed = server_frame(
        json!({"type": "notification", "content": {"id": "n-1", "userId": "u1",
            "message": "hi", "type": "info", "timestamp": TS}}),
        json!({}),
    );
    let ServerMessage::Notification { content } = parsed else {
        panic!("not a notification")
    };
    assert_eq!(content.user_id.as_deref(), Some("u1"));
    assert_eq!(content.kind, "info");

    // Untargeted: no userId.
    server_frame(
        json!({"type": "notification", "content": {"id": "n-2", "message": "hi all",
            "type": "info", "timestamp": TS}}),
        json!({}),
    );

    let parsed = server_frame(json!({"type": "pong"}), json!({}));
    assert_eq!(parsed, ServerMessage::Pong {});

    for (message, code) in [
        ("Invalid message format", ErrorCode::InvalidFormat),
        ("Unknown message type", ErrorCode::UnknownType),
        ("Not in a room", ErrorCode::NotInRoom),
        ("User not found", ErrorCode::UserNotFound),
    ] {
        let parsed = server_frame(
            json!({"type": "error", "message": message, "code": code.as_str()}),
            json!({}),
        );
        assert_eq!(parsed, ServerMessage::error(code, message));
    }
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
