//! A minimal WebSocket room forwarder: the floor under any server that delivers each chat to each
//! member with its own write. It answers the handshake, sends `welcome`, answers `join` with
//! `room_joined` and forwards every `chat` payload unchanged to each member of the sender's room,
//! the sender included. It parses no JSON, validates nothing, keeps no history: a reference point
//! for herald-bench (`--spawn-server target/release/reference-forwarder`), not a server to use.
//!
//! One thread, two write modes:
//! - default: a delivery is one non-blocking `send` straight from the publisher's read loop; a
//!   member whose socket is full gets the rest queued and its own task writes it later;
//! - `--coalesce` (or `FORWARDER_COALESCE=1` in the environment, for `--spawn-server`): every
//!   delivery is queued and wakes the member's task, which writes all that gathered in one `send`.
//!   This is the shape of the "minimal forwarder" reference point in issue 5, and Herald's shape.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

struct Conn {
    stream: TcpStream,
    pending: RefCell<Vec<u8>>,
    wake: Notify,
}

type Rooms = Rc<RefCell<HashMap<String, Vec<Rc<Conn>>>>>;

#[path = "../src/wsframe.rs"]
mod wsframe;

const OP_TEXT: u8 = 0x1;
const OP_PONG: u8 = 0xA;

/// An unmasked server frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    wsframe::push_header(&mut f, opcode, payload.len(), false);
    f.extend_from_slice(payload);
    f
}

/// With `--coalesce`, every delivery is queued and the member's own task writes what gathered
/// since it last ran, in one `send`; without it, each delivery is written at once.
static COALESCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn deliver(conn: &Conn, bytes: &[u8]) {
    let mut pending = conn.pending.borrow_mut();
    if pending.is_empty() && COALESCE.load(std::sync::atomic::Ordering::Relaxed) {
        pending.extend_from_slice(bytes);
        conn.wake.notify_one();
    } else if pending.is_empty() {
        match conn.stream.try_write(bytes) {
            Ok(n) if n == bytes.len() => return,
            Ok(n) => pending.extend_from_slice(&bytes[n..]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                pending.extend_from_slice(bytes)
            }
            Err(_) => return,
        }
        conn.wake.notify_one();
    } else {
        pending.extend_from_slice(bytes);
    }
}

/// Value of the JSON string field `"name":"..."` (no escapes expected), if present.
fn field<'a>(msg: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let start = memchr::memmem::find(msg, name)? + name.len();
    let len = msg[start..].iter().position(|&b| b == b'"')?;
    Some(&msg[start..start + len])
}

fn accept_key(request: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(request).ok()?;
    let key = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim())
    })?;
    Some(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

async fn serve(conn: Rc<Conn>, id: u64, rooms: Rooms) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    // Handshake.
    loop {
        let mut chunk = [0u8; 1024];
        conn.stream.readable().await?;
        match conn.stream.try_read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
        if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            let Some(accept) = accept_key(&buf[..end]) else {
                return Ok(());
            };
            buf.drain(..end + 4);
            let reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            deliver(&conn, reply.as_bytes());
            deliver(
                &conn,
                &frame(
                    OP_TEXT,
                    format!("{{\"type\":\"welcome\",\"clientId\":\"{id}\"}}").as_bytes(),
                ),
            );
            break;
        }
    }
    let mut room: Option<String> = None;
    let result = async {
        loop {
            // Parse every whole frame in the buffer.
            loop {
                if buf.len() < 2 {
                    break;
                }
                let opcode = buf[0] & 0x0f;
                let masked = buf[1] & 0x80 != 0;
                let Some((len, mut at)) = wsframe::payload_len(&buf) else {
                    break;
                };
                let mask_at = at;
                if masked {
                    at += 4;
                }
                if buf.len() < at + len {
                    break;
                }
                if masked {
                    let mask: [u8; 4] = buf[mask_at..mask_at + 4].try_into().unwrap();
                    for (i, b) in buf[at..at + len].iter_mut().enumerate() {
                        *b ^= mask[i & 3];
                    }
                }
                let payload = &buf[at..at + len];
                match opcode {
                    0x1 => {
                        if memchr::memmem::find(payload, b"\"type\":\"chat\"").is_some() {
                            if let Some(r) = &room {
                                let f = frame(OP_TEXT, payload);
                                if let Some(members) = rooms.borrow().get(r) {
                                    for m in members {
                                        deliver(m, &f);
                                    }
                                }
                            }
                        } else if memchr::memmem::find(payload, b"\"type\":\"join\"").is_some() {
                            if let Some(r) = field(payload, b"\"room\":\"") {
                                let r = String::from_utf8_lossy(r).into_owned();
                                leave(&rooms, &conn, room.take());
                                rooms
                                    .borrow_mut()
                                    .entry(r.clone())
                                    .or_default()
                                    .push(conn.clone());
                                deliver(
                                    &conn,
                                    &frame(
                                        OP_TEXT,
                                        format!("{{\"type\":\"room_joined\",\"room\":\"{r}\"}}")
                                            .as_bytes(),
                                    ),
                                );
                                room = Some(r);
                            }
                        }
                    }
                    0x8 => return Ok(()),
                    0x9 => {
                        deliver(&conn, &frame(OP_PONG, payload));
                    }
                    _ => {}
                }
                buf.drain(..at + len);
            }
            tokio::select! {
                biased;
                r = conn.stream.readable() => {
                    r?;
                    let mut chunk = [0u8; 4096];
                    match conn.stream.try_read(&mut chunk) {
                        Ok(0) => return Ok(()),
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                _ = conn.wake.notified() => {
                    loop {
                        // true once everything is written; false while the socket is full.
                        let done = {
                            let mut pending = conn.pending.borrow_mut();
                            if pending.is_empty() {
                                true
                            } else {
                                match conn.stream.try_write(&pending) {
                                    Ok(n) => {
                                        pending.drain(..n);
                                        pending.is_empty()
                                    }
                                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                                    Err(e) => return Err(e),
                                }
                            }
                        };
                        if done {
                            break;
                        }
                        conn.stream.writable().await?;
                    }
                    conn.pending.borrow_mut().shrink_to_fit();
                }
            }
        }
    }
    .await;
    leave(&rooms, &conn, room);
    result
}

fn leave(rooms: &Rooms, conn: &Rc<Conn>, room: Option<String>) {
    if let Some(r) = room {
        let mut rooms = rooms.borrow_mut();
        if let Some(members) = rooms.get_mut(&r) {
            members.retain(|m| !Rc::ptr_eq(m, conn));
            if members.is_empty() {
                rooms.remove(&r);
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    if args.iter().any(|a| a == "--coalesce") || std::env::var_os("FORWARDER_COALESCE").is_some() {
        COALESCE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let socket = match listen.parse::<std::net::SocketAddr>() {
            Ok(a) if a.is_ipv6() => tokio::net::TcpSocket::new_v6()?,
            _ => tokio::net::TcpSocket::new_v4()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(listen.parse().map_err(std::io::Error::other)?)?;
        let listener: TcpListener = socket.listen(4096)?;
        println!("listening on http://{}", listener.local_addr()?);
        let rooms: Rooms = Rc::default();
        let mut next = 0u64;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            next += 1;
            let conn = Rc::new(Conn {
                stream,
                pending: RefCell::default(),
                wake: Notify::new(),
            });
            let rooms = rooms.clone();
            tokio::task::spawn_local(async move {
                let _ = serve(conn, next, rooms).await;
            });
        }
    })
}
