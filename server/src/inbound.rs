//! Turning an inbound text frame into a [`ClientMessage`], or into the exact error the client
//! should get. The frame is checked against the protocol's own JSON Schema (generated from the
//! same types as `schemas/client-message.schema.json`) before it is acted on.

use std::sync::LazyLock;

use herald_protocol::error::text;
use herald_protocol::{ClientMessage, ErrorCode};
use serde_json::Value;

/// Why a frame was refused: the code and the text to send back.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The error code.
    pub code: ErrorCode,
    /// The human text.
    pub message: String,
}

/// One validator per client message `type`: the matching branch of the generated schema's
/// `oneOf`, with the schema's shared definitions. Validating against the branch (rather than the
/// whole `oneOf`) lets the error name the exact field at fault.
struct Validators {
    by_type: Vec<(String, jsonschema::Validator)>,
}

static VALIDATORS: LazyLock<Validators> = LazyLock::new(|| {
    let schema = herald_protocol::schema("client-message").expect("client-message schema exists");
    let root = schema.as_value();
    let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
    let branches = root["oneOf"].as_array().expect("ClientMessage is a oneOf");
    let by_type = branches
        .iter()
        .map(|branch| {
            let kind = branch["properties"]["type"]["const"]
                .as_str()
                .expect("each branch fixes its type")
                .to_owned();
            let mut branch = branch.clone();
            branch["$schema"] = root["$schema"].clone();
            branch["$defs"] = defs.clone();
            let validator =
                jsonschema::validator_for(&branch).expect("the generated schema compiles");
            (kind, validator)
        })
        .collect();
    Validators { by_type }
});

/// Compiles the validators now rather than on the first frame.
pub fn warm_up() {
    LazyLock::force(&VALIDATORS);
}

/// The first schema violation of `value` against `schema`, as "path: what is wrong".
pub fn first_violation(validator: &jsonschema::Validator, value: &Value) -> Option<String> {
    validator.iter_errors(value).next().map(|e| {
        let path = e.instance_path().to_string();
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        format!("{path}: {e}")
    })
}

/// Parses and validates one text frame.
pub fn parse(frame: &str) -> Result<ClientMessage, Refusal> {
    let value: Value = serde_json::from_str(frame).map_err(|_| format_error())?;
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(format_error());
    };
    let kind = kind.to_owned();
    let Some((_, validator)) = VALIDATORS.by_type.iter().find(|(k, _)| *k == kind) else {
        return Err(Refusal {
            code: ErrorCode::UnknownType,
            message: text::UNKNOWN_TYPE.to_owned(),
        });
    };
    if let Some(fault) = first_violation(validator, &value) {
        return Err(Refusal {
            code: ErrorCode::InvalidMessage,
            message: format!("Invalid {kind} message at {fault}"),
        });
    }
    let message: ClientMessage = serde_json::from_value(value).map_err(|e| Refusal {
        code: ErrorCode::InvalidMessage,
        message: format!("Invalid {kind} message: {e}"),
    })?;
    // What the schema cannot say: a user object's size in bytes.
    message.check_limits().map_err(|e| Refusal {
        code: e.code,
        message: e.message.to_owned(),
    })?;
    Ok(message)
}

fn format_error() -> Refusal {
    Refusal {
        code: ErrorCode::InvalidFormat,
        message: text::INVALID_FORMAT.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_bad_frames_into_the_chapter_errors() {
        assert_eq!(
            parse("not json").unwrap_err().code,
            ErrorCode::InvalidFormat
        );
        assert_eq!(parse("[1,2]").unwrap_err().code, ErrorCode::InvalidFormat);
        assert_eq!(
            parse(r#"{"type":5}"#).unwrap_err().code,
            ErrorCode::InvalidFormat
        );
        assert_eq!(
            parse(r#"{"type":"dance"}"#).unwrap_err().message,
            "Unknown message type"
        );
        let err = parse(r#"{"type":"chat","text":5}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidMessage);
        assert!(err.message.contains("/text"), "{}", err.message);
        let err = parse(r#"{"type":"chat","text":"hi","extra":1}"#).unwrap_err();
        assert!(err.message.contains("extra"), "{}", err.message);
        let err = parse(r#"{"type":"join","room":"general"}"#).unwrap_err();
        assert!(err.message.contains("user"), "{}", err.message);
        let err = parse(r#"{"type":"join","room":"a b","user":"x"}"#).unwrap_err();
        assert!(err.message.contains("/room"), "{}", err.message);
    }

    #[test]
    fn accepts_the_chapter_frames() {
        assert!(matches!(
            parse(r#"{"type":"join","room":"general","user":"JohnDoe"}"#),
            Ok(ClientMessage::Join { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"typing","isTyping":true}"#),
            Ok(ClientMessage::Typing { is_typing: true })
        ));
        assert!(matches!(
            parse(r#"{"type":"leave"}"#),
            Ok(ClientMessage::Leave {})
        ));
    }
}
