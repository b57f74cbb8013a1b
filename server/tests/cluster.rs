//! Several real `herald` nodes sharing rooms, presence, history and delivery through a real
//! Redis (127.0.0.1:6379, which runs on every machine here; each test uses its own key prefix so
//! tests never see each other). The outage test starts and stops a redis-server of its own.

mod common;

use std::process::Command;
use std::time::Duration;

use common::cluster::{
    join, names, nginx, nginx_path, node, node_on, prefix, recv_of, wait_broker, OwnRedis, REDIS,
};
use common::{health, post, Client, Events};
use serde_json::json;

#[tokio::test]
async fn chat_and_presence_span_nodes_in_one_order() {
    let p = prefix();
    let (a, b) = (node(&p), node(&p));
    assert_eq!(health(&a).await["broker"], "up");

    let (mut alice, joined) = join(&a, "lobby", "alice").await;
    assert_eq!(names(&joined["users"]), ["alice"]);
    let (mut bob, joined) = join(&b, "lobby", "bob").await;
    assert_eq!(
        names(&joined["users"]),
        ["alice", "bob"],
        "presence is cluster-wide"
    );
    let seen = alice.recv_type("user_joined").await;
    assert_eq!(seen["user"], "bob");
    assert_eq!(names(&seen["users"]), ["alice", "bob"]);

    // Both send at once; both receive all 40 messages in the same order, offsets 1..=40.
    for i in 0..20 {
        alice
            .send(json!({"type":"chat","text":format!("a{i}")}))
            .await;
        bob.send(json!({"type":"chat","text":format!("b{i}")}))
            .await;
    }
    let mut orders = Vec::new();
    for client in [&mut alice, &mut bob] {
        let mut order = Vec::new();
        for _ in 0..40 {
            let chat = recv_of(client, &["chat"]).await;
            order.push((chat["offset"].as_u64().unwrap(), chat["text"].to_string()));
        }
        orders.push(order);
    }
    assert_eq!(orders[0], orders[1], "every member sees one order");
    let offsets: Vec<u64> = orders[0].iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (1..=40).collect::<Vec<_>>());
    let from_alice: Vec<&String> = orders[0]
        .iter()
        .map(|(_, t)| t)
        .filter(|t| t.starts_with("\"a"))
        .collect();
    let sent: Vec<String> = (0..20).map(|i| format!("\"a{i}\"")).collect();
    assert_eq!(
        from_alice,
        sent.iter().collect::<Vec<_>>(),
        "a sender's order is kept"
    );

    // Typing crosses nodes and is not echoed.
    bob.send(json!({"type":"typing","isTyping":true})).await;
    let typing = recv_of(&mut alice, &["typing"]).await;
    assert_eq!(typing["user"], "bob");
    bob.expect_silence(Duration::from_millis(300)).await;

    // Leaving is seen on the other node.
    bob.send(json!({"type":"leave"})).await;
    bob.recv_type("room_left").await;
    let left = recv_of(&mut alice, &["user_left"]).await;
    assert_eq!(left["user"], "bob");
    let (_carol, joined) = join(&b, "lobby", "carol").await;
    assert_eq!(names(&joined["users"]), ["alice", "carol"]);
}

