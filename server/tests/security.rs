//! Issue 7: authentication, authorization, origins and abuse limits, over real sockets against
//! the real binary, on both transports.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{post, Client, Events, Server};
use futures_util::SinkExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "test-secret-that-is-long-enough-for-hs256";
const QUIET: Duration = Duration::from_millis(300);

fn keys_dir() -> String {
    format!("{}/tests/keys", env!("CARGO_MANIFEST_DIR"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims valid for an hour, with `extra` merged in (a null removes a claim).
fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({"sub": sub, "exp": now() + 3600});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn hs256_with(secret: &str, claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn token(sub: &str, extra: Value) -> String {
    hs256_with(SECRET, &claims(sub, extra))
}

fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn auth_server(extra_env: &[(&str, &str)]) -> Server {
    let mut env = vec![("HERALD_JWT_SECRET", SECRET), ("HERALD_JWT_LEEWAY", "0")];
    env.extend_from_slice(extra_env);
    Server::with(&[], &env)
}

/// A raw WebSocket upgrade request; returns the status, the headers block and the body.
async fn raw_upgrade(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        server.addr
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tokio::time::timeout(common::WAIT, stream.read(&mut chunk))
            .await
            .expect("timed out reading the upgrade answer")
            .unwrap();
        assert!(n > 0, "connection closed before the answer");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    if status == 101 {
        return (status, head, Value::Null);
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    (status, head, body)
}

/// Asserts a pre-upgrade refusal with its status and JSON error code.
async fn assert_ws_refused(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
    code: &str,
) {
    let (got, head, body) = raw_upgrade(server, path, headers).await;
    assert_eq!(got, status, "{head}{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// Connects with extra request headers and reads the welcome.
async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Client {
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connecting");
    let mut c = Client {
        ws,
        client_id: String::new(),
    };
    let welcome = c.recv_type("welcome").await;
    c.client_id = welcome["clientId"].as_str().unwrap().to_owned();
    c
}

async fn connect_bearer(server: &Server, token: &str) -> Client {
    connect_with(
        &server.ws_url("/ws"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

async fn join(c: &mut Client, room: &str, user: Value) -> Value {
    c.send(json!({"type":"join","room":room,"user":user})).await;
    c.recv_type("room_joined").await
}

/// GET /events with headers; returns the status and the JSON body of a refusal.
async fn sse_status(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        return (status, Value::Null);
    }
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

// ---- tokens refused before the upgrade ----

#[tokio::test]
async fn bad_tokens_are_refused_with_401_before_the_upgrade_on_both_transports() {
    let server = auth_server(&[
        ("HERALD_JWT_AUDIENCE", "herald"),
        ("HERALD_JWT_ISSUER", "https://issuer.test"),
    ]);
    let good = json!({"aud":"herald","iss":"https://issuer.test"});
    let none_token = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims("mallory", good.clone()).to_string().as_bytes())
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("not.a.jwt".into())),
        (
            "forged signature",
            Some(hs256_with(
                "another-secret-of-decent-length!!",
                &claims("ann", good.clone()),
            )),
        ),
        ("alg none", Some(none_token)),
        (
            "expired",
            Some(token(
                "ann",
                json!({"aud":"herald","iss":"https://issuer.test","exp": now() - 120}),
            )),
        ),
        (
            "no exp",
            Some(token(
                "ann",
                json!({"aud":"herald","iss":"https://issuer.test","exp": null}),
            )),
        ),
        (
            "wrong audience",
            Some(token(
                "ann",
                json!({"aud":"other","iss":"https://issuer.test"}),
            )),
        ),
        (
            "no audience",
            Some(token("ann", json!({"iss":"https://issuer.test"}))),
        ),
        (
            "wrong issuer",
            Some(token(
                "ann",
                json!({"aud":"herald","iss":"https://evil.test"}),
            )),
        ),
        ("no issuer", Some(token("ann", json!({"aud":"herald"})))),
        (
            "no sub",
            Some(hs256_with(
                SECRET,
                &json!({"exp": now() + 60, "aud":"herald","iss":"https://issuer.test"}),
            )),
        ),
    ];
    for (what, token) in &cases {
        let header = token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = header
            .iter()
            .map(|h| ("authorization", h.as_str()))
            .collect();
        let (status, head, body) = raw_upgrade(&server, "/ws", &headers).await;
        assert_eq!(status, 401, "{what}: {head}");
        assert_eq!(body["success"], false, "{what}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
        let (status, body) = sse_status(&server.url("/events"), &headers).await;
        assert_eq!(status, 401, "{what} (sse)");
        assert_eq!(
            body["error"]["code"], "unauthorized",
            "{what} (sse): {body}"
        );
    }
    // The same claims, correctly signed, pass.
    let ok = token("ann", good);
    let (status, _, _) = raw_upgrade(
        &server,
        "/ws",
        &[("authorization", &format!("Bearer {ok}"))],
    )
    .await;
    assert_eq!(status, 101);
}

// ---- valid tokens, each way ----

#[tokio::test]
async fn a_valid_token_works_by_header_query_and_subprotocol() {
    let server = auth_server(&[]);
    let t = token("ann", json!({"name":"Ann"}));
    let ann = json!({"id":"ann","name":"Ann"});

    let mut by_header = connect_bearer(&server, &t).await;
    assert_eq!(
        join(&mut by_header, "a", json!("whoever")).await["users"],
        json!([ann])
    );

    let mut by_query = Client::connect(&server.ws_url(&format!("/ws?token={t}"))).await;
    assert_eq!(
        join(&mut by_query, "b", json!("whoever")).await["users"],
        json!([ann])
    );

    // A browser offers ["herald", "bearer.<token>"]; the 101 must name one of them.
    let mut request = server.ws_url("/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("herald, bearer.{t}")).unwrap(),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("subprotocol connect");
    assert_eq!(response.headers()["sec-websocket-protocol"], "herald");
    let mut by_protocol = Client {
        ws,
        client_id: String::new(),
    };
    by_protocol.recv_type("welcome").await;
    assert_eq!(
        join(&mut by_protocol, "c", json!("whoever")).await["users"],
        json!([ann])
    );

    // Only the bearer protocol offered: it is the one echoed.
    let (status, head, _) = raw_upgrade(
        &server,
        "/ws",
        &[("sec-websocket-protocol", &format!("bearer.{t}"))],
    )
    .await;
    assert_eq!(status, 101);
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("sec-websocket-protocol: bearer.{t}").to_ascii_lowercase()),
        "{head}"
    );

    // SSE: EventSource can only use the query parameter; a header works too.
    let mut stream = Events::open(&server.url(&format!("/events?token={t}"))).await;
    stream.next_named("connect").await;
    let (status, _) = sse_status(
        &server.url("/events"),
        &[("authorization", &format!("Bearer {t}"))],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_against_a_public_key_file() {
    for (alg, private, public) in [
        (Algorithm::RS256, "rsa-private.pem", "rsa-public.pem"),
        (Algorithm::ES256, "ec-private.pem", "ec-public.pem"),
    ] {
        let dir = keys_dir();
        let pem = std::fs::read(format!("{dir}/{private}")).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let server = Server::with(&["--jwt-public-key", &format!("{dir}/{public}")], &[]);
        let good = encode(&Header::new(alg), &claims("rita", json!({})), &key).unwrap();
        let mut c = connect_bearer(&server, &good).await;
        assert_eq!(
            join(&mut c, "r", json!("x")).await["users"],
            json!(["rita"])
        );
        // An HMAC token "signed" with the public key itself must not pass (key confusion).
        let public_pem = std::fs::read_to_string(format!("{dir}/{public}")).unwrap();
        let confused = hs256_with(&public_pem, &claims("rita", json!({})));
        assert_ws_refused(
            &server,
            "/ws",
            &[("authorization", &format!("Bearer {confused}"))],
            401,
            "unauthorized",
        )
        .await;
    }
}

// ---- identity comes from the token only ----

#[tokio::test]
async fn join_cannot_impersonate_and_others_see_the_token_identity() {
    let server = auth_server(&[]);
    let mut bob = connect_bearer(&server, &token("bob", json!({}))).await;
    join(&mut bob, "general", json!("bob")).await;
    let mut mallory = connect_bearer(&server, &token("mallory", json!({"name":"Mallory"}))).await;
    let joined = join(&mut mallory, "general", json!({"id":"bob","name":"Bob"})).await;
    let mallory_user = json!({"id":"mallory","name":"Mallory"});
    assert_eq!(joined["users"], json!(["bob", mallory_user]));
    let told = bob.recv_type("user_joined").await;
    assert_eq!(told["user"], mallory_user);
    mallory.send(json!({"type":"chat","text":"I am bob"})).await;
    assert_eq!(bob.recv_type("chat").await["user"], mallory_user);
    // A private message to "bob" reaches bob, from mallory.
    mallory
        .send(json!({"type":"private_message","target":"bob","text":"hi"}))
        .await;
    mallory.recv_type("chat").await;
    assert_eq!(bob.recv_type("private_message").await["from"], mallory_user);
}

#[tokio::test]
async fn sse_user_id_is_ignored_with_auth_and_the_token_sub_is_used() {
    let server = auth_server(&[]);
    let t = token("carol", json!({}));
    let mut stream = Events::open(&server.url(&format!("/events?token={t}&userId=dave"))).await;
    stream.next_named("connect").await;
    let (status, _) = post(
        &server.url("/notifications"),
        r#"{"userId":"dave","message":"for dave"}"#,
    )
    .await;
    assert_eq!(status, 200);
    stream.expect_silence(QUIET).await;
    post(
        &server.url("/notifications"),
        r#"{"userId":"carol","message":"for carol"}"#,
    )
    .await;
    let e = stream.next_named("notification").await;
    assert_eq!(e.data["message"], "for carol");
}

// ---- room authorization ----

#[tokio::test]
async fn a_forbidden_room_gets_forbidden_and_leaks_no_presence() {
    let server = auth_server(&[]);
    let mut insider = connect_bearer(&server, &token("insider", json!({}))).await; // no claim: any room
    join(&mut insider, "secret", json!("x")).await;
    let limited = token("guest", json!({"rooms":["general","team-*"]}));
    let mut guest = connect_bearer(&server, &limited).await;
    join(&mut guest, "team-red", json!("x")).await;
    guest
        .send(json!({"type":"join","room":"secret","user":"x"}))
        .await;
    let err = guest.recv_type("error").await;
    assert_eq!(err["code"], "forbidden");
    guest.expect_silence(QUIET).await; // no room_joined, no member list
    insider.expect_silence(QUIET).await; // no user_joined
                                         // The refused join left the guest where it was.
    guest.send(json!({"type":"chat","text":"still here"})).await;
    assert_eq!(guest.recv_type("chat").await["room"], "team-red");
    guest
        .send(json!({"type":"join","room":"general","user":"x"}))
        .await;
    assert_eq!(guest.recv_type("room_left").await["room"], "team-red");
    assert_eq!(guest.recv_type("room_joined").await["room"], "general");
}

#[tokio::test]
async fn the_rooms_claim_also_grants_documents_and_streams() {
    let server = auth_server(&[]);
    let created = reqwest::Client::new()
        .post(server.url("/streams"))
        .header("content-type", "application/json")
        .body(r#"{"id":"metrics"}"#)
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let limited = token("guest", json!({"rooms":["general","doc:notes-*"]}));
    let mut guest = connect_bearer(&server, &limited).await;
    guest
        .send(json!({"type":"doc_open","doc":"secret-plans"}))
        .await;
    let err = guest.recv_type("doc_error").await;
    assert_eq!(err["code"], "forbidden");
    guest.send(json!({"type":"doc_open","doc":"notes-1"})).await;
    assert_eq!(guest.recv_type("doc_opened").await["doc"], "notes-1");
    guest
        .send(json!({"type":"stream_subscribe","stream":"metrics"}))
        .await;
    let err = guest.recv_type("error").await;
    assert_eq!(err["code"], "forbidden");
    // The same token over SSE: 403 before any stream opens.
    let sse = reqwest::Client::new()
        .get(server.url(&format!("/events?stream=metrics&token={limited}")))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 403);
    let body: Value = sse.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    let mut insider = connect_bearer(&server, &token("insider", json!({}))).await; // no claim: all
    insider
        .send(json!({"type":"stream_subscribe","stream":"metrics"}))
        .await;
    assert_eq!(
        insider.recv_type("stream_subscribed").await["stream"],
        "metrics"
    );
}

// ---- token expiry ----

#[tokio::test]
async fn a_token_expiring_mid_connection_closes_with_4001_and_ends_the_stream() {
    let server = auth_server(&[]);
    let t = token("eve", json!({"exp": now() + 2}));
    let mut c = connect_bearer(&server, &t).await;
    let mut stream = Events::open(&server.url(&format!("/events?token={t}"))).await;
    stream.next_named("connect").await;
    // The close is the next frame (`expect_close` gives up after 5 s without one, a hang guard:
    // the token expires within 2 s).
    let (code, reason) = c.expect_close().await;
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    // The SSE stream ends too.
    // `Events::next` panics when the stream ends; run it in a task to observe that.
    let task = tokio::spawn(async move {
        loop {
            stream.next().await;
        }
    });
    // Already expired, so the end is due at once; the timeout is a hang guard.
    let result = tokio::time::timeout(common::WAIT, task).await;
    assert!(
        matches!(result, Ok(Err(ref e)) if e.is_panic()),
        "the SSE stream should have ended"
    );
}

// ---- origins ----

#[tokio::test]
async fn foreign_origins_are_refused_for_websocket_and_sse() {
    let server = Server::with(
        &[],
        &[(
            "HERALD_ALLOWED_ORIGINS",
            "https://app.example.test, http://localhost:3000",
        )],
    );
    assert_ws_refused(
        &server,
        "/ws",
        &[("origin", "https://evil.test")],
        403,
        "origin_not_allowed",
    )
    .await;
    let (status, body) =
        sse_status(&server.url("/events"), &[("origin", "https://evil.test")]).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    // Allowed and absent origins work.
    connect_with(
        &server.ws_url("/ws"),
        &[("origin", "https://app.example.test")],
    )
    .await;
    server.client().await;
    let response = reqwest::Client::new()
        .get(server.url("/events"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let (status, _) = sse_status(&server.url("/events"), &[]).await;
    assert_eq!(status, 200);
    // CORS answers never echo a refused origin.
    let response = reqwest::Client::new()
        .get(server.url("/healthz"))
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

// ---- abuse ----

#[tokio::test]
async fn a_connection_flood_from_one_address_gets_429() {
    // One attempt a minute after the burst of 5: however slowly this machine makes the first
    // five connections, no new attempt is allowed before the refusals below (at 60 a minute, a
    // setup taking over a second could let the sixth through).
    let server = Server::with(
        &["--rate-limit-loopback"],
        &[("HERALD_CONNECT_RATE", "1"), ("HERALD_CONNECT_BURST", "5")],
    );
    let mut kept = Vec::new();
    for _ in 0..5 {
        kept.push(server.client().await);
    }
    assert_ws_refused(&server, "/ws", &[], 429, "rate_limited").await;
    let (status, body) = sse_status(&server.url("/events"), &[]).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limited");
    // Plain HTTP is not a connection attempt.
    let (status, _) = post(&server.url("/updates"), r#"{"resource":"r","action":"a"}"#).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn loopback_is_exempt_from_the_connection_rate_by_default() {
    // One a minute after a burst of 2: six connections get in only because loopback is exempt,
    // not because the bucket refilled while a slow machine made them.
    let server = Server::with(
        &[],
        &[("HERALD_CONNECT_RATE", "1"), ("HERALD_CONNECT_BURST", "2")],
    );
    for _ in 0..6 {
        server.client().await;
    }
}

#[tokio::test]
async fn a_message_flood_is_refused_then_closed_while_the_room_carries_on() {
    let server = Server::with(
        &[],
        &[("HERALD_MESSAGE_RATE", "5"), ("HERALD_MESSAGE_BURST", "5")],
    );
    let mut flooder = server.joined("room", json!("flood")).await;
    let mut a = server.joined("room", json!("ann")).await;
    let mut b = server.joined("room", json!("bob")).await;
    flooder.recv_type("user_joined").await;
    flooder.recv_type("user_joined").await;
    a.recv_type("user_joined").await;
    for i in 0..200 {
        if flooder
            .ws
            .feed(Message::text(
                json!({"type":"chat","text":format!("spam {i}")}).to_string(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = flooder.ws.flush().await;
    let mut limited = 0;
    let code = loop {
        let msg =
            tokio::time::timeout(common::WAIT, futures_util::StreamExt::next(&mut flooder.ws))
                .await
                .expect("flooder should be answered");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "error" {
                    assert_eq!(v["code"], "rate_limited");
                    limited += 1;
                }
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                break (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, (1008, "rate limited".to_owned()));
    assert!(limited > 0, "the flooder got rate_limited errors first");
    // Ann saw at most the burst plus what refilled (5 a second) between the first and the last
    // spam that got through, then the flood's end. The refill is read off the server's own
    // timestamps on those chats, so a slow machine cannot make the bound wrong.
    let mut stamps = Vec::new();
    loop {
        let v = a.recv().await;
        match v["type"].as_str() {
            Some("chat") => stamps.push(
                humantime::parse_rfc3339(v["timestamp"].as_str().unwrap()).expect("timestamp"),
            ),
            Some("user_left") => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let spam = stamps.len() as u64;
    assert!(spam > 0, "the burst gets through");
    let span = stamps[spam as usize - 1]
        .duration_since(stamps[0])
        .unwrap_or_default();
    // 5 for the burst, 5 a second after the first, and one for the millisecond timestamps.
    let allowed = 5 + (span.as_millis() as u64 * 5).div_ceil(1000) + 1;
    assert!(
        spam <= allowed,
        "{spam} spam messages got through in {span:?} (allowed {allowed})"
    );
    // The room carries on: Bob's chat reaches both members (and is the next thing Ann gets).
    b.send(json!({"type":"chat","text":"still here"})).await;
    loop {
        let v = b.recv().await;
        if v["type"] == "chat" && v["text"] == "still here" {
            break;
        }
    }
    let at_a = loop {
        let v = a.recv().await;
        if v["type"] == "chat" {
            break v;
        }
    };
    assert_eq!(at_a["text"], "still here");
}

#[tokio::test]
async fn the_connection_cap_answers_503() {
    let server = Server::with(&["--max-connections", "2"], &[]);
    let _a = server.client().await;
    let _s = Events::open(&server.url("/events")).await;
    assert_ws_refused(&server, "/ws", &[], 503, "overloaded").await;
    let (status, body) = sse_status(&server.url("/events"), &[]).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "overloaded");
    // A closed connection frees its place.
    drop(_a);
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (status, _, _) = raw_upgrade(&server, "/ws", &[]).await;
        if status == 101 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn connections_per_user_are_capped() {
    // With a token: refused before the upgrade.
    let server = auth_server(&[("HERALD_MAX_CONNECTIONS_PER_USER", "2")]);
    let t = token("ann", json!({}));
    let _one = connect_bearer(&server, &t).await;
    let _two = Events::open(&server.url(&format!("/events?token={t}"))).await;
    assert_ws_refused(
        &server,
        "/ws",
        &[("authorization", &format!("Bearer {t}"))],
        429,
        "rate_limited",
    )
    .await;
    connect_bearer(&server, &token("bob", json!({}))).await;
    // Without: the join is refused.
    let server = Server::with(&[], &[("HERALD_MAX_CONNECTIONS_PER_USER", "2")]);
    let _a = server.joined("r", json!("ann")).await;
    let _b = server.joined("s", json!({"id":"ann","name":"Ann"})).await;
    let mut third = server.client().await;
    third
        .send(json!({"type":"join","room":"r","user":"ann"}))
        .await;
    assert_eq!(third.recv_type("error").await["code"], "forbidden");
    third.expect_silence(QUIET).await;
}

// ---- the publish API ----

#[tokio::test]
async fn the_api_key_is_required_when_configured() {
    let server = Server::with(&["--api-key", "s3cret-key"], &[]);
    let url = server.url("/notifications");
    let (status, body) = post(&url, r#"{"message":"hi"}"#).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    for (name, value) in [("x-api-key", "wrong"), ("authorization", "Bearer wrong")] {
        let r = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header(name, value)
            .body(r#"{"message":"hi"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    for (path, body) in [
        ("/notifications", r#"{"message":"hi"}"#),
        ("/updates", r#"{"resource":"r","action":"a"}"#),
    ] {
        for (name, value) in [
            ("x-api-key", "s3cret-key"),
            ("authorization", "Bearer s3cret-key"),
        ] {
            let r = reqwest::Client::new()
                .post(server.url(path))
                .header("content-type", "application/json")
                .header(name, value)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path} with {name}");
        }
    }
    let (status, _) = post(&server.url("/updates"), r#"{"resource":"r","action":"a"}"#).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn without_a_key_loopback_publishers_are_accepted_and_proxied_ones_are_not() {
    let server = Server::start();
    let (status, _) = post(&server.url("/notifications"), r#"{"message":"hi"}"#).await;
    assert_eq!(status, 200);
    let r = reqwest::Client::new()
        .post(server.url("/updates"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", "203.0.113.7")
        .body(r#"{"resource":"r","action":"a"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
}

#[tokio::test]
async fn without_auth_everything_works_as_before() {
    let server = Server::start();
    let mut a = server.joined("general", json!("Ann")).await;
    // A token is ignored when authentication is off (subprotocol still echoed for browsers).
    let (status, head, _) = raw_upgrade(
        &server,
        "/ws",
        &[("sec-websocket-protocol", "bearer.x.y.z")],
    )
    .await;
    assert_eq!(status, 101);
    assert!(head
        .to_ascii_lowercase()
        .contains("sec-websocket-protocol: bearer.x.y.z"));
    let mut b = server.joined("general", json!("Bob")).await;
    assert_eq!(a.recv_type("user_joined").await["user"], "Bob");
    b.send(json!({"type":"chat","text":"hi"})).await;
    assert_eq!(a.recv_type("chat").await["user"], "Bob");
    let mut stream = Events::open(&server.url("/events?userId=Ann")).await;
    stream.next_named("connect").await;
    post(
        &server.url("/notifications"),
        r#"{"userId":"Ann","message":"m"}"#,
    )
    .await;
    assert_eq!(stream.next_named("notification").await.data["message"], "m");
}
