//! Issue 15, connection edges: how connections end (abortive and lingering closes), SSE slow
//! consumers, HTTP timeouts and the cap on connections not yet admitted, and who may publish
//! (loopback trust, API key, Content-Type, cross-site origins). Every test runs the real binary
//! and talks to it over real sockets.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::Server;
use serde_json::Value;

/// Starts `herald serve --listen LISTEN ARGS...` (the common helper always listens on
/// 127.0.0.1). The address it reports is rewritten to 127.0.0.1 when it listens on every
/// interface, so the tests still connect over loopback.
fn server_listening_on(listen: &str, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", listen])
        .args(args)
        .env("HERALD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting herald");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reading the listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .replace("0.0.0.0:", "127.0.0.1:");
    Server { child, addr }
}

/// POSTs `body` with exactly the headers given (no Content-Type unless one is listed); returns
/// the status and the JSON answer.
async fn post_with(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("posting");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// Both publish endpoints with a valid body each.
const PUBLISH: [(&str, &str); 2] = [
    ("/notifications", r#"{"message":"hi"}"#),
    ("/updates", r#"{"resource":"r","action":"a"}"#),
];

// ---- 15.14: who may publish without an API key ----

#[tokio::test]
async fn publishing_without_a_key_is_refused_when_listening_beyond_loopback() {
    let server = server_listening_on("0.0.0.0:0", &[]);
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(&server.url(path), &[JSON], body).await;
        assert_eq!(
            status, 403,
            "{path} from loopback on a public listen: {answer}"
        );
        assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    }
}

#[tokio::test]
async fn publishing_with_the_key_is_accepted_when_listening_beyond_loopback() {
    let server = server_listening_on("0.0.0.0:0", &["--api-key", "edge-key"]);
    for (path, body) in PUBLISH {
        let (status, answer) =
            post_with(&server.url(path), &[JSON, ("x-api-key", "edge-key")], body).await;
        assert_eq!(status, 200, "{path} with the key: {answer}");
        let (status, _) = post_with(&server.url(path), &[JSON], body).await;
        assert_eq!(status, 401, "{path} without the key");
    }
}

#[tokio::test]
async fn behind_a_proxy_loopback_is_not_trusted_to_publish() {
    let server = Server::with(&["--behind-proxy"], &[]);
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(&server.url(path), &[JSON], body).await;
        assert_eq!(status, 403, "{path} behind a proxy without a key: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    }
    let server = Server::with(&["--behind-proxy", "--api-key", "edge-key"], &[]);
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(
            &server.url(path),
            &[JSON, ("authorization", "Bearer edge-key")],
            body,
        )
        .await;
        assert_eq!(status, 200, "{path} behind a proxy with the key: {answer}");
    }
}

#[tokio::test]
async fn loopback_trust_can_be_asked_for_explicitly() {
    let server = server_listening_on("0.0.0.0:0", &["--trust-loopback-publish"]);
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(&server.url(path), &[JSON], body).await;
        assert_eq!(status, 200, "{path} with loopback trusted: {answer}");
    }
    // On a loopback-only listen with no proxy, loopback stays trusted by default.
    let server = Server::start();
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(&server.url(path), &[JSON], body).await;
        assert_eq!(status, 200, "{path} on a loopback listen: {answer}");
    }
}

#[test]
fn trusting_loopback_behind_a_proxy_is_a_clear_start_up_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--behind-proxy",
            "--trust-loopback-publish",
        ])
        .env("HERALD_LOG", "warn")
        .output()
        .expect("running herald");
    assert!(!out.status.success(), "the contradiction must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("behind_proxy") && stderr.contains("trust_loopback_publish"),
        "the error names both settings: {stderr}"
    );
}

// ---- 15.15: cross-site posts ----

#[tokio::test]
async fn publishing_requires_a_json_content_type() {
    let server = Server::start();
    for (path, body) in PUBLISH {
        let (status, answer) = post_with(&server.url(path), &[], body).await;
        assert_eq!(status, 415, "{path} without Content-Type: {answer}");
        assert_eq!(answer["error"]["code"], "unsupported_media_type");
        for ct in ["text/plain", "application/x-www-form-urlencoded"] {
            let (status, answer) =
                post_with(&server.url(path), &[("content-type", ct)], body).await;
            assert_eq!(status, 415, "{path} with {ct}: {answer}");
            assert_eq!(answer["error"]["code"], "unsupported_media_type");
        }
        let (status, answer) = post_with(
            &server.url(path),
            &[("content-type", "application/json; charset=utf-8")],
            body,
        )
        .await;
        assert_eq!(status, 200, "{path} with JSON: {answer}");
    }
}

#[tokio::test]
async fn cross_origin_publishing_is_refused_unless_the_origin_is_allowed() {
    let server = Server::start();
    let same_origin = format!("http://{}", server.addr);
    for (path, body) in PUBLISH {
        let url = server.url(path);
        // A page on another site (no allowlist configured).
        for origin in ["https://evil.test", "null", "http://127.0.0.1:1"] {
            let (status, answer) = post_with(&url, &[JSON, ("origin", origin)], body).await;
            assert_eq!(status, 403, "{path} from {origin}: {answer}");
            assert_eq!(answer["error"]["code"], "origin_not_allowed", "{answer}");
        }
        // A page served by this server, and a client that sends no Origin at all.
        let (status, answer) = post_with(&url, &[JSON, ("origin", &same_origin)], body).await;
        assert_eq!(status, 200, "{path} same-origin: {answer}");
        let (status, answer) = post_with(&url, &[JSON], body).await;
        assert_eq!(status, 200, "{path} without Origin: {answer}");
    }
    // An origin the configuration allows may publish; others still may not.
    let server = Server::with(&["--allowed-origins", "https://app.example.test"], &[]);
    for (path, body) in PUBLISH {
        let url = server.url(path);
        let (status, answer) =
            post_with(&url, &[JSON, ("origin", "https://app.example.test")], body).await;
        assert_eq!(status, 200, "{path} from an allowed origin: {answer}");
        let (status, answer) =
            post_with(&url, &[JSON, ("origin", "https://evil.test")], body).await;
        assert_eq!(status, 403, "{path} from a foreign origin: {answer}");
        assert_eq!(answer["error"]["code"], "origin_not_allowed");
    }
}
