//! The shipped sessions against the session schema, the suite's coverage, and the HAR import.

use std::path::Path;

use conformance::Session;
use serde_json::{json, Value};

fn session_schema() -> jsonschema::Validator {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/conformance/session.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn every_session_line_matches_the_schema() {
    let validator = session_schema();
    let mut files = 0;
    let dirs = [
        conformance::default_sessions_dir(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sessions"),
    ];
    let paths = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path());
    for path in paths {
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.trim_start().starts_with("//") {
                continue;
            }
            let v: Value = serde_json::from_str(line).unwrap();
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{}:{}: {errors:?}",
                path.display(),
                i + 1
            );
        }
    }
    assert!(files >= 30, "only {files} sessions");
}

#[test]
fn the_suite_loads_and_covers_every_wire_row() {
    let sessions = Session::load_dir(&conformance::default_sessions_dir()).unwrap();
    assert!(sessions.len() >= 30);
    let all: String = sessions
        .iter()
        .map(|s| s.to_jsonl())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "\"type\":\"welcome\"",
        "\"type\":\"room_joined\"",
        "\"type\":\"user_joined\"",
        "\"type\":\"room_left\"",
        "\"type\":\"user_left\"",
        "\"type\":\"chat\"",
        "\"type\":\"typing\"",
        "\"type\":\"private_message\"",
        "\"type\":\"notification\"",
        "\"type\":\"pong\"",
        "Invalid message format",
        "Unknown message type",
        "Not in a room",
        "invalid_message",
        "user_not_found",
        "\"code\":1009",
        "\"event\":\"connect\"",
        "\"event\":\"update\"",
        "\"event\":\"notification\"",
        "invalid_json",
        "invalid_request",
        "OPTIONS",
        "access-control-allow-origin",
        "\"disconnect\":\"abrupt\"",
        "\"disconnect\":\"clean\"",
    ] {
        assert!(all.contains(needle), "no session mentions {needle}");
    }
}

#[test]
fn a_har_export_becomes_a_session() {
    let har = json!({"log": {"entries": [
        {
            "startedDateTime": "2025-03-01T10:00:00.000Z",
            "request": {"method": "GET", "url": "ws://localhost:3000/ws?token=abc", "headers": []},
            "response": {"status": 101, "headers": [], "content": {"mimeType": "", "text": ""}},
            "_webSocketMessages": [
                {"type": "receive", "time": 1740823200.1, "opcode": 1, "data": "{\"type\":\"welcome\",\"clientId\":\"k9\"}"},
                {"type": "send", "time": 1740823200.2, "opcode": 1, "data": "{\"type\":\"join\",\"room\":\"general\",\"user\":\"JohnDoe\"}"},
                {"type": "receive", "time": 1740823200.3, "opcode": 1, "data": "{\"type\":\"room_joined\",\"room\":\"general\",\"users\":[\"JohnDoe\"],\"epoch\":\"ep\",\"offset\":0}"},
                {"type": "send", "time": 1740823201.0, "opcode": 1, "data": "not json"},
                {"type": "receive", "time": 1740823201.1, "opcode": 1, "data": "{\"type\":\"error\",\"message\":\"Invalid message format\",\"code\":\"invalid_format\"}"}
            ]
        },
        {
            "startedDateTime": "2025-03-01T10:00:00.500Z",
            "request": {"method": "GET", "url": "http://localhost:3000/events?userId=JohnDoe", "headers": []},
            "response": {"status": 200, "headers": [], "content": {"mimeType": "text/event-stream",
                "text": "event: connect\ndata: {\"type\":\"connected\",\"timestamp\":\"2025-03-01T10:00:00.500Z\"}\n\nevent: ping\ndata: {\"timestamp\":\"2025-03-01T10:00:30.500Z\"}\n\n"}}
        },
        {
            "startedDateTime": "2025-03-01T10:00:02.000Z",
            "request": {"method": "POST", "url": "http://localhost:3000/notifications", "headers": [],
                "postData": {"mimeType": "application/json", "text": "{\"userId\":\"JohnDoe\",\"message\":\"hi\"}"}},
            "response": {"status": 200, "headers": [], "content": {"mimeType": "application/json", "text": "{\"success\":true,\"notificationId\":\"n1\"}"}}
        },
        {
            "startedDateTime": "2025-03-01T10:00:03.000Z",
            "request": {"method": "GET", "url": "http://localhost:3000/app.js", "headers": []},
            "response": {"status": 200, "headers": [], "content": {"mimeType": "text/javascript", "text": "x"}}
        }
    ]}});
    let s = conformance::har::import(&har, "from-har").unwrap();
    let lines: Vec<Value> = s.steps.iter().map(|s| s.to_json()).collect();
    assert_eq!(s.header.actors.len(), 3, "{:?}", s.header.actors);
    assert_eq!(
        lines[0]["connect"],
        json!({"path": "/ws", "query": {"token": "abc"}})
    );
    assert_eq!(lines[1]["expect"]["clientId"], json!("$capture:clientId1"));
    assert_eq!(lines[2]["send"]["user"], json!("JohnDoe"));
    assert_eq!(lines[3]["expect"]["epoch"], json!("$capture:epoch1"));
    assert_eq!(lines[4]["connect"]["path"], json!("/events"));
    assert_eq!(
        lines[5]["expect_event"]["data"]["timestamp"],
        json!("$timestamp")
    );
    assert_eq!(lines[6]["send_raw"]["text"], json!("not json"));
    assert_eq!(lines[7]["expect"]["code"], json!("invalid_format"));
    assert_eq!(
        lines[8]["http"]["expect"]["body"]["notificationId"],
        json!("$capture:notificationId1")
    );
    assert_eq!(lines.len(), 9, "the script is not recorded: {lines:#?}");
    // What the importer writes parses back and matches the session schema.
    let text = s.to_jsonl();
    Session::parse(&text, Path::new("from-har.jsonl")).unwrap();
    let validator = session_schema();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(validator.is_valid(&v), "{line}");
    }
}
