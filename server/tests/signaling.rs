//! Issue 19: WebRTC signaling between members of one room, over real sockets against the real
//! binary: relay with the sender stamped, order per pair, forged senders, other rooms and gone
//! peers refused, size caps, ICE servers and TURN credentials (the HMAC checked with openssl),
//! and a pair on two nodes sharing Redis.

mod common;

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::cluster::{node_on, prefix, REDIS};
use common::{Client, Server};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const TURN_SECRET: &str = "turn-shared-secret-for-tests";
const ICE: &str = "stun:stun.example.test:3478,turn:turn.example.test:3478?transport=udp";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A server with ICE servers and a TURN secret (lifetime 10 minutes), messages unlimited.
fn server() -> Server {
    Server::with(
        &[
            "--ice-servers",
            ICE,
            "--turn-secret",
            TURN_SECRET,
            "--turn-ttl",
            "10m",
        ],
        &[("HERALD_MESSAGE_RATE", "0")],
    )
}

/// Sends `ping` and returns every frame that arrives before its `pong`: what the server had
/// queued for this client when the ping arrived.
async fn drain(client: &mut Client) -> Vec<Value> {
    client.send(json!({"type":"ping"})).await;
    let mut frames = Vec::new();
    loop {
        let frame = client.recv().await;
        if frame["type"] == "pong" {
            return frames;
        }
        frames.push(frame);
    }
}

/// Waits for the next frame of type `kind`, skipping presence frames on the way.
async fn recv_skipping_presence(client: &mut Client, kind: &str) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"] == "user_joined" || frame["type"] == "user_left" {
            continue;
        }
        assert_eq!(frame["type"], kind, "expected {kind}, got {frame}");
        return frame;
    }
}