#[tokio::test]
async fn private_messages_and_notifications_reach_any_node() {
    let p = prefix();
    let (a, b) = (node(&p), node(&p));
    let (mut alice, _) = join(&a, "r1", "alice").await;
    let (mut bob, _) = join(&b, "r2", "bob").await;
    let mut bob_stream = Events::open(&a.url("/events?userId=bob")).await;
    bob_stream.next_named("connect").await;

    alice
        .send(json!({"type":"private_message","target":"bob","text":"psst"}))
        .await;
    let pm = recv_of(&mut bob, &["private_message"]).await;
    assert_eq!(pm["from"], "alice");
    assert_eq!(pm["text"], "psst");

    alice
        .send(json!({"type":"private_message","target":"nobody","text":"hello?"}))
        .await;
    let error = recv_of(&mut alice, &["error"]).await;
    assert_eq!(error["code"], "user_not_found");

    // A notification posted on node B reaches bob's WebSocket (B) and his stream (A) once each.
    let (status, body) = post(
        &b.url("/notifications"),
        r#"{"userId":"bob","message":"hi bob"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let n = recv_of(&mut bob, &["notification"]).await;
    assert_eq!(n["content"]["message"], "hi bob");
    let e = bob_stream.next_named("notification").await;
    assert_eq!(e.data["message"], "hi bob");
    assert!(e.id.is_some(), "notification events carry an id");
    alice.expect_silence(Duration::from_millis(300)).await;
    bob.expect_silence(Duration::from_millis(100)).await;

    // A broadcast posted on A reaches everyone on both nodes.
    let (status, _) = post(&a.url("/notifications"), r#"{"message":"all hands"}"#).await;
    assert_eq!(status, 200);
    for client in [&mut alice, &mut bob] {
        let n = recv_of(client, &["notification"]).await;
        assert_eq!(n["content"]["message"], "all hands");
    }
    // Updates posted on B reach streams on A.
    let (status, _) = post(
        &b.url("/updates"),
        r#"{"resource":"doc","action":"saved","data":{"v":2}}"#,
    )
    .await;
    assert_eq!(status, 200);
    bob_stream.next_named("notification").await;
    let u = bob_stream.next_named("update").await;
    assert_eq!(u.data["data"]["v"], 2);
}

#[tokio::test]
async fn a_client_resumes_on_another_node_with_what_it_missed() {
    let p = prefix();
    let (a, b) = (node(&p), node(&p));
    let (mut alice, _) = join(&a, "news", "alice").await;
    let (mut bob, _) = join(&b, "news", "bob").await;
    recv_of(&mut alice, &["user_joined"]).await;
    alice.send(json!({"type":"chat","text":"one"})).await;
    let first = recv_of(&mut bob, &["chat"]).await;
    let joined_epoch = {
        // Bob's position: the epoch from room_joined (checked against a fresh join) and the
        // last offset he saw.
        let (_probe, j) = join(&a, "news", "probe").await;
        j["epoch"].as_str().unwrap().to_owned()
    };
    let since = first["offset"].as_u64().unwrap();
    drop(bob);
    recv_of(&mut alice, &["user_left"]).await;
    for text in ["two", "three"] {
        alice.send(json!({"type":"chat","text":text})).await;
        recv_of(&mut alice, &["chat"]).await;
    }

    // Bob comes back through node A this time.
    let mut bob = a.client().await;
    bob.send(json!({"type":"join","room":"news","user":"bob",
        "since":{"offset":since,"epoch":joined_epoch}}))
        .await;
    let joined = bob.recv_type("room_joined").await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(joined["epoch"], joined_epoch.as_str());
    let two = bob.recv_type("chat").await;
    let three = bob.recv_type("chat").await;
    assert_eq!(
        (two["text"].as_str(), three["text"].as_str()),
        (Some("two"), Some("three"))
    );
    assert_eq!(two["offset"].as_u64(), Some(since + 1));
    alice.send(json!({"type":"chat","text":"four"})).await;
    let four = recv_of(&mut bob, &["chat"]).await;
    assert_eq!(
        four["text"], "four",
        "live messages follow the replay, none twice"
    );

    // A position from another epoch is never partly replayed.
    let mut carol = b.client().await;
    carol
        .send(json!({"type":"join","room":"news","user":"carol",
            "since":{"offset":1,"epoch":"not-this-one"}}))
        .await;
    let joined = carol.recv_type("room_joined").await;
    assert_eq!(joined["recovered"], false);
    carol.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_killed_node_leaves_no_ghosts() {
    let p = prefix();
    let a = node_on(REDIS, &p, &["--presence-ttl", "4s"]);
    let mut doomed = node_on(REDIS, &p, &["--presence-ttl", "4s"]);
    let (mut alice, _) = join(&a, "room", "alice").await;
    let (_ghost, joined) = join(&doomed, "room", "ghost").await;
    assert_eq!(names(&joined["users"]), ["alice", "ghost"]);
    recv_of(&mut alice, &["user_joined"]).await;

    // SIGKILL: no goodbye of any kind.
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    // The 20 s limit is a hang guard, not a measurement: it is far above the 4 s TTL (no load
    // makes this flaky) and far below the 60 s default, so a node that ignored --presence-ttl
    // would still fail here.
    let left = loop {
        match tokio::time::timeout(Duration::from_secs(20), alice.recv()).await {
            Ok(frame) if frame["type"] == "user_left" => break frame,
            Ok(_) => continue,
            Err(_) => panic!("no user_left within 20 s of the kill (presence TTL 4 s)"),
        }
    };
    assert_eq!(left["user"], "ghost");
    let (_bob, joined) = join(&a, "room", "bob").await;
    assert_eq!(names(&joined["users"]), ["alice", "bob"]);
}

#[tokio::test]
async fn backend_topics_deliver_once_to_rooms_users_and_everyone() {
    let p = prefix();
    let (a, b) = (node(&p), node(&p));
    let (mut alice, _) = join(&a, "ops", "alice").await;
    let (mut bob, _) = join(&b, "ops", "bob").await;
    recv_of(&mut alice, &["user_joined"]).await;

    let publish = |topic: &str, payload: &str| {
        let out = Command::new("redis-cli")
            .args(["-p", "6379", "PUBLISH", &format!("{p}.{topic}"), payload])
            .output()
            .expect("redis-cli");
        assert!(out.status.success());
    };
    publish(
        "room.messages",
        r#"{"room":"ops","text":"deploy <b>done</b><script>x</script>"}"#,
    );
    for client in [&mut alice, &mut bob] {
        let chat = recv_of(client, &["chat"]).await;
        assert_eq!(chat["user"], "system");
        assert_eq!(
            chat["text"], "deploy <b>done</b>",
            "sanitised like any chat"
        );
        assert_eq!(chat["offset"], 1);
    }
    publish(
        "user.notifications",
        r#"{"userId":"bob","message":"your build","type":"ci"}"#,
    );
    let n = recv_of(&mut bob, &["notification"]).await;
    assert_eq!(n["content"]["type"], "ci");
    publish("system.events", r#"{"message":"maintenance at noon"}"#);
    for client in [&mut alice, &mut bob] {
        let n = recv_of(client, &["notification"]).await;
        assert_eq!(n["content"]["message"], "maintenance at noon");
        assert_eq!(n["content"]["type"], "system");
    }
    // Bad payloads are dropped; nothing arrives, nothing breaks.
    publish("room.messages", r#"{"room":"ops"}"#);
    publish("room.messages", "not json");
    alice.expect_silence(Duration::from_millis(400)).await;
    bob.expect_silence(Duration::from_millis(100)).await;
    alice.send(json!({"type":"chat","text":"still here"})).await;
    assert_eq!(recv_of(&mut bob, &["chat"]).await["offset"], 2);
}

#[tokio::test]
async fn sse_streams_resume_with_last_event_id_on_any_node() {
    let p = prefix();
    let (a, b) = (node(&p), node(&p));
    let mut stream = Events::open(&a.url("/events?userId=u1")).await;
    stream.next_named("connect").await;
    post(
        &a.url("/notifications"),
        r#"{"userId":"u1","message":"one"}"#,
    )
    .await;
    let one = stream.next_named("notification").await;
    drop(stream);
    post(
        &b.url("/notifications"),
        r#"{"userId":"u1","message":"two"}"#,
    )
    .await;
    post(
        &b.url("/notifications"),
        r#"{"userId":"u2","message":"not yours"}"#,
    )
    .await;
    post(&a.url("/updates"), r#"{"resource":"r","action":"a"}"#).await;

    let response = reqwest::Client::new()
        .get(b.url("/events?userId=u1"))
        .header("Last-Event-ID", one.id.clone().unwrap())
        .send()
        .await
        .unwrap();
    let mut resumed = Events::from_response(response);
    resumed.next_named("connect").await;
    let two = resumed.next_named("notification").await;
    assert_eq!(two.data["message"], "two");
    let update = resumed.next_named("update").await;
    assert_eq!(update.data["resource"], "r");
    let ids: Vec<u64> = [&one, &two, &update]
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    resumed.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn redis_outage_degrades_then_recovers() {
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let p = prefix();
    let (a, b) = (node_on(&url, &p, &[]), node_on(&url, &p, &[]));
    let (mut alice, _) = join(&a, "ops", "alice").await;
    let (mut bob, _) = join(&b, "ops", "bob").await;
    recv_of(&mut alice, &["user_joined"]).await;

    redis.stop();
    wait_broker(&a, "down", Duration::from_secs(5)).await;
    assert_eq!(health(&a).await["status"], "degraded");

    // Each node keeps serving its own connections (joins, presence, typing), but a chat, which
    // only the cluster numbers, is refused with a clear error rather than reaching one node's
    // members and never the other's.
    let (mut carol, joined) = join(&a, "ops", "carol").await;
    assert!(names(&joined["users"]).contains(&"carol".to_owned()));
    carol.send(json!({"type":"chat","text":"local"})).await;
    let refused = recv_of(&mut carol, &["error", "chat"]).await;
    assert_eq!(refused["code"], "overloaded", "{refused}");
    carol.send(json!({"type":"typing","isTyping":true})).await;
    assert_eq!(
        recv_of(&mut alice, &["typing", "chat"]).await["type"],
        "typing"
    );

    redis.resume();
    wait_broker(&a, "up", Duration::from_secs(10)).await;
    wait_broker(&b, "up", Duration::from_secs(10)).await;
    assert_eq!(health(&a).await["status"], "ok");

    // Cross-node delivery is back, presence re-registered.
    alice
        .send(json!({"type":"chat","text":"across again"}))
        .await;
    assert_eq!(recv_of(&mut bob, &["chat"]).await["text"], "across again");
    let (_dave, joined) = join(&b, "ops", "dave").await;
    let mut users = names(&joined["users"]);
    users.sort();
    assert_eq!(users, ["alice", "bob", "carol", "dave"]);
}

#[tokio::test]
async fn three_nodes_behind_nginx_least_conn_act_as_one_server() {
    let nginx_bin = nginx_path();
    if !nginx_bin.exists() {
        common::skip(
            "three_nodes_behind_nginx_least_conn_act_as_one_server",
            &format!(
                "nginx missing: {} (apt-get install -y nginx)",
                nginx_bin.display()
            ),
        );
        return;
    }
    let p = prefix();
    // Behind a proxy every request comes from loopback: the nodes say so, and publishers need
    // the API key.
    const KEY: &str = "nginx-test-api-key";
    let behind_nginx = ["--behind-proxy", "--api-key", KEY];
    let nodes = [
        node_on(REDIS, &p, &behind_nginx),
        node_on(REDIS, &p, &behind_nginx),
        node_on(REDIS, &p, &behind_nginx),
    ];
    let proxy = nginx(&nodes.iter().collect::<Vec<_>>());
    let ws = format!("ws://127.0.0.1:{}/ws", proxy.port);
    let http = |path: &str| format!("http://127.0.0.1:{}{path}", proxy.port);

    let mut clients = Vec::new();
    for i in 0..6 {
        let mut c = Client::connect(&ws).await;
        c.send(json!({"type":"join","room":"hall","user":format!("u{i}")}))
            .await;
        let joined = c.recv_type("room_joined").await;
        let expected: Vec<String> = (0..=i).map(|j| format!("u{j}")).collect();
        assert_eq!(
            names(&joined["users"]),
            expected,
            "presence spans the nodes"
        );
        clients.push(c);
    }
    // least_conn spread the six long-lived connections over all three nodes.
    for node in &nodes {
        let connections = health(node).await["connections"].as_u64().unwrap();
        assert!(connections >= 1, "a node got no connection: {connections}");
    }

    clients[0]
        .send(json!({"type":"chat","text":"hello everyone"}))
        .await;
    for c in clients.iter_mut() {
        let chat = recv_of(c, &["chat"]).await;
        assert_eq!(chat["text"], "hello everyone");
        assert_eq!(chat["offset"], 1);
    }

    let (status, _) = post(
        &http("/notifications"),
        r#"{"userId":"u4","message":"without the key"}"#,
    )
    .await;
    assert_eq!(status, 401, "through the proxy, publishing needs the key");
    let (status, _) = common::post_with_key(
        &http("/notifications"),
        KEY,
        r#"{"userId":"u4","message":"just you"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let n = recv_of(&mut clients[4], &["notification"]).await;
    assert_eq!(n["content"]["message"], "just you");
    for (i, c) in clients.iter_mut().enumerate() {
        if i != 4 {
            c.expect_silence(Duration::from_millis(150)).await;
        }
    }

    clients[5]
        .send(json!({"type":"private_message","target":"u1","text":"hi u1"}))
        .await;
    let pm = recv_of(&mut clients[1], &["private_message"]).await;
    assert_eq!(pm["from"], "u5");

    // An SSE stream through the proxy gets the notification too.
    let mut stream = Events::open(&http("/events?userId=u2")).await;
    stream.next_named("connect").await;
    let (status, _) = common::post_with_key(
        &http("/notifications"),
        KEY,
        r#"{"userId":"u2","message":"stream"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        stream.next_named("notification").await.data["message"],
        "stream"
    );
}
