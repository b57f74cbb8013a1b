//! The event-stream parser is the protocol crate's, shared with every other consumer.

pub use herald_protocol::event_stream::{SseEvent, SseParser};
