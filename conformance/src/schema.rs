//! Every frame and body the server sends is checked against the protocol's JSON Schema, whether
//! or not a step looks at it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use jsonschema::Validator;
use serde_json::Value;

/// Compiled validators, one per schema in `herald_protocol::schemas()`.
pub struct Schemas {
    validators: HashMap<&'static str, Validator>,
}

impl Schemas {
    /// The validators, compiled once per process.
    pub fn get() -> Arc<Schemas> {
        static SCHEMAS: OnceLock<Arc<Schemas>> = OnceLock::new();
        SCHEMAS
            .get_or_init(|| {
                let mut validators = HashMap::new();
                for doc in herald_protocol::schemas() {
                    let value = serde_json::to_value(&doc.schema).expect("schema is JSON");
                    let validator = jsonschema::options()
                        .should_validate_formats(true)
                        .build(&value)
                        .unwrap_or_else(|e| panic!("schema {} does not compile: {e}", doc.name));
                    validators.insert(doc.name, validator);
                }
                Arc::new(Schemas { validators })
            })
            .clone()
    }

    /// Checks `value` against the schema named `name`; returns every violation found.
    pub fn check(&self, name: &str, value: &Value) -> Result<(), String> {
        let Some(v) = self.validators.get(name) else {
            return Err(format!("no schema named {name}"));
        };
        let errors: Vec<String> = v
            .iter_errors(value)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "/".to_owned() } else { at };
                format!("at {at}: {e}")
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "does not match schema {name}: {}",
                summarize(&errors, value)
            ))
        }
    }

    /// Checks a WebSocket frame from server to client.
    pub fn check_server_frame(&self, value: &Value) -> Result<(), String> {
        self.check("server-message", value).map_err(|e| {
            // A `oneOf` failure names every variant; point at the stray or missing field of the
            // variant the frame's `type` selects, which is what a reader wants to know.
            match hint_for_frame(value) {
                Some(hint) => format!("{hint} (schema server-message) in {}", trim(value)),
                None => e,
            }
        })
    }

    /// Checks an SSE event's data, by event name.
    pub fn check_sse(&self, event: &str, data: &Value) -> Result<(), String> {
        let name = match event {
            "connect" => "sse-connect",
            "ping" => "sse-ping",
            "notification" => "sse-notification",
            "update" => "sse-update",
            "stock_update" => "sse-stock-update",
            "news" => "sse-news",
            // Capability `streams`: the data is the WebSocket frame.
            "stream_subscribed" | "stream_point" | "stream_window" | "stream_unsubscribed" => {
                "server-message"
            }
            other => return Err(format!("unknown SSE event name {other:?}")),
        };
        self.check(name, data)
    }

    /// Checks an HTTP response body, by path and status.
    pub fn check_http(&self, path: &str, status: u16, body: &Value) -> Result<(), String> {
        let name = if status >= 400 {
            "error-response"
        } else {
            match path {
                "/notifications" => "notify-response",
                "/updates" => "update-response",
                "/streams" => "stream-created",
                p if p.starts_with("/streams/") && p.ends_with("/points") => "points-response",
                _ => return Ok(()),
            }
        };
        self.check(name, body)
    }
}

fn trim(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 300 {
        format!("{}...", &text[..text.floor_char_boundary_compat(300)])
    } else {
        text
    }
}

fn summarize(errors: &[String], value: &Value) -> String {
    let mut s = errors
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > 3 {
        s.push_str(&format!(" (and {} more)", errors.len() - 3));
    }
    format!("{s} in {}", trim(value))
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for String {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Fields each server frame type may carry (the core's required ones first, then the optional
/// ones, among them those a capability adds), to name a stray or missing field plainly.
fn hint_for_frame(value: &Value) -> Option<String> {
    let obj = value.as_object()?;
    let ty = obj.get("type")?.as_str()?;
    let (required, optional): (&[&str], &[&str]) = match ty {
        "welcome" => (&["clientId"], &["protocol", "capabilities"]),
        "room_joined" => (&["room", "users"], &["epoch", "offset", "recovered"]),
        "room_resumed" => (&["room", "epoch", "offset", "recovered"], &[]),
        "user_joined" => (&["user", "users"], &["room"]),
        "room_left" => (&["room"], &[]),
        "user_left" => (&["user"], &["room"]),
        "chat" => (&["id", "user", "text", "timestamp", "room"], &["offset"]),
        "typing" => (&["user", "isTyping"], &["room"]),
        "private_message" => (&["id", "from", "text", "timestamp"], &[]),
        "notification" => (&["content"], &[]),
        "pong" => (&[], &[]),
        "error" => (&["message", "code"], &[]),
        other => return Some(format!("unknown frame type {other:?}")),
    };
    let mut notes = Vec::new();
    for r in required {
        if !obj.contains_key(*r) {
            notes.push(format!("`{ty}` frame lacks required field `{r}`"));
        }
    }
    for k in obj.keys() {
        if k != "type" && !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
            notes.push(format!(
                "`{ty}` frame has a field the schema does not allow: `{k}`"
            ));
        }
    }
    (!notes.is_empty()).then(|| notes.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames() {
        let s = Schemas::get();
        s.check_server_frame(&json!({"type":"welcome","clientId":"a"}))
            .unwrap();
        let err = s
            .check_server_frame(&json!({"type":"welcome","clientId":"a","extra":1}))
            .unwrap_err();
        assert!(err.contains("`extra`"), "{err}");
        let err = s
            .check_server_frame(&json!({"type":"user_joined","user":"a","room":"r"}))
            .unwrap_err();
        assert!(err.contains("`users`"), "{err}");
        s.check_server_frame(&json!({"type":"user_joined","user":{"id":"u","name":"U","x":[1]},"users":[{"id":"u","name":"U","x":[1]}],"room":"r"}))
            .unwrap();
        assert!(s
            .check_sse("connect", &json!({"type":"connected","timestamp":"nope"}))
            .is_err());
        s.check_sse(
            "connect",
            &json!({"type":"connected","timestamp":"2024-01-01T00:00:00Z"}),
        )
        .unwrap();
    }
}
