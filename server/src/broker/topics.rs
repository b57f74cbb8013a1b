//! Backend topics: requests a backend publishes on a broker's own pub/sub channels
//! (`room.messages`, `user.notifications`, `system.events`), checked against their schemas and
//! read into [`BackendRequest`]s. Layer 3: no I/O; a broker feeds it payloads.

use std::sync::OnceLock;

use herald_protocol::topics::topic;
use herald_protocol::{NotifyRequest, RoomMessage, SystemEvent};

use super::BackendRequest;
use crate::inbound::first_violation;

/// The topics, by their name without the configured prefix.
pub const TOPICS: [&str; 4] = [
    topic::ROOM_MESSAGES,
    topic::USER_NOTIFICATIONS,
    topic::SYSTEM_EVENTS,
    topic::STREAM_POINTS,
];

/// Reads a payload published on `topic` (one of [`TOPICS`]).
pub fn read(topic_name: &str, payload: &[u8]) -> Result<BackendRequest, String> {
    let payload = std::str::from_utf8(payload).map_err(|_| "not UTF-8".to_owned())?;
    match topic_name {
        topic::ROOM_MESSAGES => {
            let m: RoomMessage = parse("topic-room-message", payload)?;
            m.check_limits().map_err(|e| e.to_string())?;
            Ok(BackendRequest::Chat {
                room: m.room,
                user: m.user,
                text: m.text,
            })
        }
        topic::USER_NOTIFICATIONS => Ok(BackendRequest::Notify(parse("notify-request", payload)?)),
        topic::SYSTEM_EVENTS => {
            let event: SystemEvent = parse("topic-system-event", payload)?;
            Ok(BackendRequest::Notify(NotifyRequest {
                user_id: None,
                message: event.message,
                kind: Some(event.kind.unwrap_or_else(|| "system".to_owned())),
            }))
        }
        topic::STREAM_POINTS => Ok(BackendRequest::StreamPoints(parse(
            "topic-stream-points",
            payload,
        )?)),
        other => Err(format!("unknown topic {other}")),
    }
}

/// Checks a topic payload against its schema, then reads it.
fn parse<T: serde::de::DeserializeOwned>(schema: &str, payload: &str) -> Result<T, String> {
    static VALIDATORS: OnceLock<Vec<(&str, jsonschema::Validator)>> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        [
            "topic-room-message",
            "notify-request",
            "topic-system-event",
            "topic-stream-points",
        ]
        .into_iter()
        .map(|name| {
            let schema = herald_protocol::schema(name).expect("the protocol has it");
            let validator = jsonschema::validator_for(schema.as_value())
                .expect("the generated schema compiles");
            (name, validator)
        })
        .collect()
    });
    let value: serde_json::Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let (_, validator) = validators
        .iter()
        .find(|(name, _)| *name == schema)
        .expect("a known schema");
    if let Some(fault) = first_violation(validator, &value) {
        return Err(fault);
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_become_requests_and_bad_payloads_are_refused() {
        match read(topic::ROOM_MESSAGES, br#"{"room":"lobby","text":"hi"}"#) {
            Ok(BackendRequest::Chat { room, user, text }) => {
                assert_eq!((room.as_str(), user, text.as_str()), ("lobby", None, "hi"))
            }
            other => panic!("{other:?}"),
        }
        match read(topic::SYSTEM_EVENTS, br#"{"message":"down at 5"}"#) {
            Ok(BackendRequest::Notify(n)) => assert_eq!(n.kind.as_deref(), Some("system")),
            other => panic!("{other:?}"),
        }
        assert!(read(topic::ROOM_MESSAGES, br#"{"room":"lobby"}"#).is_err());
        assert!(read(topic::USER_NOTIFICATIONS, b"\xff").is_err());
        assert!(read("other", b"{}").is_err());
    }
}
