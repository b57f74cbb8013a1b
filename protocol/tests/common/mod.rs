//! Helpers shared by the protocol tests: validators for the generated schemas, and a way to name
//! the JSON location at fault when a frame breaks its schema.

#![allow(dead_code)]

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A validator for the generated schema with this file stem (`client-message`, ...), with
/// `format` checked so that timestamps must be RFC 3339.
pub fn validator(stem: &str) -> Validator {
    let schema = herald_protocol::schema(stem)
        .unwrap_or_else(|| panic!("no generated schema named {stem}"))
        .to_value();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema {stem} does not compile: {e}"))
}

/// Asserts that `instance` is valid under the schema `stem`, listing every fault otherwise.
pub fn assert_valid(stem: &str, instance: &Value) {
    let validator = validator(stem);
    let faults = faults(&validator, instance);
    assert!(
        faults.is_empty(),
        "{instance} breaks {stem}.schema.json: {faults:#?}"
    );
}

/// Parses `json` as `T`, checks that it serialises back to the same JSON, and that it is valid
/// under the schema `stem`. Returns the parsed value.
pub fn round_trip<T: DeserializeOwned + Serialize>(stem: &str, json: &Value) -> T {
    let parsed: T = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("{json} does not parse as {stem}: {e}"));
    let back = serde_json::to_value(&parsed).expect("serialises");
    assert_eq!(&back, json, "{stem} does not round-trip");
    // The text form too, as a socket would carry it.
    let text = serde_json::to_string(&parsed).expect("serialises");
    let reparsed: Value = serde_json::from_str(&text).expect("is JSON");
    assert_eq!(&reparsed, json, "{stem} does not round-trip through text");
    assert_valid(stem, json);
    parsed
}

/// One place where an instance breaks its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// JSON Pointer to the value at fault (`""` is the whole frame).
    pub path: String,
    /// The schema keyword that failed (`type`, `maxLength`, `additionalProperties`, ...).
    pub keyword: String,
    /// The validator's message.
    pub message: String,
}

/// Every fault in `instance`, looking inside `oneOf`/`anyOf` for the branch the instance meant:
/// a tagged union's variant whose `type` matches, or a union member of the right JSON type. When
/// no single branch is meant, the faults every branch shares are reported instead (a missing
/// `type` is reported as such, not as "matches none of six variants").
pub fn faults(validator: &Validator, instance: &Value) -> Vec<Fault> {
    let mut out = Vec::new();
    for error in validator.iter_errors(instance) {
        collect(&error, &mut out);
    }
    out
}

fn fault(error: &ValidationError<'_>) -> Fault {
    Fault {
        path: error.instance_path().as_str().to_owned(),
        keyword: error.kind().keyword().to_owned(),
        message: error.to_string(),
    }
}

fn collect(error: &ValidationError<'_>, out: &mut Vec<Fault>) {
    let context = match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            context
        }
        _ => {
            out.push(fault(error));
            return;
        }
    };
    let here = error.instance_path().as_str();
    let tag = format!("{here}/type");
    // A branch that fails on the tag, or on the JSON type of the value itself, describes another
    // shape than the one the instance is.
    let other_shape = |e: &ValidationError<'_>| {
        let at = e.instance_path().as_str();
        matches!(e.kind(), ValidationErrorKind::Constant { .. }) && at == tag
            || matches!(e.kind(), ValidationErrorKind::Type { .. }) && at == here
    };
    let meant: Vec<&Vec<ValidationError<'static>>> = context
        .iter()
        .filter(|branch| !branch.iter().any(other_shape))
        .collect();
    if let [branch] = meant.as_slice() {
        for e in branch.iter() {
            collect(e, out);
        }
        return;
    }
    let candidates: Vec<&Vec<ValidationError<'static>>> = if meant.is_empty() {
        context.iter().collect()
    } else {
        meant
    };
    // Faults (by location and keyword) that every candidate branch has.
    let shared: Vec<Fault> = candidates[0]
        .iter()
        .map(fault)
        .filter(|f| {
            candidates[1..].iter().all(|branch| {
                branch.iter().any(|e| {
                    e.instance_path().as_str() == f.path && e.kind().keyword() == f.keyword
                })
            })
        })
        .collect();
    if shared.is_empty() {
        out.push(fault(error));
    } else {
        out.extend(shared);
    }
}

/// The one fault of `instance` under the schema `stem`; panics when it is valid.
pub fn only_fault(stem: &str, instance: &Value) -> Vec<Fault> {
    let validator = validator(stem);
    let faults = faults(&validator, instance);
    assert!(!faults.is_empty(), "{instance} is valid under {stem}");
    faults
}

/// The WebSocket / SSE timestamp used in examples.
pub const TS: &str = "2026-11-28T03:56:29.123Z";
