//! The generated parts of `PROTOCOL.md`: one Markdown table per message, built from the same
//! schemas as `schemas/` (so from the protocol crate's types and doc comments), plus the error
//! codes, the capabilities and the limits.
//!
//! Each part sits between two marker comments in PROTOCOL.md:
//!
//! ```text
//! <!-- BEGIN GENERATED: client-messages (cargo xtask gen-schemas) -->
//! ...
//! <!-- END GENERATED: client-messages -->
//! ```
//!
//! `cargo xtask gen-schemas` rewrites what is between them, `--check` fails when it is stale.
//! Everything outside the markers is written by hand. Like `generate.rs`, this file depends only
//! on `herald_protocol` and `serde_json`, so the protocol crate's tests can include it.

use herald_protocol::capability::{Status, CAPABILITIES, HERALD_ALWAYS};
use herald_protocol::limits;
use serde_json::{Map, Value};

/// The file, relative to the workspace root.
pub const PROTOCOL_FILE: &str = "PROTOCOL.md";

/// Every generated section: its name and its Markdown.
pub fn sections() -> Vec<(&'static str, String)> {
    vec![
        ("capabilities", capabilities()),
        ("client-messages", union("client-message")),
        ("server-messages", union("server-message")),
        ("user", user()),
        ("sse-events", sse_events()),
        ("http-bodies", http_bodies()),
        ("topics", topics()),
        ("error-codes", error_codes()),
        ("limits", limits_table()),
    ]
}

fn begin(name: &str) -> String {
    format!("<!-- BEGIN GENERATED: {name} (cargo xtask gen-schemas) -->")
}

fn end(name: &str) -> String {
    format!("<!-- END GENERATED: {name} -->")
}

/// `doc` with every generated section replaced by its current contents. Fails, naming it, when a
/// section's markers are missing, doubled or out of order.
pub fn rewrite(doc: &str) -> Result<String, String> {
    let mut out = doc.to_owned();
    for (name, body) in sections() {
        let (begin, end) = (begin(name), end(name));
        let start = match (out.find(&begin), out.rfind(&begin)) {
            (Some(a), Some(b)) if a == b => a + begin.len(),
            (None, _) => return Err(format!("{PROTOCOL_FILE} has no marker `{begin}`")),
            _ => return Err(format!("{PROTOCOL_FILE} has `{begin}` twice")),
        };
        let stop = match out[start..].find(&end) {
            Some(offset) => start + offset,
            None => return Err(format!("{PROTOCOL_FILE} has no `{end}` after `{begin}`")),
        };
        out.replace_range(start..stop, &format!("\n{body}"));
    }
    Ok(out)
}

