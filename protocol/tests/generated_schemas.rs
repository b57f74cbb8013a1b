//! Snapshots of every generated file (each JSON Schema and the AsyncAPI document), and a check
//! that the files committed in `schemas/` are exactly what `cargo xtask gen-schemas` writes.
//!
//! The generator is the xtask's own code, included here so that both see the same output.

#[path = "../../xtask/src/generate.rs"]
#[allow(dead_code)]
mod generate;

#[path = "../../xtask/src/spec.rs"]
#[allow(dead_code)]
mod spec;

use std::path::Path;

use serde_json::Value;

#[test]
fn snapshot_every_generated_file() {
    for file in generate::generate() {
        let name = file.name.trim_end_matches(".json").replace('.', "_");
        insta::assert_snapshot!(name, file.contents);
    }
}

#[test]
fn committed_schemas_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let mut stale = Vec::new();
    for file in generate::generate() {
        let committed = std::fs::read_to_string(dir.join(&file.name)).unwrap_or_default();
        if committed != file.contents {
            stale.push(file.name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale files in schemas/: {stale:?}; run `cargo xtask gen-schemas`"
    );
}

#[test]
fn every_schema_is_2020_12_with_an_id() {
    for doc in herald_protocol::schemas() {
        let schema = doc.schema.to_value();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{}",
            doc.name
        );
        assert_eq!(
            schema["$id"],
            format!(
                "https://herald.dev/schemas/{}/{}.schema.json",
                herald_protocol::PROTOCOL_VERSION,
                doc.name
            )
        );
        jsonschema::draft202012::meta::validate(&schema)
            .unwrap_or_else(|e| panic!("{} is not a valid 2020-12 schema: {e}", doc.name));
    }
}

/// Resolves a local `$ref` in the AsyncAPI document.
fn resolve<'a>(doc: &'a Value, reference: &Value) -> &'a Value {
    let pointer = reference["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix('#'))
        .unwrap_or_else(|| panic!("not a local $ref: {reference}"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("dangling $ref {pointer}"))
}

fn every_ref(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, value) in fields {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    _ => every_ref(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| every_ref(v, out)),
        _ => {}
    }
}

#[test]
fn asyncapi_covers_the_contract() {
    let doc = generate::asyncapi();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"]["version"], herald_protocol::PROTOCOL_VERSION);

    // The HTTP and WebSocket servers default to where Herald listens (127.0.0.1:8080).
    for server in ["websocket", "http"] {
        assert_eq!(
            doc["servers"][server]["variables"]["host"]["default"], "localhost:8080",
            "server {server}"
        );
    }

    // No reference dangles, and none points at a `$defs` left behind.
    let mut refs = Vec::new();
    every_ref(&doc, &mut refs);
    for target in &refs {
        let pointer = target.strip_prefix('#').expect("only local refs");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
    }

    let addresses: Vec<&str> = doc["channels"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["address"].as_str().unwrap())
        .collect();
    for address in ["/", "/ws", "/events", "/notifications", "/updates"] {
        assert!(addresses.contains(&address), "no channel for {address}");
    }

    // Every WebSocket frame type, both ways, is a message on both WebSocket channels.
    let operations = doc["operations"].as_object().unwrap();
    for (channel, action, stem) in [
        ("websocket", "receive", "client-message"),
        ("websocket", "send", "server-message"),
        ("websocketWs", "receive", "client-message"),
        ("websocketWs", "send", "server-message"),
    ] {
        let schema = herald_protocol::schema(stem).unwrap().to_value();
        let tags: Vec<&str> = schema["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["properties"]["type"]["const"].as_str().unwrap())
            .collect();
        let operation = operations
            .values()
            .find(|op| {
                op["action"] == action && op["channel"]["$ref"] == format!("#/channels/{channel}")
            })
            .unwrap_or_else(|| panic!("no {action} operation on {channel}"));
        let names: Vec<&str> = operation["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| resolve(&doc, resolve(&doc, m))["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, tags, "{action} on {channel}");
        // Each message's payload is that variant of the generated schema, unchanged apart from
        // its title and where its references point.
        for (message, variant) in operation["messages"]
            .as_array()
            .unwrap()
            .iter()
            .zip(schema["oneOf"].as_array().unwrap())
        {
            let message = resolve(&doc, resolve(&doc, message));
            let mut payload = resolve(&doc, &message["payload"]).clone();
            payload.as_object_mut().unwrap().remove("title");
            let expected: Value = serde_json::from_str(
                &serde_json::to_string(variant)
                    .unwrap()
                    .replace("#/$defs/", "#/components/schemas/"),
            )
            .unwrap();
            assert_eq!(payload, expected);
        }
    }

    // Every SSE event name, with its payload.
    let events = &doc["channels"]["events"]["messages"];
    let mut names: Vec<&str> = events
        .as_object()
        .unwrap()
        .values()
        .map(|m| resolve(&doc, m)["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "connect",
            "news",
            "notification",
            "ping",
            "stock_update",
            "update"
        ]
    );

    // Both publish endpoints are POST with request, response and error payloads.
    for (channel, request, response) in [
        ("notifications", "NotifyRequest", "NotifyResponse"),
        ("updates", "UpdateRequest", "UpdateResponse"),
    ] {
        let operation = operations
            .values()
            .find(|op| op["channel"]["$ref"] == format!("#/channels/{channel}"))
            .unwrap();
        assert_eq!(operation["bindings"]["http"]["method"], "POST");
        let titles = |list: &Value| -> Vec<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    resolve(&doc, resolve(&doc, m))["title"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(titles(&operation["messages"]), [request]);
        assert_eq!(
            titles(&operation["reply"]["messages"]),
            [response, "ErrorResponse"]
        );
    }
}

#[test]
fn asyncapi_examples_match_their_payloads() {
    let doc = generate::asyncapi();
    let mut checked = 0;
    for (name, message) in doc["components"]["messages"].as_object().unwrap() {
        // A schema whose root is the payload, with every component reachable from it.
        let schema = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": message["payload"]["$ref"],
            "components": doc["components"],
        });
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("payload of {name} does not compile: {e}"));
        let examples = message["examples"].as_array();
        for example in examples.into_iter().flatten() {
            let errors: Vec<String> = validator
                .iter_errors(&example["payload"])
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "example of {name}: {errors:?}");
            checked += 1;
        }
    }
    assert!(checked >= 28, "only {checked} examples");
}