/// Base64 of HMAC-SHA1(key, message), computed by openssl: an implementation that is not
/// the server's.
fn openssl_hmac_sha1(key: &str, message: &str) -> Option<String> {
    use std::io::Write;
    let mut dgst = Command::new("openssl")
        .args(["dgst", "-sha1", "-hmac", key, "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    dgst.stdin.take()?.write_all(message.as_bytes()).ok()?;
    let raw = dgst.wait_with_output().ok()?;
    let mut b64 = Command::new("openssl")
        .args(["base64", "-A"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    b64.stdin.take()?.write_all(&raw.stdout).ok()?;
    let out = b64.wait_with_output().ok()?;
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}

fn polite(me: &str, other: &str) -> bool {
    me.as_bytes() < other.as_bytes()
}

#[tokio::test]
async fn signals_reach_one_member_of_the_room_stamped_with_the_sender() {
    let s = server();
    let mut ann = s.joined("call", json!("ann")).await;
    let mut bob = s
        .joined("call", json!({"id":"bob","name":"Bob","badge":1}))
        .await;
    let mut cat = s.joined("call", json!("cat")).await;
    drain(&mut ann).await;
    drain(&mut bob).await;
    drain(&mut cat).await;

    // Peers: every other member with its peer id and this side's role, and the ICE servers.
    ann.send(json!({"type":"peers"})).await;
    let peers = ann.recv_type("peers").await;
    assert_eq!(peers["room"], "call");
    let list = peers["peers"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{peers}");
    assert_eq!(list[0]["peerId"], bob.client_id.as_str());
    assert_eq!(list[0]["user"], json!({"id":"bob","name":"Bob","badge":1}));
    assert_eq!(list[0]["polite"], polite(&ann.client_id, &bob.client_id));
    assert_eq!(list[1]["peerId"], cat.client_id.as_str());
    // Without authentication anyone may claim any user: STUN only, no TURN credentials.
    assert_eq!(
        peers["iceServers"],
        json!([{"urls":["stun:stun.example.test:3478"]}])
    );

    // Offer, answer, candidates, end of candidates, hangup: each to bob only, from ann.
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n";
    ann.send(json!({"type":"offer","to":bob.client_id,"sdp":sdp}))
        .await;
    let offer = bob.recv_type("offer").await;
    let bob_polite = polite(&bob.client_id, &ann.client_id);
    assert_eq!(
        offer,
        json!({"type":"offer","from":ann.client_id,"user":"ann","sdp":sdp,"polite":bob_polite})
    );
    bob.send(json!({"type":"answer","to":ann.client_id,"sdp":"v=0\r\n"}))
        .await;
    let answer = ann.recv_type("answer").await;
    assert_eq!(
        answer,
        json!({"type":"answer","from":bob.client_id,"sdp":"v=0\r\n","polite":!bob_polite})
    );
    let candidate = json!({"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
                           "sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"});
    ann.send(json!({"type":"ice_candidate","to":bob.client_id,"candidate":candidate}))
        .await;
    ann.send(json!({"type":"ice_candidate","to":bob.client_id,"candidate":null}))
        .await;
    ann.send(json!({"type":"hangup","to":bob.client_id})).await;
    let got = bob.recv_type("ice_candidate").await;
    assert_eq!(
        got,
        json!({"type":"ice_candidate","from":ann.client_id,"candidate":candidate,"polite":bob_polite})
    );
    let end = bob.recv_type("ice_candidate").await;
    assert_eq!(end["candidate"], Value::Null, "end of candidates: {end}");
    assert_eq!(
        bob.recv_type("hangup").await,
        json!({"type":"hangup","from":ann.client_id,"polite":bob_polite})
    );
    // Browsers write `"sdpMid": null`; it is accepted as absent.
    ann.send(json!({"type":"ice_candidate","to":bob.client_id,
                    "candidate":{"candidate":"","sdpMid":null,"sdpMLineIndex":null}}))
        .await;
    let generation_end = bob.recv_type("ice_candidate").await;
    assert_eq!(generation_end["candidate"], json!({"candidate":""}));

    // Never broadcast: cat and ann got nothing else, bob nothing more.
    assert_eq!(drain(&mut cat).await, Vec::<Value>::new());
    assert_eq!(drain(&mut ann).await, Vec::<Value>::new());
    assert_eq!(drain(&mut bob).await, Vec::<Value>::new());
}

#[tokio::test]
async fn welcome_announces_signaling() {
    use futures_util::StreamExt;
    let s = server();
    let mut raw = tokio_tungstenite::connect_async(s.ws_url("/ws"))
        .await
        .unwrap()
        .0;
    let welcome = raw.next().await.unwrap().unwrap();
    let welcome: Value = serde_json::from_str(welcome.to_text().unwrap()).unwrap();
    let names: Vec<&str> = welcome["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(names.contains(&"signaling"), "{welcome}");
}

#[tokio::test]
async fn signals_between_a_pair_keep_their_order() {
    let s = server();
    let mut ann = s.joined("order", json!("ann")).await;
    let mut bob = s.joined("order", json!("bob")).await;
    drain(&mut ann).await;
    for i in 0..200 {
        let candidate =
            json!({"candidate": format!("candidate:{i} 1 udp 1 127.0.0.1 {} typ host", 40000 + i)});
        ann.send(json!({"type":"ice_candidate","to":bob.client_id,"candidate":candidate}))
            .await;
    }
    for i in 0..200 {
        let got = bob.recv_type("ice_candidate").await;
        let line = got["candidate"]["candidate"].as_str().unwrap().to_owned();
        assert!(
            line.starts_with(&format!("candidate:{i} ")),
            "candidate {i} arrived as {line}"
        );
    }
    assert_eq!(drain(&mut bob).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_forged_sender_is_refused_and_the_stamp_is_the_connection() {
    let s = server();
    let mut ann = s.joined("forge", json!("ann")).await;
    let mut bob = s.joined("forge", json!("bob")).await;
    let mut cat = s.joined("forge", json!("cat")).await;
    drain(&mut ann).await;
    drain(&mut bob).await;
    // A `from` is not the client's to give: the frame breaks the schema and goes nowhere.
    ann.send(json!({"type":"offer","to":bob.client_id,"from":cat.client_id,"sdp":"v=0"}))
        .await;
    let refused = ann.recv_type("error").await;
    assert_eq!(refused["code"], "invalid_message", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("from"),
        "{refused}"
    );
    // Signalling oneself is refused too.
    ann.send(json!({"type":"hangup","to":ann.client_id})).await;
    assert_eq!(ann.recv_type("error").await["code"], "peer_not_found");
    // Whatever ann's user claims, the relayed `from` is ann's connection.
    ann.send(json!({"type":"join","room":"forge","user":"cat"}))
        .await;
    let rejoined: Vec<Value> = drain(&mut ann).await;
    assert!(rejoined.iter().any(|f| f["type"] == "room_joined"));
    ann.send(json!({"type":"answer","to":bob.client_id,"sdp":"v=0"}))
        .await;
    let answer = recv_skipping_presence(&mut bob, "answer").await;
    assert_eq!(answer["from"], ann.client_id.as_str());
    assert_ne!(answer["from"], cat.client_id.as_str());
    assert_eq!(drain(&mut bob).await, Vec::<Value>::new());
    let to_cat: Vec<Value> = drain(&mut cat).await;
    assert!(
        to_cat
            .iter()
            .all(|f| f["type"] != "answer" && f["type"] != "offer"),
        "{to_cat:?}"
    );
}

#[tokio::test]
async fn other_rooms_and_gone_peers_are_refused() {
    let s = server();
    let mut ann = s.joined("here", json!("ann")).await;
    let mut bob = s.joined("here", json!("bob")).await;
    let mut dan = s.joined("elsewhere", json!("dan")).await;
    drain(&mut ann).await;

    // Another room's member.
    ann.send(json!({"type":"offer","to":dan.client_id,"sdp":"v=0"}))
        .await;
    let refused = ann.recv_type("error").await;
    assert_eq!(refused["code"], "peer_not_found", "{refused}");
    assert_eq!(drain(&mut dan).await, Vec::<Value>::new());
    // A peer id nobody has.
    ann.send(json!({"type":"hangup","to":"nobody123"})).await;
    assert_eq!(ann.recv_type("error").await["code"], "peer_not_found");
    // Not in a room at all.
    let mut eve = s.client().await;
    eve.send(json!({"type":"offer","to":ann.client_id,"sdp":"v=0"}))
        .await;
    let refused = eve.recv_type("error").await;
    assert_eq!(refused["code"], "not_in_room");
    eve.send(json!({"type":"peers"})).await;
    assert_eq!(eve.recv_type("error").await["code"], "not_in_room");

    // A member that left the room.
    bob.send(json!({"type":"leave"})).await;
    bob.recv_type("room_left").await;
    assert_eq!(ann.recv_type("user_left").await["user"], "bob");
    ann.send(json!({"type":"offer","to":bob.client_id,"sdp":"v=0"}))
        .await;
    assert_eq!(ann.recv_type("error").await["code"], "peer_not_found");
    assert_eq!(drain(&mut bob).await, Vec::<Value>::new());
    // A member that closed its connection.
    dan.send(json!({"type":"join","room":"here","user":"dan"}))
        .await;
    assert_eq!(
        recv_skipping_presence(&mut dan, "room_left").await["room"],
        "elsewhere"
    );
    dan.recv_type("room_joined").await;
    assert_eq!(ann.recv_type("user_joined").await["user"], "dan");
    let dan_id = dan.client_id.clone();
    drop(dan);
    assert_eq!(ann.recv_type("user_left").await["user"], "dan");
    ann.send(json!({"type":"answer","to":dan_id,"sdp":"v=0"}))
        .await;
    assert_eq!(ann.recv_type("error").await["code"], "peer_not_found");
    // And the roster no longer lists either.
    ann.send(json!({"type":"peers"})).await;
    assert_eq!(ann.recv_type("peers").await["peers"], json!([]));
}

#[tokio::test]
async fn oversized_or_malformed_signals_are_refused_with_the_field() {
    let s = server();
    let mut ann = s.joined("caps", json!("ann")).await;
    let mut bob = s.joined("caps", json!("bob")).await;
    drain(&mut ann).await;
    // 32 KiB of SDP passes, one character more does not.
    let max = "a".repeat(32 * 1024);
    ann.send(json!({"type":"offer","to":bob.client_id,"sdp":max}))
        .await;
    assert_eq!(
        bob.recv_type("offer").await["sdp"].as_str().unwrap().len(),
        32 * 1024
    );
    let over = "a".repeat(32 * 1024 + 1);
    ann.send(json!({"type":"offer","to":bob.client_id,"sdp":over}))
        .await;
    let refused = ann.recv_type("error").await;
    assert_eq!(refused["code"], "invalid_message");
    assert!(
        refused["message"].as_str().unwrap().contains("/sdp"),
        "{refused}"
    );
    for (bad, field) in [
        (json!({"type":"offer","to":"a b","sdp":"v=0"}), "/to"),
        (json!({"type":"offer","sdp":"v=0"}), "to"),
        (
            json!({"type":"ice_candidate","to":bob.client_id}),
            "candidate",
        ),
        (
            json!({"type":"ice_candidate","to":bob.client_id,"candidate":{"candidate":"x".repeat(1025)}}),
            "/candidate",
        ),
        (
            json!({"type":"hangup","to":bob.client_id,"reason":"x"}),
            "reason",
        ),
    ] {
        ann.send(bad.clone()).await;
        let refused = ann.recv_type("error").await;
        assert_eq!(refused["code"], "invalid_message", "{bad}: {refused}");
        assert!(
            refused["message"].as_str().unwrap().contains(field),
            "{bad}: {refused}"
        );
    }
    assert_eq!(drain(&mut bob).await, Vec::<Value>::new());
}

#[tokio::test]
async fn turn_credentials_follow_the_rest_scheme() {
    let s = server();
    let url = s.url("/turn-credentials?userId=alice");
    let before = now();
    let response = reqwest::get(&url).await.unwrap();
    let after = now();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ttl"], 600);
    assert_eq!(
        body["urls"],
        json!(["turn:turn.example.test:3478?transport=udp"])
    );
    let username = body["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice");
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (before + 600..=after + 600).contains(&expiry),
        "expiry {expiry} is not now + ttl"
    );
    match openssl_hmac_sha1(TURN_SECRET, username) {
        Some(expected) => assert_eq!(body["credential"], expected.as_str()),
        None => common::skip(
            "turn_credentials_follow_the_rest_scheme",
            "openssl is missing: the HMAC cannot be checked independently",
        ),
    }
    // The user is required.
    let missing = reqwest::get(s.url("/turn-credentials")).await.unwrap();
    assert_eq!(missing.status(), 400);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    // POST is not a method of the path.
    let post = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(post.status(), 405);

    // Without a TURN secret there is nothing to hand out.
    let plain = Server::start();
    let none = reqwest::get(plain.url("/turn-credentials?userId=alice"))
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
}

#[tokio::test]
async fn turn_credentials_need_the_api_key_or_a_token() {
    // Without authentication: the publish gate (here an API key).
    let s = Server::with(
        &[
            "--ice-servers",
            ICE,
            "--turn-secret",
            TURN_SECRET,
            "--api-key",
            "k-123",
        ],
        &[],
    );
    let url = s.url("/turn-credentials?userId=alice");
    let refused = reqwest::get(&url).await.unwrap();
    assert_eq!(refused.status(), 401);
    let allowed = reqwest::Client::new()
        .get(&url)
        .header("x-api-key", "k-123")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);

    // With tokens: the token's user, whatever the query says.
    const SECRET: &str = "signaling-test-secret-long-enough-for-hs256";
    let s = Server::with(
        &["--ice-servers", ICE, "--turn-secret", TURN_SECRET],
        &[("HERALD_JWT_SECRET", SECRET)],
    );
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub":"ann","exp":now() + 3600}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let url = s.url("/turn-credentials?userId=mallory");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 401);
    let forged = reqwest::Client::new()
        .get(&url)
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let body: Value = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        body["username"].as_str().unwrap().ends_with(":ann"),
        "{body}"
    );
}

#[tokio::test]
async fn with_tokens_signals_stay_within_the_rooms_a_token_allows() {
    const SECRET: &str = "signaling-test-secret-long-enough-for-hs256";
    let s = Server::with(
        &["--ice-servers", ICE, "--turn-secret", TURN_SECRET],
        &[("HERALD_JWT_SECRET", SECRET)],
    );
    let token = |sub: &str, rooms: Value| {
        encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub":sub,"exp":now() + 3600,"rooms":rooms}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let connect = |t: String| {
        let url = format!("{}?token={t}", s.ws_url("/ws"));
        async move { Client::connect(&url).await }
    };
    let mut ann = connect(token("ann", json!(["team-*"]))).await;
    let mut bob = connect(token("bob", json!(["private"]))).await;
    bob.send(json!({"type":"join","room":"private","user":"x"}))
        .await;
    bob.recv_type("room_joined").await;
    // ann may not enter bob's room, so she cannot reach him from hers.
    ann.send(json!({"type":"join","room":"private","user":"x"}))
        .await;
    assert_eq!(ann.recv_type("error").await["code"], "forbidden");
    ann.send(json!({"type":"offer","to":bob.client_id,"sdp":"v=0"}))
        .await;
    assert_eq!(ann.recv_type("error").await["code"], "not_in_room");
    ann.send(json!({"type":"join","room":"team-a","user":"x"}))
        .await;
    ann.recv_type("room_joined").await;
    // A token vouches for the user: `peers` carries TURN credentials for it.
    ann.send(json!({"type":"peers"})).await;
    let peers = ann.recv_type("peers").await;
    assert_eq!(peers["peers"], json!([]), "bob is in another room");
    let servers = peers["iceServers"].as_array().unwrap();
    assert_eq!(servers[0], json!({"urls":["stun:stun.example.test:3478"]}));
    assert_eq!(
        servers[1]["urls"],
        json!(["turn:turn.example.test:3478?transport=udp"])
    );
    let username = servers[1]["username"].as_str().unwrap();
    assert!(username.ends_with(":ann"), "{username}");
    match openssl_hmac_sha1(TURN_SECRET, username) {
        Some(expected) => assert_eq!(servers[1]["credential"], expected.as_str()),
        None => common::skip(
            "with_tokens_signals_stay_within_the_rooms_a_token_allows",
            "openssl is missing: the HMAC cannot be checked independently",
        ),
    }
    ann.send(json!({"type":"offer","to":bob.client_id,"sdp":"v=0"}))
        .await;
    assert_eq!(ann.recv_type("error").await["code"], "peer_not_found");
    assert_eq!(drain(&mut bob).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_pair_on_two_nodes_signals_in_order_through_redis() {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        common::skip(
            "a_pair_on_two_nodes_signals_in_order_through_redis",
            "no Redis on 127.0.0.1:6379",
        );
        return;
    }
    let p = prefix();
    let a = node_on(REDIS, &p, &[]);
    let b = node_on(REDIS, &p, &[]);
    let mut ann = a.joined("x-call", json!("ann")).await;
    let mut bob = b.joined("x-call", json!("bob")).await;
    let mut dan = b.joined("x-other", json!("dan")).await;
    assert_eq!(ann.recv_type("user_joined").await["user"], "bob");

    // The roster spans the nodes.
    ann.send(json!({"type":"peers"})).await;
    let peers = ann.recv_type("peers").await;
    assert_eq!(
        peers["peers"],
        json!([{"peerId":bob.client_id,"user":"bob","polite":polite(&ann.client_id, &bob.client_id)}])
    );
    bob.send(json!({"type":"peers"})).await;
    let peers = bob.recv_type("peers").await;
    assert_eq!(peers["peers"][0]["peerId"], ann.client_id.as_str());

    // Offer one way, answer the other, then a run of candidates in order.
    ann.send(json!({"type":"offer","to":bob.client_id,"sdp":"v=0\r\n"}))
        .await;
    let offer = bob.recv_type("offer").await;
    assert_eq!(offer["from"], ann.client_id.as_str());
    assert_eq!(offer["polite"], polite(&bob.client_id, &ann.client_id));
    bob.send(json!({"type":"answer","to":ann.client_id,"sdp":"v=0\r\n"}))
        .await;
    assert_eq!(
        ann.recv_type("answer").await["from"],
        bob.client_id.as_str()
    );
    for i in 0..100 {
        ann.send(json!({"type":"ice_candidate","to":bob.client_id,
                        "candidate":{"candidate":format!("candidate:{i} 1 udp 1 127.0.0.1 9 typ host")}}))
            .await;
    }
    ann.send(json!({"type":"ice_candidate","to":bob.client_id,"candidate":null}))
        .await;
    for i in 0..100 {
        let got = bob.recv_type("ice_candidate").await;
        let line = got["candidate"]["candidate"].as_str().unwrap().to_owned();
        assert!(line.starts_with(&format!("candidate:{i} ")), "{i}: {line}");
    }
    assert_eq!(
        bob.recv_type("ice_candidate").await["candidate"],
        Value::Null
    );

    // Another room on the other node is out of reach, and so is a peer that closed.
    ann.send(json!({"type":"offer","to":dan.client_id,"sdp":"v=0"}))
        .await;
    assert_eq!(ann.recv_type("error").await["code"], "peer_not_found");
    assert_eq!(drain(&mut dan).await, Vec::<Value>::new());
    let bob_id = bob.client_id.clone();
    drop(bob);
    assert_eq!(ann.recv_type("user_left").await["user"], "bob");
    ann.send(json!({"type":"hangup","to":bob_id})).await;
    assert_eq!(ann.recv_type("error").await["code"], "peer_not_found");
}

/// `HGETALL` of a Redis hash on the machine's Redis, as field → value pairs.
fn redis_hash(key: &str) -> Vec<(String, String)> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "--raw", "HGETALL", key])
        .output()
        .expect("redis-cli is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .filter_map(|p| match p {
            [k, v] => Some(((*k).to_owned(), (*v).to_owned())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_peer_on_a_killed_node_is_out_of_reach_and_forgotten() {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        common::skip(
            "a_peer_on_a_killed_node_is_out_of_reach_and_forgotten",
            "no Redis on 127.0.0.1:6379",
        );
        return;
    }
    let p = prefix();
    let a = node_on(REDIS, &p, &["--presence-ttl", "2s"]);
    let mut doomed = node_on(REDIS, &p, &["--presence-ttl", "2s"]);
    let mut ann = a.joined("k-call", json!("ann")).await;
    let ghost = doomed.joined("k-call", json!("ghost")).await;
    assert_eq!(ann.recv_type("user_joined").await["user"], "ghost");
    // Redis knows which member each session id is, for the two nodes.
    let peers = redis_hash(&format!("{p}:room:k-call:peers"));
    let ids: Vec<&str> = peers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(peers.len(), 2, "{peers:?}");
    assert!(ids.contains(&ann.client_id.as_str()) && ids.contains(&ghost.client_id.as_str()));
    assert!(
        peers.iter().all(|(k, v)| v.ends_with(&format!("/{k}"))),
        "{peers:?}"
    );

    // SIGKILL: no goodbye. Once the reaper has told the room, the ghost is unreachable and
    // no longer in the session index.
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    // The 20 s limit is a hang guard far above the 2 s TTL, not a measurement.
    let left = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(20), ann.recv()).await {
            Ok(frame) if frame["type"] == "user_left" => break frame,
            Ok(_) => continue,
            Err(_) => panic!("no user_left within 20 s of the kill (presence TTL 2 s)"),
        }
    };
    assert_eq!(left["user"], "ghost");
    ann.send(json!({"type":"offer","to":ghost.client_id,"sdp":"v=0"}))
        .await;
    assert_eq!(ann.recv_type("error").await["code"], "peer_not_found");
    let peers = redis_hash(&format!("{p}:room:k-call:peers"));
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0].0, ann.client_id);
    // The last member leaving removes the index with the room's presence. Joining another
    // room after it is answered by Redis after the leave ran there.
    ann.send(json!({"type":"join","room":"k-after","user":"ann"}))
        .await;
    ann.recv_type("room_left").await;
    ann.recv_type("room_joined").await;
    assert_eq!(redis_hash(&format!("{p}:room:k-call:peers")), Vec::new());
}
