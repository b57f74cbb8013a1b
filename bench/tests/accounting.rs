//! herald-bench's counting end to end: the real binary runs a short `fanout` against a fake
//! server. A faulty one delivers every chat twice to its own room and once to every other room:
//! raw counting would report three deliveries for each one expected (a negative loss); the tool
//! must report each expected delivery once, the repeats as duplicates and the leaks as misrouted.
//! A correct one records the chats' stamps, which must be the publishers' schedule.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Rooms = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<String>>>>>;

/// Every chat text the fake server received.
type Texts = Arc<Mutex<Vec<String>>>;

/// Speaks just enough of the wire protocol: `welcome`, `join` answered by `room_joined`, and
/// `chat` delivered (as the bench only reads `type` and `text`), with the faults above when
/// `faulty`.
async fn fake_server(listener: TcpListener, faulty: bool, texts: Texts) {
    let rooms: Rooms = Arc::default();
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let rooms = rooms.clone();
        let texts = texts.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let (mut write, mut read) = ws.split();
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            tokio::spawn(async move {
                while let Some(text) = rx.recv().await {
                    if write.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
            });
            tx.send(r#"{"type":"welcome","clientId":"c"}"#.to_owned())
                .unwrap();
            let mut my_room = None;
            while let Some(Ok(msg)) = read.next().await {
                let Message::Text(t) = msg else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                match v["type"].as_str() {
                    Some("join") => {
                        let room = v["room"].as_str().unwrap().to_owned();
                        let mut rooms = rooms.lock().unwrap();
                        rooms.entry(room.clone()).or_default().push(tx.clone());
                        let _ = tx.send(format!(r#"{{"type":"room_joined","room":"{room}"}}"#));
                        my_room = Some(room);
                    }
                    Some("chat") => {
                        let text = v["text"].as_str().unwrap();
                        texts.lock().unwrap().push(text.to_owned());
                        let frame = format!(r#"{{"type":"chat","text":"{text}"}}"#);
                        let rooms = rooms.lock().unwrap();
                        for (room, members) in rooms.iter() {
                            let copies = match (faulty, Some(room) == my_room.as_ref()) {
                                (false, true) => 1,
                                (false, false) => 0,
                                (true, true) => 2,
                                (true, false) => 1,
                            };
                            for m in members {
                                for _ in 0..copies {
                                    let _ = m.send(frame.clone());
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
    }
}

/// Runs `herald-bench fanout` against a fake server: 4 clients in 2 rooms of 2, one publisher
/// per room, 20 chats/s in all for 1 s. The drain is long for a server that answers at once:
/// every copy is in by its end. Returns the run's JSON, its stderr and the chat texts the server
/// got.
async fn run(faulty: bool) -> (Value, String, Vec<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let texts = Texts::default();
    let server = tokio::spawn(fake_server(listener, faulty, texts.clone()));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald-bench"))
        .args(["fanout", "--target", &addr.to_string()])
        .args(["--clients", "4", "--room-size", "2", "--rate", "20"])
        .args(["--warmup", "0.5", "--duration", "1", "--drain", "3"])
        .args(["--source-addrs", "1", "--threads", "1"])
        .output()
        .await
        .unwrap();
    server.abort();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "herald-bench failed: {stderr}");
    let line = String::from_utf8(out.stdout).unwrap();
    let v: Value = serde_json::from_str(line.trim()).expect("one JSON line");
    let texts = texts.lock().unwrap().clone();
    (v, stderr, texts)
}

#[tokio::test]
async fn duplicates_and_misrouted_chats_are_reported_not_counted() {
    let (v, stderr, _) = run(true).await;
    let r = &v["results"];
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    let sent = n("sent");
    assert!(sent > 0, "{r}");
    // Each chat is expected by the 2 members of its room.
    assert_eq!(n("expected_deliveries"), 2 * sent, "{r}");
    assert_eq!(n("delivered"), n("expected_deliveries"), "{r}");
    assert_eq!(n("lost"), 0, "{r}");
    assert_eq!(r["loss_pct"].as_f64(), Some(0.0), "{r}");
    // The second copy in the room, and one copy to each of the 2 members of the other room.
    assert_eq!(n("duplicates"), n("expected_deliveries"), "{r}");
    assert_eq!(n("misrouted"), 2 * sent, "{r}");
    assert_eq!(n("stale"), 0, "{r}");
    assert_eq!(r["latency"]["count"].as_u64(), Some(n("delivered")), "{r}");
    assert!(stderr.contains("duplicate frame(s)"), "{stderr}");
    assert!(stderr.contains("misrouted frame(s)"), "{stderr}");
}

/// The stamp a chat carries is when it was due: publisher p's chats are due every
/// publishers / rate = 100 ms from its first, so consecutive sequence numbers are exactly that
/// far apart in nanoseconds, however late each one actually went out. (Stamping the send time
/// made these gaps jitter, and hid the wait of a held-up publisher.) Nothing is timed here: the
/// stamps are compared with each other.
#[tokio::test]
async fn chats_carry_their_scheduled_time() {
    let (v, _, texts) = run(false).await;
    assert_eq!(v["results"]["lost"], 0, "{v}");
    let mut by_publisher: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    for t in &texts {
        // b<publisher>s<sequence>t<ns>
        let rest = t.strip_prefix('b').expect(t);
        let (p, rest) = rest.split_once('s').expect(t);
        let (seq, ts) = rest.split_once('t').expect(t);
        by_publisher
            .entry(p.parse().unwrap())
            .or_default()
            .push((seq.parse().unwrap(), ts.parse().unwrap()));
    }
    assert_eq!(by_publisher.len(), 2, "two publishers: {texts:?}");
    for (p, mut chats) in by_publisher {
        chats.sort();
        assert!(chats.len() >= 10, "publisher {p}: {chats:?}");
        for (k, w) in chats.windows(2).enumerate() {
            assert_eq!(
                w[1].0,
                w[0].0 + 1,
                "publisher {p}: sequence numbers in a row"
            );
            assert_eq!(
                w[1].1 - w[0].1,
                100_000_000,
                "publisher {p}: chat {k} to {}: stamps not 100 ms apart",
                k + 1
            );
        }
    }
}
