//! WebRTC signaling (capability `signaling`): members of one room find each other's peer ids
//! (`peers`) and relay `offer`, `answer`, `ice_candidate` and `hangup` to one member at a time.
//!
//! What keeps it safe:
//! - a signal is addressed by the target's **session id** (its `clientId`), which the server
//!   assigned, and carries the sender's, stamped here from the session: a client cannot choose
//!   whom it claims to be;
//! - the broker delivers it only when the target is a member of the sender's current room (the
//!   join policy already decided, with tokens on, which rooms each may be in), on whichever
//!   node holds the target; otherwise the sender gets `peer_not_found`;
//! - it goes to that one session, never to the room;
//! - sizes are capped by the schema (`MAX_SDP_CHARS` and the ICE limits) and the connection's
//!   message bucket applies as to every frame.
//!
//! Frames from one sender to one target keep their order (the broker's `Direct` command keeps
//! a sender's submission order, across nodes through the bus). Roles for perfect negotiation
//! follow [`is_polite`]: the peer whose id sorts first is polite.
//!
//! TURN credentials follow the TURN REST scheme that coturn's `use-auth-secret` checks:
//! username `EXPIRY:USER`, password the base64 HMAC-SHA1 of the username keyed with the shared
//! secret.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use herald_protocol::error::text;
use herald_protocol::signaling::{is_polite, IceServer, IceUrl, Peer, PeerId, TurnCredentials};
use herald_protocol::{ClientMessage, ErrorCode, RoomName, ServerMessage, User};
use hmac::{Hmac, KeyInit, Mac};

use crate::broker::SessionId;
use crate::config::Config;
use crate::node::{Capability, Node};
use crate::session::Session;

/// The signaling capability.
pub struct Signaling;

impl Capability for Signaling {
    fn name(&self) -> &'static str {
        "signaling"
    }

    fn handles(&self) -> &'static [&'static str] {
        &["peers", "offer", "answer", "ice_candidate", "hangup"]
    }

    fn announces(&self) -> &'static [&'static str] {
        &[herald_protocol::capability::name::SIGNALING]
    }

    fn handle(&self, node: &Node, session: &Arc<Session>, message: ClientMessage) {
        let Some((room, user)) = node.room_of(session) else {
            return node.refuse(session, ErrorCode::NotInRoom, text::NOT_IN_ROOM);
        };
        let from = PeerId(session.id.to_string());
        let (to, relayed) = match message {
            ClientMessage::Peers {} => return node.request_roster(session, room),
            ClientMessage::Offer { to, sdp } => {
                let polite = is_polite(to.as_str(), from.as_str());
                let frame = ServerMessage::Offer {
                    from,
                    user,
                    sdp,
                    polite,
                };
                (to, frame)
            }
            ClientMessage::Answer { to, sdp } => {
                let polite = is_polite(to.as_str(), from.as_str());
                (to, ServerMessage::Answer { from, sdp, polite })
            }
            ClientMessage::IceCandidate { to, candidate } => {
                let polite = is_polite(to.as_str(), from.as_str());
                let frame = ServerMessage::IceCandidate {
                    from,
                    candidate,
                    polite,
                };
                (to, frame)
            }
            ClientMessage::Hangup { to } => {
                let polite = is_polite(to.as_str(), from.as_str());
                (to, ServerMessage::Hangup { from, polite })
            }
            // The node dispatches only the types listed in `handles`.
            _ => return,
        };
        if to.as_str() == &*session.id {
            return node.refuse(
                session,
                ErrorCode::PeerNotFound,
                "A peer cannot signal itself",
            );
        }
        node.send_to_member(session, room, to.as_str(), &relayed);
    }

    fn roster(
        &self,
        node: &Node,
        session: &Arc<Session>,
        room: &RoomName,
        members: &[(SessionId, User)],
    ) -> bool {
        // A session that moved on since it asked gets nothing: its `peers` would name the
        // wrong room's members.
        let Some((current, user)) = node.room_of(session) else {
            return true;
        };
        if current != *room {
            return true;
        }
        let peers = members
            .iter()
            .filter(|(id, _)| **id != *session.id)
            .map(|(id, user)| Peer {
                peer_id: PeerId(id.to_string()),
                user: user.clone(),
                polite: is_polite(&session.id, id),
            })
            .collect();
        // TURN credentials only for a user a token vouches for: without authentication anyone
        // can join a room as anyone, and TURN relays cost the operator bandwidth. Such clients
        // (or their backend) use `GET /turn-credentials`, which has its own gate.
        let turn_user = session.identity.get().map(|_| user.id());
        node.send(
            session,
            &ServerMessage::Peers {
                room: room.clone(),
                peers,
                ice_servers: ice_servers(&node.config, turn_user, unix_now()),
            },
        );
        true
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The ICE servers a member of a room gets: the STUN URLs as one server, and the TURN URLs as
/// another with credentials for `turn_user` when there is one and a TURN secret is configured
/// (a TURN server without credentials would make `RTCPeerConnection` throw, so otherwise they
/// are left out).
pub fn ice_servers(config: &Config, turn_user: Option<&str>, now: u64) -> Vec<IceServer> {
    let stun: Vec<IceUrl> = config
        .ice_servers
        .iter()
        .filter(|u| u.starts_with("stun:") || u.starts_with("stuns:"))
        .map(|u| IceUrl(u.clone()))
        .collect();
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServer {
            urls: stun,
            username: None,
            credential: None,
        });
    }
    if let Some(turn) = turn_user.and_then(|user| turn_credentials(config, user, now)) {
        servers.push(IceServer {
            urls: turn.urls,
            username: Some(turn.username),
            credential: Some(turn.credential),
        });
    }
    servers
}