/// Text of a schema description on one line, safe in a table cell.
fn cell(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn ref_name(value: &Value) -> Option<&str> {
    value
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
}

/// A readable type for a property schema.
fn type_of(schema: &Value) -> String {
    if let Some(name) = ref_name(schema) {
        return match name {
            "RoomName" => "room name".to_owned(),
            "User" => "user".to_owned(),
            "StreamPosition" => "position".to_owned(),
            "ErrorCode" => "error code".to_owned(),
            "Notification" => "notification".to_owned(),
            "ErrorDetail" => "error".to_owned(),
            other => other.to_owned(),
        };
    }
    if let Some(Value::Array(options)) = schema.get("anyOf") {
        let kinds: Vec<String> = options
            .iter()
            .filter(|o| o.get("type") != Some(&Value::String("null".into())))
            .map(type_of)
            .collect();
        return kinds.join(" or ");
    }
    if let Some(value) = schema.get("const") {
        return format!("`{value}`");
    }
    let kinds: Vec<&str> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .filter(|k| *k != "null")
            .collect(),
        _ => vec![],
    };
    let kinds: Vec<String> = kinds
        .iter()
        .map(|kind| match *kind {
            "string" if schema.get("format") == Some(&"date-time".into()) => {
                "string (RFC 3339)".to_owned()
            }
            "array" => match schema.get("items") {
                Some(items) => format!("array of {}", type_of(items)),
                None => "array".to_owned(),
            },
            "integer" => "integer ≥ 0".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    if kinds.is_empty() {
        "any JSON".to_owned()
    } else {
        kinds.join(" or ")
    }
}

/// The limits a property schema states, as prose.
fn constraints(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let number = |key: &str| schema.get(key).and_then(Value::as_u64);
    match (number("minLength"), number("maxLength")) {
        (Some(min), Some(max)) => out.push(format!("{min} to {max} characters")),
        (None, Some(max)) => out.push(format!("at most {max} characters")),
        (Some(min), None) => out.push(format!("at least {min} characters")),
        (None, None) => {}
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        out.push(format!("matches `{pattern}`"));
    }
    if let Some(items) = schema.get("items") {
        if let Some(pattern) = items.get("pattern").and_then(Value::as_str) {
            out.push(format!("each matches `{pattern}`"));
        }
    }
    out
}

/// `always`, `optional`, or `with` the capability the description names.
fn presence(required: bool, description: &str) -> String {
    if required {
        return "always".to_owned();
    }
    match description
        .strip_prefix("Capability `")
        .and_then(|rest| rest.split_once('`'))
    {
        Some((name, _)) => format!("with `{name}`"),
        None => "optional".to_owned(),
    }
}

/// A field table for an object schema (the `type` tag left out).
fn field_table(schema: &Value) -> String {
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return "No fields besides `type`.\n".to_owned();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for (name, property) in properties {
        if name == "type" && property.get("const").is_some() {
            continue;
        }
        let description = property
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut text = cell(description);
        let limits = constraints(property);
        if !limits.is_empty() {
            text = format!("{text} ({})", limits.join("; "));
        }
        rows.push(format!(
            "| `{name}` | {} | {} | {text} |",
            type_of(property),
            presence(required.contains(&name.as_str()), description),
        ));
    }
    if rows.is_empty() {
        return "No fields besides `type`.\n".to_owned();
    }
    let mut out = String::from("| field | type | present | meaning |\n|---|---|---|---|\n");
    for row in rows {
        out.push_str(&row);
        out.push('\n');
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        out.push_str("\nNo other field is allowed.\n");
    }
    out
}

fn schema_of(stem: &str) -> Value {
    herald_protocol::schema(stem)
        .unwrap_or_else(|| panic!("no schema {stem}"))
        .to_value()
}

fn description(schema: &Value) -> String {
    cell(
        schema
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
}

/// One `####` block per variant of a `type`-tagged union.
fn union(stem: &str) -> String {
    let schema = schema_of(stem);
    let mut out = String::new();
    for variant in schema["oneOf"].as_array().expect("a tagged union") {
        let tag = variant["properties"]["type"]["const"]
            .as_str()
            .expect("each variant fixes its type");
        out.push_str(&format!(
            "\n#### `{tag}`\n\n{}\n\n{}",
            description(variant),
            field_table(variant)
        ));
    }
    out
}

fn defs(stem: &str) -> Map<String, Value> {
    schema_of(stem)["$defs"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn user() -> String {
    let defs = defs("client-message");
    let user = &defs["User"];
    let object = &defs["UserObject"];
    let mut out = format!("{}\n\n", description(user));
    out.push_str(&format!(
        "A string user: {}\n\n",
        user["anyOf"][0]
            .get("maxLength")
            .map(|max| format!("1 to {max} characters."))
            .unwrap_or_default()
    ));
    out.push_str(&format!("{}\n\n", description(object)));
    out.push_str(&field_table(object));
    out.push_str(
        "\nAny further field is allowed and echoed back exactly as sent (nested values \
         included).\n",
    );
    out
}

fn sse_events() -> String {
    use herald_protocol::sse::event;
    let mut out = String::new();
    for (name, stem, when) in [
        (event::CONNECT, "sse-connect", "first event of every stream"),
        (event::PING, "sse-ping", "keep-alive, every 30 s by default"),
        (event::NOTIFICATION, "sse-notification", "has an `id:`"),
        (event::UPDATE, "sse-update", "has an `id:`"),
        (event::STOCK_UPDATE, "sse-stock-update", "demo mode only"),
        (event::NEWS, "sse-news", "demo mode only"),
    ] {
        let schema = schema_of(stem);
        // `connect` is a one-variant tagged union.
        let body = match schema.get("oneOf").and_then(Value::as_array) {
            Some(variants) => {
                let variant = &variants[0];
                let tag = variant["properties"]["type"]["const"]
                    .as_str()
                    .unwrap_or("");
                format!(
                    "Data: `{{\"type\":\"{tag}\", ...}}`. {}\n\n{}",
                    description(&schema),
                    field_table(variant)
                )
            }
            None => format!("{}\n\n{}", description(&schema), field_table(&schema)),
        };
        out.push_str(&format!("\n#### `event: {name}` ({when})\n\n{body}"));
    }
    out
}

fn http_bodies() -> String {
    let mut out = String::new();
    for (title, stem) in [
        ("`POST /notifications` request", "notify-request"),
        ("`POST /notifications` answer (200)", "notify-response"),
        ("`POST /updates` request", "update-request"),
        ("`POST /updates` answer (200)", "update-response"),
        ("Error answer (any 4xx or 5xx)", "error-response"),
    ] {
        let schema = schema_of(stem);
        out.push_str(&format!(
            "\n#### {title}\n\n{}\n\n{}",
            description(&schema),
            field_table(&schema)
        ));
    }
    let detail = &defs("error-response")["ErrorDetail"];
    out.push_str(&format!(
        "\nThe `error` object: {}\n\n{}",
        description(detail),
        field_table(detail)
    ));
    out
}

fn topics() -> String {
    use herald_protocol::topics::topic;
    let mut out = String::new();
    for (name, stem) in [
        (topic::ROOM_MESSAGES, "topic-room-message"),
        (topic::USER_NOTIFICATIONS, "notify-request"),
        (topic::SYSTEM_EVENTS, "topic-system-event"),
        (topic::STREAM_POINTS, "topic-stream-points"),
    ] {
        let schema = schema_of(stem);
        out.push_str(&format!(
            "\n#### Topic `{name}`\n\n{}\n\n{}",
            description(&schema),
            field_table(&schema)
        ));
    }
    out
}

fn error_codes() -> String {
    let codes = &defs("server-message")["ErrorCode"];
    let mut out = String::from("| code | meaning |\n|---|---|\n");
    for code in codes["oneOf"].as_array().expect("codes are a oneOf") {
        out.push_str(&format!(
            "| `{}` | {} |\n",
            code["const"].as_str().expect("each code is a const"),
            description(code)
        ));
    }
    out
}

fn capabilities() -> String {
    let mut out = String::from("| capability | status | adds | what for |\n|---|---|---|---|\n");
    for capability in CAPABILITIES {
        let status = match capability.status {
            Status::Stable if HERALD_ALWAYS.contains(&capability.name) => "stable; Herald: always",
            Status::Stable => "stable; Herald: when authentication is on",
            Status::Planned => "reserved (planned)",
        };
        let adds = if capability.adds.is_empty() {
            "not yet specified".to_owned()
        } else {
            capability
                .adds
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {status} | {adds} | {} |\n",
            capability.name,
            cell(capability.summary)
        ));
    }
    out.push_str(&format!(
        "\nProtocol version: `{}`.\n",
        herald_protocol::PROTOCOL_VERSION
    ));
    out
}

fn limits_table() -> String {
    let rows: [(&str, String, &str); 9] = [
        (
            "WebSocket frame, HTTP body",
            format!("{} bytes", limits::MAX_FRAME_BYTES),
            "`MAX_FRAME_BYTES`; configurable on the server (`--max-frame-bytes`). A larger \
             WebSocket frame closes the connection with 1009, a larger body gets 413.",
        ),
        (
            "chat and private-message `text`",
            "none of its own".to_owned(),
            "the frame limit governs",
        ),
        (
            "room name",
            format!(
                "{} characters, `{}`",
                limits::MAX_ROOM_NAME_CHARS,
                limits::ROOM_NAME_PATTERN
            ),
            "`MAX_ROOM_NAME_CHARS`, `ROOM_NAME_PATTERN`",
        ),
        (
            "string user, user object `name`",
            format!("{} characters", limits::MAX_USER_NAME_CHARS),
            "`MAX_USER_NAME_CHARS`",
        ),
        (
            "user object `id`, private-message `target`, `userId`",
            format!("{} characters", limits::MAX_USER_ID_CHARS),
            "`MAX_USER_ID_CHARS`",
        ),
        (
            "user object",
            format!(
                "{} bytes of compact JSON, {} fields",
                limits::MAX_USER_OBJECT_BYTES,
                limits::MAX_USER_OBJECT_FIELDS
            ),
            "`MAX_USER_OBJECT_BYTES` (checked by `ClientMessage::check_limits`; the schema \
             cannot count bytes), `MAX_USER_OBJECT_FIELDS`",
        ),
        (
            "user object `avatar`",
            format!("{} characters", limits::MAX_URL_CHARS),
            "`MAX_URL_CHARS`",
        ),
        (
            "notification `message`",
            format!("{} characters", limits::MAX_NOTIFICATION_CHARS),
            "`MAX_NOTIFICATION_CHARS`",
        ),
        (
            "notification `type`, update `resource` and `action`",
            format!("{} characters", limits::MAX_LABEL_CHARS),
            "`MAX_LABEL_CHARS`",
        ),
    ];
    let mut out = String::from("| what | limit | source |\n|---|---|---|\n");
    for (what, limit, source) in rows {
        out.push_str(&format!("| {what} | {limit} | {source} |\n"));
    }
    out
}
