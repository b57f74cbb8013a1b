//! The WebSocket transport (`GET /` or `GET /ws` with an upgrade).
//!
//! One task per connection: it reads frames and hands their text to the node and writes what the
//! session's outbox holds (in batches, flushed once). The connection has no timer of its own: the
//! node's pinger (`pinger` in lib.rs) queues its pings in the outbox and, when the client stays
//! silent past the timeout, closes the session. Oversized frames are refused by tungstenite
//! before they are buffered, and answered with close code 1009.

use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_protocol::error::text;
use herald_protocol::ErrorCode;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_tungstenite::tungstenite::handshake::derive_accept_key;
use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hyper_tungstenite::tungstenite::protocol::Role;
use hyper_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use hyper_tungstenite::tungstenite::{Error as WsError, Message};
use hyper_tungstenite::WebSocketStream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::coalesce::Coalesce;
use super::Body;

use crate::admission::{refuse_rate_limited, Admission};
use crate::limits::Verdict;
use crate::node::Node;
use crate::session::{CloseReason, Outbound, Outbox, Session, Transport};

/// Frames written per flush at most.
const BATCH: usize = 64;

/// Bytes gathered per flush at most (a batch stops at the first frame past it).
const BATCH_BYTES: usize = 64 * 1024;

/// How long the server waits to deliver its own close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long a lingering close reads (and discards) the client's input after the close frame,
/// waiting for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// Input a lingering close discards at most before it closes anyway (the time limit is the real
/// bound; a client sends at most what the buffers between it and the server hold before it
/// sees the close frame and stops).
const LINGER_BYTES: usize = 32 << 20;

/// The socket under the codec.
type Socket = WebSocketStream<Coalesce<TcpStream>>;

/// The WebSocket ping opcode.
const OP_PING: u8 = 0x9;

/// The tungstenite settings: the frame limit, and small buffers so idle connections stay cheap.
/// tungstenite zero-fills its read buffer before each read, so a small one also saves work;
/// larger frames grow it as needed. Writes go straight to [`Coalesce`], which batches them.
pub fn ws_config(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(256)
        .write_buffer_size(0)
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
}

/// Checks the handshake headers and answers `101 Switching Protocols`; the returned future
/// resolves to the raw connection once hyper has sent the answer.
pub fn accept(req: &mut Request<Incoming>) -> Result<(Response<Body>, OnUpgrade), &'static str> {
    let headers = req.headers();
    let key = headers
        .get("sec-websocket-key")
        .ok_or("missing Sec-WebSocket-Key")?;
    if headers.get("sec-websocket-version").map(|v| v.as_bytes()) != Some(b"13") {
        return Err("Sec-WebSocket-Version must be 13");
    }
    let accept = derive_accept_key(key.as_bytes());
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(hyper::header::CONNECTION, "upgrade")
        .header(hyper::header::UPGRADE, "websocket")
        .header("sec-websocket-accept", accept)
        .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
        .map_err(|_| "could not build the handshake answer")?;
    Ok((response, hyper::upgrade::on(req)))
}

enum End {
    /// The client closed or the socket failed: nothing more to send.
    Gone,
    /// The server closes, with a code the client should see.
    Close(CloseReason),
}

