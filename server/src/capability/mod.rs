//! Capabilities: what clients can do, each a module on the node's public API
//! ([`crate::node::Capability`]). A capability registers the client message types it handles;
//! the node dispatches to it and offers rooms, presence, room streams with offsets, private
//! delivery and resumable events. Layer 6: capabilities import the node and the layers below,
//! never a transport, a broker implementation or each other.
//!
//! - [`rooms`]: join (with resume), leave, chat, typing, private messages, app-level ping.
//! - [`notify`]: notifications and resource updates that backends publish.
//! - [`signaling`]: WebRTC signaling between members of one room, ICE servers, TURN credentials.
//! - [`documents`]: shared plain-text documents edited with operational transformation.
//! - [`streams`]: live data streams: snapshots, live points, window aggregates, conflation.

pub mod documents;
pub mod notify;
pub mod rooms;
pub mod signaling;
pub mod streams;

use crate::node::Capability;

/// The capabilities every node runs, in dispatch order.
pub fn all() -> Vec<Box<dyn Capability>> {
    vec![
        Box::new(rooms::Rooms),
        Box::new(notify::Notify),
        Box::new(signaling::Signaling),
        Box::new(documents::Documents::new()),
        Box::new(streams::Streams::new()),
    ]
}

/// Test support: a node on the memory broker with every capability, and its frames.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use crate::broker::memory::Memory;
    use crate::config::Config;
    use crate::node::Node;
    use crate::session::{Outbound, Outbox};

    /// A node with `config`, the memory broker and every capability.
    pub fn node(config: Config) -> Arc<Node> {
        let broker = Memory::from_config(&config);
        Node::new(config, None, Box::new(broker), super::all())
    }

    /// Every frame queued for a session, as JSON.
    pub fn frames(outbox: &mut Outbox) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Some(item) = outbox.try_recv() {
            if let Outbound::Frame(f) = item {
                out.push(serde_json::from_str(f.as_str()).unwrap());
            }
        }
        out
    }
}
