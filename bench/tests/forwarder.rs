//! The reference forwarder speaks enough of the wire protocol for herald-bench's room scenarios:
//! `welcome`, `join` answered by `room_joined`, and `chat` delivered to every member of the room,
//! the sender included; members of other rooms get nothing. Checked in both write modes.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("stream open")
            .expect("frame");
        if let Message::Text(t) = msg {
            return t.to_string();
        }
    }
}

async fn joined(addr: &str, room: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    assert!(next_text(&mut ws).await.contains("\"type\":\"welcome\""));
    ws.send(Message::text(format!(
        r#"{{"type":"join","room":"{room}","user":"u"}}"#
    )))
    .await
    .unwrap();
    let reply = next_text(&mut ws).await;
    assert!(
        reply.contains("\"type\":\"room_joined\"") && reply.contains(room),
        "{reply}"
    );
    ws
}

async fn check(extra: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reference-forwarder"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .expect("address line")
        .to_string();

    let mut a = joined(&addr, "r1").await;
    let mut b = joined(&addr, "r1").await;
    let mut other = joined(&addr, "r2").await;
    let chat = r#"{"type":"chat","text":"b1x2 hello"}"#;
    a.send(Message::text(chat)).await.unwrap();
    assert_eq!(next_text(&mut a).await, chat);
    assert_eq!(next_text(&mut b).await, chat);
    // The other room hears only its own chat, which proves nothing else was queued for it.
    let own = r#"{"type":"chat","text":"b3x4 other"}"#;
    other.send(Message::text(own)).await.unwrap();
    assert_eq!(next_text(&mut other).await, own);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn forwards_chat_to_the_room_writing_at_once() {
    check(&[]).await;
}

#[tokio::test]
async fn forwards_chat_to_the_room_coalescing() {
    check(&["--coalesce"]).await;
}
