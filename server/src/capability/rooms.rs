//! Rooms with chat: join (with the join policy and resume), leave, chat into the room's stream,
//! typing indicators, private messages, and the application-level ping.

use std::sync::Arc;

use herald_protocol::error::text;
use herald_protocol::{ClientMessage, ErrorCode, RoomName, ServerMessage, User};

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
        &["join", "leave", "chat", "typing", "private_message", "ping"]
    }

    fn handle(&self, node: &Node, session: &Arc<Session>, message: ClientMessage) {
        match message {
            ClientMessage::Join { room, user, since } => {
                match node.join_policy(session, &room, user) {
                    Ok(user) => node.join_room(session, room, user, since),
                    Err(refusal) => node.refuse(session, refusal.code, refusal.message),
                }
            }
            ClientMessage::Leave {} => {
                if !node.leave_room(session, true) {
                    node.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM);
                }
            }
            ClientMessage::Chat { text: body } => match node.room_of(session) {
                Some((room, user)) => chat(node, room, user, &body),
                None => node.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM),
            },
            ClientMessage::Typing { is_typing } => match node.room_of(session) {
                Some((room, user)) => {
                    let frame = ServerMessage::Typing {
                        user,
                        is_typing,
                        room: room.clone(),
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
        }
    }

    fn backend(&self, node: &Node, request: &BackendRequest) -> bool {
        let BackendRequest::Chat { room, user, text } = request else {
            return false;
        };
        let user = user
            .clone()
            .unwrap_or_else(|| User::Name("system".to_owned()));
        chat(node, room.clone(), user, text);
        true
    }
}

/// Stamps and publishes a chat message into a room's stream (from a member, or from a backend
/// through the `room.messages` topic).
pub fn chat(node: &Node, room: RoomName, user: User, body: &str) {
    let message = ServerMessage::Chat {
        id: node.next_id(),
        user,
        text: sanitize(body),
        timestamp: now_rfc3339(),
        room: room.clone(),
        offset: 0,
    };
    node.publish_to_room(room, &message);
}
