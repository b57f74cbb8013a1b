//! A minimal long-polling room forwarder: the floor under any server that delivers chats over
//! HTTP long polling, one request and one answer per delivery. It speaks just enough of Herald's
//! `/poll` dialect (PROTOCOL.md section 10) for `herald-bench polling`: `POST /poll` opens a
//! session, `POST /poll/{id}` takes `{"seq":N,"frames":[F]}` (a `join` puts the session in the
//! frame's room; any other frame is forwarded unchanged to every member of the sender's room,
//! the sender included), and `GET /poll/{id}?ack=N` drops what the cursor acknowledges and
//! answers what is left, or waits until something arrives. It parses HTTP only as far as the
//! request line and `Content-Length`, and JSON not at all (fields are found by substring); it
//! validates nothing, keeps no history, has no timeouts: a reference point for
//! `herald-bench polling --spawn-server target/release/reference-poll-forwarder`, not a server.
//!
//! One thread (as `reference-forwarder`), one task per connection, one `write` per answer.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

#[derive(Default)]
struct Session {
    /// Frames not acknowledged yet; the first is at cursor position `base`.
    frames: RefCell<VecDeque<Rc<[u8]>>>,
    base: Cell<u64>,
    wake: Notify,
    room: RefCell<Option<Vec<u8>>>,
}

#[derive(Default)]
struct State {
    sessions: RefCell<HashMap<u64, Rc<Session>>>,
    rooms: RefCell<HashMap<Vec<u8>, Vec<Rc<Session>>>>,
    next: Cell<u64>,
}

/// The bytes after `name` up to the next `"` (a JSON string field without escapes).
fn field<'a>(msg: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let start = memchr::memmem::find(msg, name)? + name.len();
    let len = msg[start..].iter().position(|&b| b == b'"')?;
    Some(&msg[start..start + len])
}

/// The decimal number after `name`.
fn number(msg: &[u8], name: &[u8]) -> u64 {
    let Some(start) = memchr::memmem::find(msg, name).map(|i| i + name.len()) else {
        return 0;
    };
    msg[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0, |n, b| n * 10 + u64::from(b - b'0'))
}

fn respond(out: &mut Vec<u8>, status: &str, body: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Reads one request (head and `Content-Length` body) from `buf`/`stream`; `None` at the end.
async fn next_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    loop {
        if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
            let head = &buf[..end];
            let lower = head.to_ascii_lowercase();
            let length = number(&lower, b"content-length: ") as usize;
            if buf.len() >= end + 4 + length {
                let head = buf[..end].to_vec();
                let body = buf[end + 4..end + 4 + length].to_vec();
                buf.drain(..end + 4 + length);
                return Ok(Some((head, body)));
            }
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn serve(mut stream: TcpStream, state: Rc<State>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    while let Some((head, body)) = next_request(&mut stream, &mut buf).await? {
        out.clear();
        let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
        let mut parts = head[..line_end].split(|&b| b == b' ');
        let method = parts.next().unwrap_or_default();
        let target = parts.next().unwrap_or_default();
        let session = target
            .strip_prefix(b"/poll/")
            .map(|rest| number(rest, b""))
            .and_then(|id| state.sessions.borrow().get(&id).cloned());
        match (method, target == b"/poll", session) {
            (b"POST", true, _) => {
                let id = state.next.get() + 1;
                state.next.set(id);
                state.sessions.borrow_mut().insert(id, Rc::default());
                let answer = format!(r#"{{"session":"{id}","cursor":0,"frames":[]}}"#);
                respond(&mut out, "200 OK", answer.as_bytes());
            }
            (b"GET", false, Some(session)) => {
                let ack = number(target, b"ack=");
                loop {
                    {
                        let mut frames = session.frames.borrow_mut();
                        while session.base.get() < ack && frames.pop_front().is_some() {
                            session.base.set(session.base.get() + 1);
                        }
                        if !frames.is_empty() {
                            let cursor = session.base.get() + frames.len() as u64;
                            let mut answer =
                                format!(r#"{{"cursor":{cursor},"frames":["#).into_bytes();
                            for (i, frame) in frames.iter().enumerate() {
                                if i > 0 {
                                    answer.push(b',');
                                }
                                answer.extend_from_slice(frame);
                            }
                            answer.extend_from_slice(b"]}");
                            respond(&mut out, "200 OK", &answer);
                            break;
                        }
                    }
                    session.wake.notified().await;
                }
            }
            (b"POST", false, Some(session)) => {
                let seq = number(&body, b"\"seq\":");
                let start = memchr::memmem::find(&body, b"\"frames\":[").map(|i| i + 10);
                let end = body.iter().rposition(|&b| b == b']');
                if let (Some(start), Some(end)) = (start, end) {
                    let frame = &body[start..end.max(start)];
                    if memchr::memmem::find(frame, b"\"type\":\"join\"").is_some() {
                        let room = field(frame, b"\"room\":\"").unwrap_or_default().to_vec();
                        state
                            .rooms
                            .borrow_mut()
                            .entry(room.clone())
                            .or_default()
                            .push(session.clone());
                        *session.room.borrow_mut() = Some(room);
                    } else if let Some(room) = session.room.borrow().as_ref() {
                        let shared: Rc<[u8]> = Rc::from(frame);
                        for member in state.rooms.borrow().get(room).into_iter().flatten() {
                            member.frames.borrow_mut().push_back(shared.clone());
                            member.wake.notify_one();
                        }
                    }
                }
                respond(&mut out, "200 OK", format!(r#"{{"seq":{seq}}}"#).as_bytes());
            }
            _ => respond(&mut out, "404 Not Found", b"{}"),
        }
        stream.write_all(&out).await?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(&listen).await?;
        println!("listening on http://{}", listener.local_addr()?);
        let state = Rc::new(State::default());
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let state = state.clone();
            tokio::task::spawn_local(async move {
                let _ = serve(stream, state).await;
            });
        }
    })
}
