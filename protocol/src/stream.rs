//! Capability `streams`: live data streams with snapshots, tumbling-window aggregates and
//! conflation for slow subscribers (the chapter's `DataStreamer` and `AnalyticsDashboard` as a
//! server capability).
//!
//! A **stream** is declared in the server's configuration or created with `POST /streams`
//! ([`StreamSpec`]). Backends publish **points** with `POST /streams/{id}/points` (one point or
//! a batch, [`PointsRequest`]) or on the `stream.points` broker topic ([`TopicPoints`]). Each
//! point has a value (a number, or an object of numbers for a stream with `fields`) and an event
//! time (`timestamp`, milliseconds since the Unix epoch; the server stamps the arrival time when
//! it is absent).
//!
//! Every point and every window result is a **stream message** with an offset in the stream's
//! epoch, like a room's chat: a subscriber resumes with `since` and gets every missed message
//! or `recovered: false` and a fresh snapshot (all or nothing).
//!
//! A subscriber that asks for `maxRate` gets at most that many point frames per second; points
//! in between are **conflated**: the next frame carries the latest point and `conflated`, the
//! number of points it stands for. The server also holds points back while the subscriber's
//! connection has unsent frames, so a subscriber that stops reading keeps a bounded queue.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::{
    MAX_POINTS_PER_REQUEST, MAX_STREAM_FIELDS, MAX_STREAM_ID_CHARS, MAX_STREAM_POINTS,
    STREAM_ID_PATTERN,
};

/// A stream's id.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct StreamId(
    #[schemars(length(min = 1, max = MAX_STREAM_ID_CHARS), regex(pattern = STREAM_ID_PATTERN))]
    pub String,
);

impl StreamId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StreamId {
    fn from(id: &str) -> Self {
        StreamId(id.to_owned())
    }
}

/// A point's value: a number, or an object of named numbers (for a stream declared with
/// `fields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StreamValue {
    /// One number.
    Number(f64),
    /// Named numbers (`{"responseTime": 120, "errorRate": 0.4}`).
    Fields(#[schemars(extend("maxProperties" = 32))] BTreeMap<String, f64>),
}

impl StreamValue {
    /// The value of one field; a plain number is the field `value`.
    pub fn field(&self, name: &str) -> Option<f64> {
        match self {
            StreamValue::Number(n) => (name == VALUE_FIELD).then_some(*n),
            StreamValue::Fields(map) => map.get(name).copied(),
        }
    }
}

/// The name of a plain number's only field, in window results.
pub const VALUE_FIELD: &str = "value";

/// One data point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamPoint {
    /// Event time, in milliseconds since the Unix epoch (`new Date(timestamp)` in JavaScript).
    #[schemars(range(min = 0, max = 253_402_300_799_999i64))]
    pub timestamp: i64,
    /// The value.
    pub value: StreamValue,
}

/// A point as a producer sends it: the event time is optional (arrival time when absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointIn {
    /// Event time in milliseconds since the Unix epoch; the server's arrival time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 253_402_300_799_999i64))]
    pub timestamp: Option<i64>,
    /// The value: a number, or an object of numbers for a stream with `fields`.
    pub value: StreamValue,
}

/// Body of `POST /streams/{id}/points`: one point, or a batch under `points`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PointsRequest {
    /// A batch of points, in order.
    #[schemars(extend("additionalProperties" = false))]
    Batch {
        /// The points (1 to 1,000).
        #[schemars(length(min = 1, max = MAX_POINTS_PER_REQUEST))]
        points: Vec<PointIn>,
    },
    /// One point.
    One(PointIn),
}

impl PointsRequest {
    /// The points, in order.
    pub fn into_points(self) -> Vec<PointIn> {
        match self {
            PointsRequest::Batch { points } => points,
            PointsRequest::One(point) => vec![point],
        }
    }
}

/// Answer to an accepted `POST /streams/{id}/points`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointsResponse {
    /// Always `true`.
    #[schemars(extend("const" = true))]
    pub success: bool,
    /// How many points were accepted.
    pub accepted: u64,
}

/// Payload of the `stream.points` broker topic: points for one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicPoints {
    /// The stream.
    pub stream: StreamId,
    /// The points (1 to 1,000), in order.
    #[schemars(length(min = 1, max = MAX_POINTS_PER_REQUEST))]
    pub points: Vec<PointIn>,
}

/// An aggregate a stream computes over each window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Number of points.
    Count,
    /// Sum of the values.
    Sum,
    /// Mean of the values.
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
}

/// A stream's declaration: in the server's configuration (`[[streams]]`) or the body of
/// `POST /streams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// The stream's id.
    pub id: StreamId,
    /// How many recent points the server keeps (the snapshot's source); 1,000 when absent.
    #[serde(
        rename = "maxDataPoints",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = MAX_STREAM_POINTS))]
    pub max_data_points: Option<u32>,
    /// The value's shape: absent for a plain number; the field names for an object of numbers
    /// (a point may carry a subset of them, nothing else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_STREAM_FIELDS), inner(length(min = 1, max = 64)))]
    pub fields: Option<Vec<String>>,
    /// Length of the tumbling windows on event time, in milliseconds; no aggregates when absent.
    #[serde(rename = "windowMs", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86_400_000))]
    pub window_ms: Option<u64>,
    /// How late (in event time, behind the latest point seen) a point may arrive and still
    /// count in its window; 0 when absent. A later point is counted as `late`.
    #[serde(rename = "graceMs", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86_400_000))]
    pub grace_ms: Option<u64>,
    /// The aggregates each window result carries, per field; all five when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 5))]
    pub aggregates: Option<Vec<Aggregate>>,
}

/// Answer to an accepted `POST /streams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamCreated {
    /// Always `true`.
    #[schemars(extend("const" = true))]
    pub success: bool,
    /// The stream's id.
    pub id: StreamId,
    /// `false` when a stream of that id existed already (with the same declaration).
    pub created: bool,
}

/// The aggregates of one field over one window. Only the aggregates the stream asks for are
/// present.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldAggregates {
    /// Number of points that carried the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Sum of its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// Mean of its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    /// Smallest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// One closed tumbling window's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowResult {
    /// The window's start (inclusive), in milliseconds since the Unix epoch.
    pub start: i64,
    /// The window's end (exclusive).
    pub end: i64,
    /// Points in the window.
    pub count: u64,
    /// Points that arrived after their own window had closed (later than the grace), since the
    /// previous window result; they are in no window's aggregates.
    pub late: u64,
    /// Aggregates per field (`value` for a plain number stream).
    pub fields: BTreeMap<String, FieldAggregates>,
}

/// Answer to `GET /streams/{id}`: a stream's declaration and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamInfo {
    /// The declaration.
    pub spec: StreamSpec,
    /// The epoch of its messages.
    pub epoch: String,
    /// The offset of its latest message (0 when it has none).
    pub offset: u64,
    /// Points kept (at most `maxDataPoints`).
    pub points: u64,
    /// Subscribers on this node.
    pub subscribers: u64,
    /// The largest outbound queue, in bytes, among its subscribers on this node (what a
    /// subscriber has not read yet, on this server's side).
    #[serde(rename = "maxQueuedBytes")]
    pub max_queued_bytes: u64,
    /// The same among the subscribers that asked for a `maxRate` (conflation): what conflation
    /// keeps bounded.
    #[serde(rename = "maxQueuedBytesRateLimited")]
    pub max_queued_bytes_rate_limited: u64,
    /// Points waiting, conflated, for rate-limited subscribers on this node.
    pub pending: u64,
    /// Points that came later than the grace, ever.
    pub late: u64,
}