/// Runs one WebSocket connection to its end. The admission (identity, connection permit) is
/// held until then.
pub async fn serve(node: Arc<Node>, upgrade: OnUpgrade, mut admission: Admission) {
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
    };
    // Take the TCP stream back from hyper: no dynamic dispatch or prefix check per read and
    // write, and direct access to its readiness. Bytes hyper read past the handshake (a client
    // may send its first frame at once) go to the codec first.
    let (tcp, early) = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => (parts.io.into_inner(), parts.read_buf.to_vec()),
        Err(_) => {
            tracing::warn!("websocket upgrade on an unexpected transport");
            return;
        }
    };
    let config = ws_config(node.config.max_frame_bytes);
    // Boxed: the constructor's future holds a second copy of the stream while it runs, and
    // inline it would stay part of the connection task's size for the connection's whole life.
    let mut ws = Box::pin(WebSocketStream::from_partially_read(
        Coalesce::new(tcp),
        early,
        Role::Server,
        Some(config),
    ))
    .await;
    // Shutdown waits for this socket until its close (frame, FIN, linger) is done.
    let _hold = node.hold_socket();
    let (session, mut outbox) = node.open(Transport::WebSocket);
    admission.attach(&node, &session);
    tracing::debug!(client = %session.id, "websocket connected");
    node.welcome(&session);
    let end = run(&node, &session, &mut outbox, &mut ws).await;
    node.close(&session);
    if let End::Close(reason) = end {
        match reason {
            CloseReason::SlowConsumer => _ = node.metrics.slow_consumers.inc(),
            CloseReason::Timeout => _ = node.metrics.timeouts.inc(),
            CloseReason::TooBig => _ = node.metrics.oversized.inc(),
            CloseReason::Shutdown
            | CloseReason::BadData
            | CloseReason::RateLimited
            | CloseReason::TokenExpired => {}
        }
        // Boxed: the close (with its drain buffer) would otherwise be part of the connection
        // task's size for the connection's whole life.
        Box::pin(close(&node, reason, &mut outbox, ws)).await;
    }
    tracing::debug!(client = %session.id, "websocket closed");
}

