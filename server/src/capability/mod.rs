//! Capabilities: what clients can do, each a module on the node's public API
//! ([`crate::node::Capability`]). A capability registers the client message types it handles;
//! the node dispatches to it and offers rooms, presence, room streams with offsets, private
//! delivery and resumable events. Layer 6: capabilities import the node and the layers below,
//! never a transport, a broker implementation or each other.
//!
//! - [`rooms`]: join (with resume), leave, chat, typing, private messages, app-level ping.
//! - [`notify`]: notifications and resource updates that backends publish.
//! - [`signaling`]: WebRTC signaling between members of one room, ICE servers, TURN credentials.

pub mod notify;
pub mod rooms;
pub mod signaling;

use crate::node::Capability;

/// The capabilities every node runs, in dispatch order.
pub fn all() -> Vec<Box<dyn Capability>> {
    vec![
        Box::new(rooms::Rooms),
        Box::new(notify::Notify),
        Box::new(signaling::Signaling),
    ]
}