#[test]
fn the_changelog_records_the_current_version() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("CHANGELOG.md");
    let changelog = std::fs::read_to_string(&path).expect("protocol/CHANGELOG.md exists");
    let heading = format!("\n## {}\n", herald_protocol::PROTOCOL_VERSION);
    assert!(
        changelog.contains(&heading),
        "protocol/CHANGELOG.md has no `## {}` section",
        herald_protocol::PROTOCOL_VERSION
    );
}

#[test]
fn protocol_md_generated_sections_are_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(spec::PROTOCOL_FILE);
    let committed = std::fs::read_to_string(&path).expect("PROTOCOL.md exists at the root");
    let fresh = spec::rewrite(&committed).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        fresh == committed,
        "the generated sections of PROTOCOL.md are stale; run `cargo xtask gen-schemas`"
    );
    // Every message type, both ways, has its own heading there.
    for stem in ["client-message", "server-message"] {
        let schema = herald_protocol::schema(stem).unwrap().to_value();
        for variant in schema["oneOf"].as_array().unwrap() {
            let tag = variant["properties"]["type"]["const"].as_str().unwrap();
            assert!(
                committed.contains(&format!("#### `{tag}`")),
                "PROTOCOL.md has no section for `{tag}`"
            );
        }
    }
    // Every capability field is marked with its capability.
    assert!(committed.contains("| `offset` | integer ≥ 0 | with `offsets` |"));
    assert!(committed.contains("| `room` | room name | with `room-in-presence` |"));
}

#[test]
fn protocol_md_rewrite_refuses_broken_markers() {
    let mut doc = String::new();
    for (name, _) in spec::sections() {
        doc.push_str(&format!(
            "<!-- BEGIN GENERATED: {name} (cargo xtask gen-schemas) -->\nSTALE-CONTENT\n<!-- END GENERATED: {name} -->\n"
        ));
    }
    let fresh = spec::rewrite(&doc).unwrap();
    assert!(
        !fresh.contains("STALE-CONTENT"),
        "every section is replaced"
    );
    assert_eq!(spec::rewrite(&fresh).unwrap(), fresh, "rewriting is stable");
    let missing = doc.replace("<!-- END GENERATED: limits -->", "");
    assert!(spec::rewrite(&missing).unwrap_err().contains("limits"));
    let first = spec::sections()[0].0;
    let doubled = format!("{doc}<!-- BEGIN GENERATED: {first} (cargo xtask gen-schemas) -->\n");
    assert!(spec::rewrite(&doubled).unwrap_err().contains("twice"));
}
