//! Server-Sent Events on `GET /events`: each event's `data` payload.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The SSE event names the server sends.
pub mod event {
    /// First event on every stream; data: [`super::Connected`].
    pub const CONNECT: &str = "connect";
    /// Keep-alive; data: [`super::Ping`].
    pub const PING: &str = "ping";
    /// A notification; data: [`super::Notification`].
    pub const NOTIFICATION: &str = "notification";
    /// A resource update; data: [`super::Update`].
    pub const UPDATE: &str = "update";
    /// Demo mode only; data: [`super::StockUpdate`].
    pub const STOCK_UPDATE: &str = "stock_update";
    /// Demo mode only; data: [`super::NewsItem`].
    pub const NEWS: &str = "news";
}

/// Data of the `connect` event, the first on every stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Connected {
    /// The stream is open.
    Connected {
        /// When the stream opened (RFC 3339).
        #[schemars(extend("format" = "date-time"))]
        timestamp: String,
    },
}

/// Data of the `ping` event, sent every 30 s by default to keep the stream alive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    /// When the ping was sent (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub timestamp: String,
}

/// A notification, as the SSE `notification` event's data and a WebSocket `notification`
/// frame's `content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// The notification's unique id.
    pub id: String,
    /// The user it is for; absent when it went to everyone.
    #[serde(rename = "userId", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The text to show.
    pub message: String,
    /// The kind of notification (`info`, `warning`, ...), as the publisher named it.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the server accepted it (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub timestamp: String,
}

/// Data of the `update` event: a resource changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// What kind of resource changed (`order`, `user`, ...).
    pub resource: String,
    /// What happened to it (`created`, `updated`, ...).
    pub action: String,
    /// The publisher's data, passed through unchanged; absent when the publisher sent none.
    #[serde(
        default,
        deserialize_with = "crate::http::present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<Value>,
    /// When the server accepted it (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub timestamp: String,
}

/// Data of the demo-mode `stock_update` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockUpdate {
    /// The ticker symbol.
    pub symbol: String,
    /// The new price.
    pub price: f64,
    /// The relative change, as a fraction (0.01 is one percent).
    pub change: f64,
    /// When the price changed (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub timestamp: String,
}

/// Data of the demo-mode `news` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewsItem {
    /// The item's id.
    pub id: String,
    /// The headline.
    pub headline: String,
    /// When it was published (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub timestamp: String,
}
