//! The Server-Sent Events transport (`GET /events`).
//!
//! The response body is a stream over the session's outbox, with a `ping` event on an interval.
//! When the client goes away hyper drops the body, and with it the guard that closes the
//! session.
//!
//! A stream's connection carries nothing else (`Connection: close`), so it ends with the stream.
//! hyper polls the body only while it can write, so a stream whose client stopped reading may
//! never see the close its session was given, and once it has, hyper may never finish writing
//! the last of it. So a slow consumer's close kills the connection at once, and for any other
//! close a small watcher task gives the connection [`CLOSE_GRACE`] to end before it kills it.
//! Killing resets the connection, discarding what the kernel holds unsent, and drops the body.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use hyper::body::Frame;
use parking_lot::Mutex;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::node::Node;
use crate::session::{CloseReason, Outbound, Outbox, Session};

/// How long a closed session's stream may take to end by itself before its connection is killed.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Closes the session when the stream is dropped, however it ends.
struct Guard {
    node: Arc<Node>,
    session: Arc<Session>,
    _admission: Admission,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.node.close(&self.session);
        tracing::debug!(client = %self.session.id, "sse stream closed");
    }
}

/// The outbox, shared by the stream (which drains it) and the watcher (which waits for the
/// session's close). The lock is held only inside one poll, never across an await.
type SharedOutbox = Arc<Mutex<Outbox>>;

// The two waits below poll a future made afresh from the locked outbox. `Outbox::recv` and
// `Outbox::killed` are stateless (each poll looks at the queue and registers the waker), so a
// new future per poll loses nothing.

/// `Outbox::recv` on the shared outbox.
async fn recv(outbox: &SharedOutbox) -> Outbound {
    std::future::poll_fn(|cx| {
        let mut outbox = outbox.lock();
        let polled = std::pin::pin!(outbox.recv()).poll(cx);
        polled
    })
    .await
}

/// `Outbox::killed` on the shared outbox.
async fn killed(outbox: &SharedOutbox) {
    std::future::poll_fn(|cx| {
        let outbox = outbox.lock();
        let polled = std::pin::pin!(outbox.killed()).poll(cx);
        polled
    })
    .await
}

/// The connection's switches, from the accept loop.
pub struct ConnSwitch {
    /// Cancelled to reset the connection at once.
    pub kill: CancellationToken,
    /// Cancelled once the connection has ended.
    pub closed: CancellationToken,
}

/// Waits for the session's close; if the connection has not ended `CLOSE_GRACE` later (its
/// client is not reading, so hyper cannot finish the stream), kills it.
async fn watch(node: Arc<Node>, outbox: SharedOutbox, conn: ConnSwitch) {
    tokio::select! {
        biased;
        _ = conn.closed.cancelled() => return,
        _ = killed(&outbox) => {}
    }
    tokio::select! {
        biased;
        _ = conn.closed.cancelled() => {}
        _ = tokio::time::sleep(CLOSE_GRACE) => {
            // Stuck: find out why it was closed, then drop the connection.
            let mut reason = None;
            while let Some(item) = outbox.lock().try_recv() {
                if let Outbound::Close(r) = item {
                    reason = Some(r);
                }
            }
            if let Some(reason) = reason {
                count_close(&node, reason);
            }
            tracing::debug!(?reason, "sse stream not draining after its close: killing it");
            conn.kill.cancel();
        }
    }
}

/// Counts a stream's end in the metrics the WebSocket side also keeps.
fn count_close(node: &Node, reason: CloseReason) {
    if reason == CloseReason::SlowConsumer {
        node.metrics.slow_consumers.inc();
    }
}

struct Stream {
    outbox: SharedOutbox,
    ping: Interval,
    guard: Guard,
    /// Resets the connection (a slow consumer's).
    kill: CancellationToken,
    done: bool,
}

impl Stream {
    /// The session was closed: counts it, and resets the connection of a slow consumer, whose
    /// backlog (in hyper's buffer and the kernel's) it will not read.
    fn closing(&mut self, reason: CloseReason) {
        count_close(&self.guard.node, reason);
        if reason == CloseReason::SlowConsumer {
            self.kill.cancel();
        }
        self.done = true;
    }
}

/// Opens an SSE session, optionally tied to a user, and returns its body stream. With a token
/// the session is the token's user (`user` is then ignored) and ends when the token expires.
/// `last_event_id` (the `Last-Event-ID` header a reconnecting `EventSource` sends) asks for the
/// events missed since then.
///
/// `conn` resets the stream's connection, and says when it has ended; the response must carry
/// `Connection: close`, so that the connection ends with the stream.
pub fn open(
    node: Arc<Node>,
    user: Option<herald_protocol::User>,
    admission: Admission,
    last_event_id: Option<u64>,
    conn: ConnSwitch,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static {
    open_with(node, user, admission, last_event_id, conn, |_| {})
}

/// [`open`], then `opened` with the session once its `connect` event (and any replay) is queued:
/// what it queues (a data stream's snapshot, say) follows them.
pub fn open_with(
    node: Arc<Node>,
    user: Option<herald_protocol::User>,
    mut admission: Admission,
    last_event_id: Option<u64>,
    conn: ConnSwitch,
    opened: impl FnOnce(&Arc<Session>),
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static {
    let (session, outbox) = node.open_sse(last_event_id, |session| {
        if admission.identity.is_some() {
            admission.attach(&node, session);
        } else if let Some(user) = user {
            node.identify(session, user);
        }
    });
    opened(&session);
    tracing::debug!(client = %session.id, "sse stream opened");
    let period = node.config.sse_ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let outbox = Arc::new(Mutex::new(outbox));
    let kill = conn.kill.clone();
    tokio::spawn(watch(node.clone(), outbox.clone(), conn));
    let state = Stream {
        outbox,
        ping,
        guard: Guard {
            node,
            session,
            _admission: admission,
        },
        kill,
        done: false,
    };
    stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        // Biased: the outbox first, so a wake-up for an event does not also poll the timer.
        let chunk = tokio::select! {
            biased;
            item = recv(&s.outbox) => match item {
                Outbound::Frame(first) => {
                    // Coalesce what is already queued into one chunk; a lone event (the usual
                    // case) goes out as it is, without a copy.
                    let first = Bytes::from(first);
                    let mut joined: Option<Vec<u8>> = None;
                    let mut closing = None;
                    let mut outbox = s.outbox.lock();
                    while joined.as_ref().map_or(first.len(), Vec::len) < 64 * 1024 {
                        match outbox.try_recv() {
                            Some(Outbound::Frame(more)) => joined
                                .get_or_insert_with(|| first.to_vec())
                                .extend_from_slice(more.as_bytes()),
                            // Transport pings are for WebSockets; SSE keeps its own comment pings.
                            Some(Outbound::Ping) => {}
                            Some(Outbound::Close(reason)) => {
                                closing = Some(reason);
                                break;
                            }
                            None => break,
                        }
                    }
                    drop(outbox);
                    if let Some(reason) = closing {
                        s.closing(reason);
                    }
                    joined.map_or(first, Bytes::from)
                }
                // (Not sent to SSE sessions; answered as the stream's own ping would be,
                // never as an empty chunk, which would end a chunked body.)
                Outbound::Ping => Bytes::from(s.guard.node.sse_ping()),
                Outbound::Close(reason) => {
                    s.closing(reason);
                    return None;
                }
            },
            _ = s.ping.tick() => {
                s.guard.node.metrics.frames_out.inc();
                Bytes::from(s.guard.node.sse_ping())
            }
        };
        Some((Ok(Frame::data(chunk)), s))
    })
}
