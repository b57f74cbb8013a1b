//! The capability list agrees with the schemas: every `frame.field` a capability claims is an
//! optional field of that frame whose description names the capability, and every field whose
//! description names a capability is claimed by it. Herald's welcome is valid and announces only
//! stable capabilities.

use herald_protocol::capability::{self, Status, CAPABILITIES, HERALD_ALWAYS};
use herald_protocol::ServerMessage;
use serde_json::Value;

/// `(frame type, field) -> (required, description)` for every field of a tagged union.
fn fields(stem: &str) -> Vec<(String, String, bool, String)> {
    let schema = herald_protocol::schema(stem).unwrap().to_value();
    let mut out = Vec::new();
    for variant in schema["oneOf"].as_array().unwrap() {
        let tag = variant["properties"]["type"]["const"].as_str().unwrap();
        let required: Vec<&str> = variant["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(Value::Object(properties)) = variant.get("properties") {
            for (name, property) in properties {
                let description = property["description"].as_str().unwrap_or("").to_owned();
                out.push((
                    tag.to_owned(),
                    name.clone(),
                    required.contains(&name.as_str()),
                    description,
                ));
            }
        }
    }
    out
}

#[test]
fn capability_fields_match_the_schemas() {
    let all: Vec<_> = fields("client-message")
        .into_iter()
        .chain(fields("server-message"))
        .collect();
    for capability in CAPABILITIES {
        for claim in capability.adds {
            let Some((frame, field)) = claim.split_once('.') else {
                continue; // a whole frame or a behaviour, not a field
            };
            let found = all.iter().find(|(t, f, _, _)| t == frame && f == field);
            let Some((_, _, required, description)) = found else {
                panic!("`{}` claims {claim}, which no schema has", capability.name);
            };
            assert!(
                !required,
                "{claim} is required, but `{}` adds it",
                capability.name
            );
            assert!(
                description.starts_with(&format!("Capability `{}`", capability.name)),
                "{claim}'s description does not name `{}`: {description}",
                capability.name
            );
        }
    }
    // And the other way round: a field that names a capability is claimed by it.
    for (frame, field, _, description) in &all {
        if let Some(rest) = description.strip_prefix("Capability `") {
            let name = rest.split('`').next().unwrap();
            let capability = capability::find(name)
                .unwrap_or_else(|| panic!("{frame}.{field} names an unknown capability {name}"));
            let claim = format!("{frame}.{field}");
            assert!(
                capability.adds.contains(&claim.as_str()),
                "`{name}` does not list {claim}"
            );
        }
    }
}

#[test]
fn herald_announces_stable_capabilities_in_a_valid_welcome() {
    for name in HERALD_ALWAYS {
        assert_eq!(capability::find(name).unwrap().status, Status::Stable);
    }
    let open = capability::herald_capabilities(false);
    let with_auth = capability::herald_capabilities(true);
    assert!(!open.contains(&"auth".to_owned()));
    assert_eq!(with_auth.last().map(String::as_str), Some("auth"));
    let validator = jsonschema::validator_for(
        &herald_protocol::schema("server-message")
            .unwrap()
            .to_value(),
    )
    .unwrap();
    for capabilities in [open, with_auth] {
        let welcome = ServerMessage::Welcome {
            client_id: "c1".into(),
            protocol: herald_protocol::PROTOCOL_VERSION.into(),
            capabilities,
        };
        let json = serde_json::to_value(&welcome).unwrap();
        assert!(validator.is_valid(&json), "{json}");
    }
    // Names are unique and well formed.
    let mut names: Vec<&str> = CAPABILITIES.iter().map(|c| c.name).collect();
    assert!(names
        .iter()
        .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '-')));
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CAPABILITIES.len());
}
