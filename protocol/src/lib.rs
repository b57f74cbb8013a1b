//! Herald's wire protocol.
//!
//! Every frame and body that crosses the wire is a plain serde type here, with a doc comment on
//! each type and field. The JSON Schema files in `schemas/` are generated from these same types
//! (`cargo xtask gen-schemas`), so the code, the schema and the docs cannot disagree.
//!
//! This crate does no I/O and knows nothing of sockets or async runtimes: any client or server
//! can use it.

pub mod capability;
pub mod client;
pub mod document;
pub mod error;
pub mod event_stream;
pub mod glob;
pub mod http;
pub mod limits;
pub mod ot;
pub mod polling;
pub mod server;
pub mod signaling;
pub mod sse;
pub mod stream;
pub mod topics;
pub mod user;

pub use capability::{Capability, CAPABILITIES, PROTOCOL_VERSION};
pub use client::{ClientMessage, PresenceMode, RoomName, StreamPosition};
pub use error::ErrorCode;
pub use http::{
    ErrorDetail, ErrorResponse, NotifyRequest, NotifyResponse, UpdateRequest, UpdateResponse,
};
pub use server::ServerMessage;
pub use sse::{Connected, NewsItem, Notification, Ping, StockUpdate, Update};
pub use topics::{RoomMessage, SystemEvent};
pub use user::{User, UserObject};

use schemars::{JsonSchema, Schema};

/// One top-level type's JSON Schema, as written to `schemas/<name>.schema.json`.
pub struct SchemaDoc {
    /// The file stem, such as `client-message`.
    pub name: &'static str,
    /// The schema (draft 2020-12).
    pub schema: Schema,
}

fn doc<T: JsonSchema>(name: &'static str) -> SchemaDoc {
    let mut schema = schemars::schema_for!(T);
    schema.insert("$id".to_owned(), schema_id(name).into());
    SchemaDoc { name, schema }
}

/// The `$id` of a top-level schema: it carries the protocol version, so a schema of another
/// version is another document (`https://herald.dev/schemas/1.1/client-message.schema.json`).
pub fn schema_id(name: &str) -> String {
    format!("https://herald.dev/schemas/{PROTOCOL_VERSION}/{name}.schema.json")
}

/// The JSON Schema of every top-level type on the wire: WebSocket frames in both directions,
/// each SSE event's data, each HTTP body, and the payloads of the broker topics
/// (`user.notifications` carries a [`NotifyRequest`]).
pub fn schemas() -> Vec<SchemaDoc> {
    vec![
        doc::<ClientMessage>("client-message"),
        doc::<ServerMessage>("server-message"),
        doc::<Connected>("sse-connect"),
        doc::<Ping>("sse-ping"),
        doc::<Notification>("sse-notification"),
        doc::<Update>("sse-update"),
        doc::<StockUpdate>("sse-stock-update"),
        doc::<NewsItem>("sse-news"),
        doc::<NotifyRequest>("notify-request"),
        doc::<NotifyResponse>("notify-response"),
        doc::<UpdateRequest>("update-request"),
        doc::<UpdateResponse>("update-response"),
        doc::<ErrorResponse>("error-response"),
        doc::<RoomMessage>("topic-room-message"),
        doc::<SystemEvent>("topic-system-event"),
        doc::<stream::StreamSpec>("stream-spec"),
        doc::<stream::StreamCreated>("stream-created"),
        doc::<stream::PointsRequest>("points-request"),
        doc::<stream::PointsResponse>("points-response"),
        doc::<stream::TopicPoints>("topic-stream-points"),
        doc::<stream::StreamInfo>("stream-info"),
        doc::<polling::PollOpened>("poll-opened"),
        doc::<polling::PollAnswer>("poll-answer"),
        doc::<polling::PollSend>("poll-send"),
        doc::<polling::PollSent>("poll-sent"),
    ]
}

/// The schema of one top-level type by its file stem.
pub fn schema(name: &str) -> Option<Schema> {
    schemas()
        .into_iter()
        .find(|d| d.name == name)
        .map(|d| d.schema)
}