/// TURN credentials for `user`, valid for the configured lifetime from `now` (Unix seconds);
/// `None` when no TURN secret is configured.
pub fn turn_credentials(config: &Config, user: &str, now: u64) -> Option<TurnCredentials> {
    let secret = config.turn_secret.as_ref()?;
    let ttl = config.turn_ttl.as_secs();
    let (username, credential) = rest_credentials(secret.expose().as_bytes(), user, now + ttl);
    Some(TurnCredentials {
        username,
        credential,
        ttl,
        urls: config.turn_urls().into_iter().map(IceUrl).collect(),
    })
}

/// The TURN REST scheme: username `EXPIRY:USER`, password base64(HMAC-SHA1(secret, username)).
pub fn rest_credentials(secret: &[u8], user: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{user}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::testing::{frames, node};
    use crate::wire::Transport;

    #[test]
    fn rest_credentials_match_a_known_vector() {
        // Computed independently: printf '1700000000:alice' |
        //   openssl dgst -sha1 -hmac 'north' -binary | base64
        let (user, pass) = rest_credentials(b"north", "alice", 1_700_000_000);
        assert_eq!(user, "1700000000:alice");
        assert_eq!(pass, "Cd/49soE35ICqcJF/bCTn8Z4OyE=");
    }

    #[test]
    fn signals_reach_one_member_stamped_with_the_sender() {
        let node = node(Config::default());
        let (ann, mut ao) = node.open(Transport::WebSocket);
        let (bob, mut bo) = node.open(Transport::WebSocket);
        let (cat, mut co) = node.open(Transport::WebSocket);
        node.on_text(&ann, r#"{"type":"join","room":"r","user":"ann"}"#);
        node.on_text(&bob, r#"{"type":"join","room":"r","user":"bob"}"#);
        node.on_text(&cat, r#"{"type":"join","room":"r","user":"cat"}"#);
        frames(&mut ao);
        frames(&mut bo);
        frames(&mut co);
        let offer = format!(r#"{{"type":"offer","to":"{}","sdp":"v=0"}}"#, bob.id);
        node.on_text(&ann, &offer);
        let b = frames(&mut bo);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0]["type"], "offer");
        assert_eq!(b[0]["from"], &*ann.id);
        assert_eq!(b[0]["user"], "ann");
        assert_eq!(b[0]["polite"], is_polite(&bob.id, &ann.id));
        assert!(frames(&mut co).is_empty(), "never broadcast");
        assert!(frames(&mut ao).is_empty());
        // A `from` in the frame is not the sender's to choose: the schema refuses it.
        let forged = format!(
            r#"{{"type":"offer","to":"{}","from":"{}","sdp":"v=0"}}"#,
            bob.id, cat.id
        );
        node.on_text(&ann, &forged);
        assert_eq!(frames(&mut ao)[0]["code"], "invalid_message");
        assert!(frames(&mut bo).is_empty());
    }
}
