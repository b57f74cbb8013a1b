//! The Redis broker's part in capability data ([`super::Command::Ordered`], used by data
//! streams): a node publishes the data on the cluster's bus, and every node, this one included,
//! reads it back in the bus's one order and hands it to its capability. Because every node
//! applies the same data in the same order, every node numbers a stream's points and window
//! results alike and computes the same windows (see `capability::streams`).
//!
//! Kept apart from `redis.rs`, which only calls the two functions below. Layer 4.

use super::bus::{self, BusMessage};
use super::BrokerEvents;

/// Adds the publication of capability data to a pipeline.
pub fn publish(pipe: &mut ::redis::Pipeline, bus_channel: &str, capability: &str, body: &str) {
    pipe.cmd("PUBLISH")
        .arg(bus_channel)
        .arg(bus::ordered(capability, body));
}

/// Delivers capability data read from the bus; returns the message back when it is not one.
pub fn deliver(events: &dyn BrokerEvents, message: BusMessage) -> Option<BusMessage> {
    match message {
        BusMessage::Ordered { capability, body } => {
            events.ordered(&capability, &body);
            None
        }
        other => Some(other),
    }
}
