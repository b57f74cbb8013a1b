//! Property tests: any frame, in either direction, serialises and parses back to itself, and the
//! JSON it serialises to is valid under the generated schema (the types and the schema agree).

mod common;

use herald_protocol::{
    ClientMessage, ErrorCode, Notification, PresenceMode, RoomName, ServerMessage, StreamPosition,
    User, UserObject,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn room() -> impl Strategy<Value = RoomName> {
    "[A-Za-z0-9_.:-]{1,64}".prop_map(RoomName)
}

/// Any JSON a client might hang on its user object (no floats: their text form is not
/// guaranteed to round-trip bit for bit, which is serde_json's business, not ours).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("[a-zA-Z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn user() -> impl Strategy<Value = User> {
    let object = (
        "\\PC{1,128}",
        "\\PC{1,64}",
        proptest::option::of("\\PC{0,80}"),
        btree_map("[a-zA-Z_]{1,10}", json_value(), 0..4),
    )
        .prop_map(|(id, name, avatar, extra)| {
            let extra = extra
                .into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "id" | "name" | "avatar"))
                .collect();
            User::Object(Box::new(UserObject {
                id,
                name,
                avatar,
                extra,
            }))
        });
    prop_oneof!["\\PC{1,64}".prop_map(User::Name), object]
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,200}"
}

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9-]{1,24}"
}

fn timestamp() -> impl Strategy<Value = String> {
    (
        1970u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        0u32..1000,
    )
        .prop_map(|(y, mo, d, h, mi, s, ms)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
        })
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    let since = proptest::option::of(
        (any::<u64>(), "[a-z0-9]{1,64}")
            .prop_map(|(offset, epoch)| StreamPosition { offset, epoch }),
    );
    prop_oneof![
        (
            room(),
            user(),
            since,
            proptest::option::of(prop_oneof![
                Just(PresenceMode::Full),
                Just(PresenceMode::Diff)
            ])
        )
            .prop_map(|(room, user, since, presence)| ClientMessage::Join {
                room,
                user,
                since,
                presence,
            }),
        Just(ClientMessage::Leave {}),
        text().prop_map(|text| ClientMessage::Chat { text }),
        any::<bool>().prop_map(|is_typing| ClientMessage::Typing { is_typing }),
        ("\\PC{1,128}", text())
            .prop_map(|(target, text)| ClientMessage::PrivateMessage { target, text }),
        Just(ClientMessage::Ping {}),
        Just(ClientMessage::Presence {}),
    ]
}

fn notification() -> impl Strategy<Value = Notification> {
    (
        id(),
        proptest::option::of(id()),
        text(),
        "[a-z]{1,12}",
        timestamp(),
    )
        .prop_map(|(id, user_id, message, kind, timestamp)| Notification {
            id,
            user_id,
            message,
            kind,
            timestamp,
        })
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    let users = || vec(user(), 0..4);
    prop_oneof![
        (
            id(),
            proptest::option::of("[0-9]{1,2}\\.[0-9]{1,2}"),
            vec("[a-z][a-z0-9-]{0,15}", 0..4)
        )
            .prop_map(|(client_id, protocol, capabilities)| {
                ServerMessage::Welcome {
                    client_id,
                    protocol: protocol.unwrap_or_default(),
                    capabilities,
                }
            }),
        (
            room(),
            users(),
            proptest::option::of("[a-z0-9]{1,16}"),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(room, users, epoch, offset, recovered)| {
                ServerMessage::RoomJoined {
                    room,
                    users,
                    epoch,
                    offset,
                    recovered,
                }
            }),
        (user(), users(), proptest::option::of(room()))
            .prop_map(|(user, users, room)| ServerMessage::UserJoined { user, users, room }),
        room().prop_map(|room| ServerMessage::RoomLeft { room }),
        (user(), proptest::option::of(room()))
            .prop_map(|(user, room)| ServerMessage::UserLeft { user, room }),
        (
            id(),
            user(),
            text(),
            timestamp(),
            room(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(
                |(id, user, text, timestamp, room, offset)| ServerMessage::Chat {
                    id,
                    user,
                    text,
                    timestamp,
                    room,
                    offset,
                }
            ),
        (user(), any::<bool>(), proptest::option::of(room())).prop_map(
            |(user, is_typing, room)| {
                ServerMessage::Typing {
                    user,
                    is_typing,
                    room,
                }
            }
        ),
        (id(), user(), text(), timestamp()).prop_map(|(id, from, text, timestamp)| {
            ServerMessage::PrivateMessage {
                id,
                from,
                text,
                timestamp,
            }
        }),
        notification().prop_map(|content| ServerMessage::Notification { content }),
        Just(ServerMessage::Pong {}),
        (text(), proptest::sample::select(ErrorCode::ALL.to_vec()))
            .prop_map(|(message, code)| ServerMessage::Error { message, code }),
    ]
}

proptest! {
    #[test]
    fn client_messages_round_trip(message in client_message()) {
        let text = serde_json::to_string(&message).unwrap();
        let back: ClientMessage = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &message);
        let json: Value = serde_json::from_str(&text).unwrap();
        let faults = common::faults(&CLIENT.with(Clone::clone), &json);
        prop_assert!(faults.is_empty(), "{} breaks the schema: {:?}", text, faults);
    }

    #[test]
    fn server_messages_round_trip(message in server_message()) {
        let text = serde_json::to_string(&message).unwrap();
        let back: ServerMessage = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &message);
        let json: Value = serde_json::from_str(&text).unwrap();
        let faults = common::faults(&SERVER.with(Clone::clone), &json);
        prop_assert!(faults.is_empty(), "{} breaks the schema: {:?}", text, faults);
    }
}

thread_local! {
    static CLIENT: jsonschema::Validator = common::validator("client-message");
    static SERVER: jsonschema::Validator = common::validator("server-message");
}