/// Ends a connection the server closes.
///
/// A client that cannot take more (a slow consumer, or a silent one with data still queued for
/// it) is reset: its close frame could not reach it anyway, and a plain close would leave the
/// kernel retrying the unsent backlog for minutes. Every other close is a lingering one: what
/// was queued, the close frame, then a FIN, and the client's input is read and discarded until
/// it closes its side (or [`LINGER`] passes). Closing with unread input would make the kernel
/// answer with a reset, and a proxy in between drops the close frame it had not yet forwarded.
async fn close(node: &Node, reason: CloseReason, outbox: &mut Outbox, mut ws: Socket) {
    use std::os::fd::AsRawFd;
    let fd = ws.get_ref().inner().as_raw_fd();
    let backlog = outbox.session().queued_bytes() > 0
        || ws.get_ref().pending() > 0
        || super::unsent_bytes(fd) > 0;
    let abort = match reason {
        CloseReason::SlowConsumer => true,
        CloseReason::Timeout => backlog,
        _ => false,
    };
    if abort {
        abort_now(node, fd);
        return;
    }
    let frame = CloseFrame {
        code: CloseCode::from(reason.code()),
        reason: reason.text().into(),
    };
    let sent = tokio::time::timeout(CLOSE_GRACE, async {
        // What was queued before the close goes out first (a flooder's `rate_limited` errors,
        // the last frames before a shutdown).
        while let Some(item) = outbox.try_recv() {
            if let Outbound::Frame(frame) = item {
                ws.get_mut().push_text_frame(frame.as_bytes());
            }
        }
        ws.send(Message::Close(Some(frame))).await
    })
    .await;
    match sent {
        Ok(Ok(())) => {}
        // The client is gone; nothing to wait for.
        Ok(Err(_)) => return,
        // It takes nothing more: its backlog would only linger in the kernel.
        Err(_) => {
            abort_now(node, fd);
            return;
        }
    }
    let tcp = ws.get_mut().inner_mut();
    if tcp.shutdown().await.is_err() {
        return;
    }
    // Drain until the client closes its side; its answering close frame is among what is read.
    let _ = tokio::time::timeout(LINGER, async {
        let mut scratch = vec![0u8; 4096];
        let mut drained = 0usize;
        while drained < LINGER_BYTES {
            match tcp.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Resets the connection when it is dropped, and counts it.
fn abort_now(node: &Node, fd: std::os::fd::RawFd) {
    super::abort_on_close(fd);
    node.metrics.abortive_closes.inc();
}

/// Polls the codec for the next message, but only touches it when it may have one: after it
/// last said "nothing" (its buffer held no whole frame and the socket had no bytes), only the
/// socket's readiness is checked. A task woken to send a frame then skips the codec's read path.
fn next_message(
    ws: &mut Socket,
    drained: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Message, WsError>>> {
    if *drained {
        ready!(ws.get_ref().inner().poll_read_ready(cx)).ok();
        *drained = false;
    }
    match ws.poll_next_unpin(cx) {
        Poll::Pending => {
            *drained = true;
            Poll::Pending
        }
        ready => ready,
    }
}

async fn run(node: &Node, session: &Arc<Session>, outbox: &mut Outbox, ws: &mut Socket) -> End {
    // `None` when the message rate is off: the check then costs one branch.
    let mut limiter = node.limits.message_limiter();
    // Set once the client has sent its close frame: tungstenite has answered it, and no data
    // frame may follow that answer.
    let mut client_closed = false;
    let mut drained = false;
    loop {
        // Biased: reads first (a reader that floods is throttled by its own limits, and a busy
        // outbox must not starve reads, which carry the pongs), then the outbox. Pings and the
        // silence timeout come through the outbox from the node's pinger.
        tokio::select! {
            biased;
            inbound = std::future::poll_fn(|cx| next_message(ws, &mut drained, cx)) => {
                session.seen();
                let limited = match (&inbound, limiter.as_mut()) {
                    (Some(Ok(Message::Text(_) | Message::Binary(_))), Some(limiter)) => {
                        limiter.check()
                    }
                    _ => Verdict::Allow,
                };
                match limited {
                    Verdict::Allow => {}
                    Verdict::Refuse => {
                        refuse_rate_limited(node, session);
                        continue;
                    }
                    Verdict::Close => return End::Close(CloseReason::RateLimited),
                }
                match inbound {
                    Some(Ok(Message::Text(text))) => node.on_text(session, text.as_str()),
                    Some(Ok(Message::Binary(_))) => {
                        node.refuse_frame(session, ErrorCode::InvalidFormat, text::INVALID_FORMAT)
                    }
                    Some(Ok(Message::Close(_))) => {
                        // tungstenite answers the close; keep polling until the stream ends.
                        client_closed = true;
                    }
                    Some(Ok(_)) => {} // ping (answered by tungstenite), pong, raw frame
                    Some(Err(WsError::Capacity(_))) => return End::Close(CloseReason::TooBig),
                    Some(Err(WsError::Utf8(_))) => return End::Close(CloseReason::BadData),
                    Some(Err(e)) => {
                        tracing::debug!(client = %session.id, error = %e, "websocket read failed");
                        return End::Gone;
                    }
                    None => return End::Gone,
                }
            }
            item = outbox.recv() => {
                let mut close = None;
                let mut next = Some(item);
                let mut frames = 0;
                // Gather a batch straight into the socket's write buffer as whole frames; the
                // codec's own write path (and its buffer, which would keep the capacity of the
                // largest frame ever sent) is used only for its control frames.
                while let Some(item) = next.take() {
                    match item {
                        Outbound::Frame(frame) if !client_closed => {
                            ws.get_mut().push_text_frame(frame.as_bytes());
                        }
                        Outbound::Ping if !client_closed => ws.get_mut().push_frame(OP_PING, &[]),
                        Outbound::Frame(_) | Outbound::Ping => {}
                        Outbound::Close(reason) => {
                            close = Some(reason);
                            break;
                        }
                    }
                    frames += 1;
                    if frames < BATCH && ws.get_ref().pending() < BATCH_BYTES {
                        next = outbox.try_recv();
                    }
                }
                // Flush the buffer itself, not through the codec: the codec flushes its own
                // control frames (pongs, the close answer) from its read path.
                let written = tokio::select! {
                    biased;
                    r = ws.get_mut().flush() => r,
                    _ = outbox.killed(), if close.is_none() => {
                        // Asked to close while stuck on a full socket: give up on this batch.
                        return End::Close(pending_close(outbox).unwrap_or(CloseReason::SlowConsumer));
                    }
                };
                if let Err(e) = written {
                    tracing::debug!(client = %session.id, error = %e, "websocket write failed");
                    return End::Gone;
                }
                if let Some(reason) = close {
                    return End::Close(reason);
                }
            }
        }
    }
}

/// The close reason waiting in the outbox behind any frames.
fn pending_close(outbox: &mut Outbox) -> Option<CloseReason> {
    while let Some(item) = outbox.try_recv() {
        if let Outbound::Close(reason) = item {
            return Some(reason);
        }
    }
    None
}
