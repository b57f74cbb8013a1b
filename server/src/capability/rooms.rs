//! Rooms with chat: join (with the join policy and resume), leave, chat into the room's stream,
//! typing indicators, private messages, and the application-level ping.

use std::sync::Arc;

use herald_protocol::error::text;
use herald_protocol::{ClientMessage, ErrorCode, PresenceMode, RoomName, ServerMessage, User};

use crate::broker::BackendRequest;
use crate::ids::now_rfc3339;
use crate::node::{Capability, Node};
use crate::sanitize::sanitize;
use crate::session::Session;

/// The rooms capability.
pub struct Rooms;

impl Capability for Rooms {
    fn name(&self) -> &'static str {
        "rooms"
    }

    fn handles(&self) -> &'static [&'static str] {
        &[
            "join",
            "leave",
            "chat",
            "typing",
            "private_message",
            "ping",
            "presence",
        ]
    }

    fn announces(&self) -> &'static [&'static str] {
        use herald_protocol::capability::name;
        &[
            name::RECOVERY,
            name::OFFSETS,
            name::ROOM_IN_PRESENCE,
            name::APP_PING,
            name::PRESENCE_DIFF,
        ]
    }

    fn handle(&self, node: &Node, session: &Arc<Session>, message: ClientMessage) {
        match message {
            ClientMessage::Join {
                room,
                user,
                since,
                presence,
            } => match node.join_policy(session, &room, user) {
                Ok(user) => {
                    let diff = presence == Some(PresenceMode::Diff);
                    node.join_room(session, room, user, since, diff)
                }
                Err(refusal) => node.refuse(session, refusal.code, refusal.message),
            },
            ClientMessage::Presence {} => match node.room_of(session) {
                Some((room, _)) => node.request_members(session, room),
                None => node.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM),
            },
            ClientMessage::Leave {} => {
                if !node.leave_room(session, true) {
                    node.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM);
                }
            }
            ClientMessage::Chat { text: body } => match node.room_of(session) {
                Some((room, user)) => chat(node, room, user, &body, Some(session)),
                None => node.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM),
            },
            ClientMessage::Typing { is_typing } => match node.room_of(session) {
                Some((room, user)) => {
                    let frame = ServerMessage::Typing {
                        user,
                        is_typing,
                        room: Some(room.clone()),
                    };
                    node.publish_volatile(room, Some(session), &frame);
                }
                None => node.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM),
            },
            ClientMessage::PrivateMessage { target, text: body } => {
                let Some(from) = session.state.lock().user.clone() else {
                    return node.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM);
                };
                let message = ServerMessage::PrivateMessage {
                    id: node.next_id(),
                    from,
                    text: sanitize(&body),
                    timestamp: now_rfc3339(),
                };
                node.send_to_user(session, &target, &message);
            }
            ClientMessage::Ping {} => node.send(session, &ServerMessage::Pong {}),
            // The signaling capability's types are never dispatched here.
            ClientMessage::Peers {}
            | ClientMessage::Offer { .. }
            | ClientMessage::Answer { .. }
            | ClientMessage::IceCandidate { .. }
            | ClientMessage::Hangup { .. }
            | ClientMessage::DocOpen { .. }
            | ClientMessage::DocOp { .. }
            | ClientMessage::DocCursor { .. }
            | ClientMessage::DocClose { .. } => {}
            // Nor the streams capability's.
            ClientMessage::StreamSubscribe { .. } | ClientMessage::StreamUnsubscribe { .. } => {}
        }
    }

    fn backend(&self, node: &Node, request: &BackendRequest) -> bool {
        let BackendRequest::Chat { room, user, text } = request else {
            return false;
        };
        let user = user
            .clone()
            .unwrap_or_else(|| User::Name("system".to_owned()));
        chat(node, room.clone(), user, text, None);
        true
    }
}

