//! Long polling in a cluster without sticky sessions (issue 17): a poll, send or close that
//! lands on a node that does not hold the session reaches the node that does through the
//! relay (`broker::relay`, Redis pub/sub). Nodes on the machine's Redis, each test under its
//! own key prefix; the last test puts three of them behind a real nginx `least_conn`.

mod common;

use common::cluster::{nginx, nginx_path, node_on, prefix, REDIS};
use common::poller::Poller;
use common::{Client, Server};
use serde_json::json;

fn base(server: &Server) -> String {
    format!("http://{}", server.addr)
}

#[tokio::test]
async fn every_request_of_a_session_works_from_any_node() {
    let p = prefix();
    let nodes = [
        node_on(REDIS, &p, &[]),
        node_on(REDIS, &p, &[]),
        node_on(REDIS, &p, &[]),
    ];
    let [a, b, c] = [base(&nodes[0]), base(&nodes[1]), base(&nodes[2])];
    let mut ws = Client::connect(&nodes[1].ws_url("/ws")).await;
    ws.send(json!({"type":"join","room":"spread","user":"wes"}))
        .await;
    ws.recv_type("room_joined").await;

    // Opened on A; then every request goes to B or C, which do not hold it.
    let mut poller = Poller::open(&a).await;
    let (owner, _) = poller.key.rsplit_once('.').expect("the id names its node");
    assert!(!owner.is_empty());
    poller.base = c.clone();
    poller.join("spread", json!("pat")).await;
    assert_eq!(ws.recv_type("user_joined").await["user"], "pat");

    poller.base = b.clone();
    poller.send(json!({"type":"chat","text":"via b"})).await;
    assert_eq!(ws.recv_type("chat").await["text"], "via b");
    assert_eq!(poller.recv_type("chat").await["text"], "via b");

    // A lost answer, repeated through another node: the same frames.
    ws.send(json!({"type":"chat","text":"to pat"})).await;
    ws.recv_type("chat").await;
    poller.base = c.clone();
    let (status, first) = poller.poll_raw(poller.cursor).await;
    assert_eq!(status, 200);
    poller.base = a.clone();
    let (status, again) = poller.poll_raw(poller.cursor).await;
    assert_eq!(status, 200);
    assert_eq!(first, again);
    assert_eq!(again["frames"][0]["text"], "to pat");
    poller.take(&again);
    poller.pending.clear();

    // A retried send through another node is applied once.
    poller.seq += 1;
    poller.base = b.clone();
    let once = poller
        .send_seq(poller.seq, vec![json!({"type":"chat","text":"once"})])
        .await;
    poller.base = c.clone();
    let retry = poller
        .send_seq(poller.seq, vec![json!({"type":"chat","text":"once"})])
        .await;
    assert_eq!(once.0, 200);
    assert_eq!(once, retry);
    poller.send(json!({"type":"chat","text":"after"})).await;
    assert_eq!(ws.recv_type("chat").await["text"], "once");
    assert_eq!(ws.recv_type("chat").await["text"], "after");

    // A private message and a notification reach it wherever its requests land.
    ws.send(json!({"type":"private_message","target":"pat","text":"psst"}))
        .await;
    let (status, _) = common::post(
        &nodes[2].url("/notifications"),
        r#"{"userId":"pat","message":"note"}"#,
    )
    .await;
    assert_eq!(status, 200);
    // Both cross nodes through Redis, each on its own path: read until both came (`recv` fails
    // the test if one never does).
    let mut kinds = Vec::new();
    while !["private_message", "notification"]
        .iter()
        .all(|k| kinds.iter().any(|seen: &String| seen == k))
    {
        kinds.push(poller.recv().await["type"].as_str().unwrap().to_owned());
    }

    // Closing through another node ends it on its own.
    poller.base = b.clone();
    assert_eq!(poller.delete().await, 204);
    assert_eq!(ws.recv_type("user_left").await["user"], "pat");
    poller.base = c.clone();
    let (status, body) = poller.poll_raw(poller.cursor).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_session");
    // An id naming no live node is unknown at once, not a timeout.
    poller.key = format!("nonode.{}", "x".repeat(30));
    let (status, body) = poller.poll_raw(0).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn long_polling_works_behind_nginx_least_conn_without_sticky_sessions() {
    let nginx_bin = nginx_path();
    if !nginx_bin.exists() {
        common::skip(
            "long_polling_works_behind_nginx_least_conn_without_sticky_sessions",
            &format!(
                "nginx missing: {} (apt-get install -y nginx)",
                nginx_bin.display()
            ),
        );
        return;
    }
    let p = prefix();
    let nodes = [
        node_on(REDIS, &p, &[]),
        node_on(REDIS, &p, &[]),
        node_on(REDIS, &p, &[]),
    ];
    let proxy = nginx(&nodes.iter().collect::<Vec<_>>());
    let front = format!("http://127.0.0.1:{}", proxy.port);
    let mut ws = Client::connect(&format!("ws://127.0.0.1:{}/ws", proxy.port)).await;
    ws.send(json!({"type":"join","room":"lb","user":"wes"}))
        .await;
    ws.recv_type("room_joined").await;

    // Several polling clients, each with a poll held at times: least_conn sends their other
    // requests to other nodes.
    let mut pollers = Vec::new();
    for i in 0..4 {
        let mut poller = Poller::open(&front).await;
        poller.join("lb", json!(format!("p{i}"))).await;
        assert_eq!(ws.recv_type("user_joined").await["user"], format!("p{i}"));
        pollers.push(poller);
    }
    let owners: std::collections::HashSet<String> = pollers
        .iter()
        .map(|p| p.key.rsplit_once('.').unwrap().0.to_owned())
        .collect();
    assert!(owners.len() >= 2, "sessions were opened on one node only");
    for round in 0..5 {
        for (i, poller) in pollers.iter_mut().enumerate() {
            let text = format!("r{round} from p{i}");
            poller.send(json!({"type":"chat","text":text})).await;
            assert_eq!(ws.recv_type("chat").await["text"], text);
        }
        ws.send(json!({"type":"chat","text":format!("r{round} from wes")}))
            .await;
        ws.recv_type("chat").await;
    }
    // Every poller got every chat, in one order, with no gap. A pong comes from the session's
    // own node while wes's last chat may still be on the bus to it: sync again until all 25
    // are in (a hang guard fails the test if one never comes).
    for poller in pollers.iter_mut() {
        let frames = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            let mut frames = poller.sync().await;
            while frames.iter().filter(|f| f["type"] == "chat").count() < 25 {
                frames.extend(poller.sync().await);
            }
            frames
        })
        .await
        .expect("a poller never got all 25 chats");
        let chats: Vec<_> = frames.iter().filter(|f| f["type"] == "chat").collect();
        assert_eq!(chats.len(), 25, "{frames:?}");
        for pair in chats.windows(2) {
            assert_eq!(
                pair[1]["offset"].as_u64().unwrap(),
                pair[0]["offset"].as_u64().unwrap() + 1
            );
        }
    }
    for poller in &pollers {
        assert_eq!(poller.delete().await, 204);
    }
    for _ in 0..4 {
        ws.recv_type("user_left").await;
    }
}