/// Stamps and publishes a chat message into a room's stream (from a member, or from a backend
/// through the `room.messages` topic).
pub fn chat(node: &Node, room: RoomName, user: User, body: &str, from: Option<&Session>) {
    let message = ServerMessage::Chat {
        id: node.next_id(),
        user,
        text: sanitize(body),
        timestamp: now_rfc3339(),
        room: room.clone(),
        offset: Some(0),
    };
    node.publish_to_room(room, &message, from);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::testing::{frames, node};
    use crate::config::Config;
    use crate::wire::Transport;

    fn types(frames: &[serde_json::Value]) -> Vec<&str> {
        frames.iter().map(|f| f["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn join_chat_and_presence_through_the_memory_broker() {
        let node = node(Config::default());
        let (ann, mut ao) = node.open(Transport::WebSocket);
        let (bob, mut bo) = node.open(Transport::WebSocket);
        node.on_text(&ann, r#"{"type":"join","room":"r","user":"ann"}"#);
        node.on_text(&bob, r#"{"type":"join","room":"r","user":"bob"}"#);
        node.on_text(&ann, r#"{"type":"chat","text":"<script>x</script>hi"}"#);
        node.on_text(&bob, r#"{"type":"typing","isTyping":true}"#);
        let a = frames(&mut ao);
        let b = frames(&mut bo);
        assert_eq!(types(&a), ["room_joined", "user_joined", "chat", "typing"]);
        assert_eq!(types(&b), ["room_joined", "chat"]);
        assert_eq!(a[1]["users"], serde_json::json!(["ann", "bob"]));
        assert_eq!(b[1]["text"], "hi");
        assert_eq!(
            (a[2]["offset"].as_u64(), b[1]["offset"].as_u64()),
            (Some(1), Some(1))
        );
        node.close(&bob);
        assert_eq!(types(&frames(&mut ao)), ["user_left"]);
    }

    #[test]
    fn a_rejoin_resumes_all_or_nothing() {
        let node = node(Config {
            history_size: 2,
            ..Config::default()
        });
        let (ann, mut ao) = node.open(Transport::WebSocket);
        node.on_text(&ann, r#"{"type":"join","room":"r","user":"ann"}"#);
        for i in 0..3 {
            node.on_text(&ann, &format!(r#"{{"type":"chat","text":"m{i}"}}"#));
        }
        let epoch = frames(&mut ao)[0]["epoch"].as_str().unwrap().to_owned();
        let (bob, mut bo) = node.open(Transport::WebSocket);
        let resume = |offset| {
            format!(
                r#"{{"type":"join","room":"r","user":"bob","since":{{"epoch":"{epoch}","offset":{offset}}}}}"#
            )
        };
        node.on_text(&bob, &resume(1));
        let b = frames(&mut bo);
        assert_eq!(b[0]["recovered"], true);
        assert_eq!(types(&b), ["room_joined", "chat", "chat"]);
        node.on_text(&bob, &resume(0));
        let b = frames(&mut bo);
        assert_eq!(types(&b), ["room_left", "room_joined"]);
        assert_eq!(b[1]["recovered"], false);
    }

    #[test]
    fn the_join_policy_caps_connections_per_user() {
        let node = node(Config {
            max_connections_per_user: 1,
            ..Config::default()
        });
        let (one, _o1) = node.open(Transport::WebSocket);
        let (two, mut o2) = node.open(Transport::WebSocket);
        node.on_text(&one, r#"{"type":"join","room":"r","user":"ann"}"#);
        assert!(node
            .join_policy(&two, &"r".into(), User::from("ann"))
            .is_err());
        assert!(node
            .join_policy(&two, &"r".into(), User::from("bob"))
            .is_ok());
        // The connection already speaking as ann may join again.
        assert!(node
            .join_policy(&one, &"s".into(), User::from("ann"))
            .is_ok());
        node.on_text(&two, r#"{"type":"join","room":"r","user":"ann"}"#);
        let f = frames(&mut o2);
        assert_eq!(
            (f[0]["type"].as_str(), f[0]["code"].as_str()),
            (Some("error"), Some("forbidden"))
        );
    }

    #[test]
    fn private_messages_reach_every_websocket_of_a_user_or_say_nobody_did() {
        let node = node(Config::default());
        let (ann, mut ao) = node.open(Transport::WebSocket);
        let (bob, mut bo) = node.open(Transport::WebSocket);
        node.on_text(&ann, r#"{"type":"join","room":"r","user":"ann"}"#);
        node.on_text(&bob, r#"{"type":"join","room":"s","user":"bob"}"#);
        node.on_text(
            &ann,
            r#"{"type":"private_message","target":"bob","text":"hi"}"#,
        );
        node.on_text(
            &ann,
            r#"{"type":"private_message","target":"zed","text":"hi"}"#,
        );
        assert_eq!(types(&frames(&mut bo)), ["room_joined", "private_message"]);
        let a = frames(&mut ao);
        assert_eq!(types(&a), ["room_joined", "error"]);
        assert_eq!(a[1]["code"], "user_not_found");
    }
}
