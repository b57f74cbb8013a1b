//! The Server-Sent Events transport (`GET /events`).
//!
//! The response body is a stream over the session's outbox, with a `ping` event on an interval.
//! When the client goes away hyper drops the body, and with it the guard that closes the
//! session.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use hyper::body::Frame;
use tokio::time::{Interval, MissedTickBehavior};

use crate::admission::Admission;
use crate::node::Node;
use crate::session::{Outbound, Outbox, Session};

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

struct Stream {
    outbox: Outbox,
    ping: Interval,
    guard: Guard,
    done: bool,
}

/// Opens an SSE session, optionally tied to a user, and returns its body stream. With a token
/// the session is the token's user (`user` is then ignored) and ends when the token expires.
/// `last_event_id` (the `Last-Event-ID` header a reconnecting `EventSource` sends) asks for the
/// events missed since then.
pub fn open(
    node: Arc<Node>,
    user: Option<herald_protocol::User>,
    mut admission: Admission,
    last_event_id: Option<u64>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static {
    let (session, outbox) = node.open_sse(last_event_id, |session| {
        if admission.identity.is_some() {
            admission.attach(&node, session);
        } else if let Some(user) = user {
            node.identify(session, user);
        }
    });
    tracing::debug!(client = %session.id, "sse stream opened");
    let period = node.config.sse_ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = Stream {
        outbox,
        ping,
        guard: Guard {
            node,
            session,
            _admission: admission,
        },
        done: false,
    };
    stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        // Biased: the outbox first, so a wake-up for an event does not also poll the timer.
        let chunk = tokio::select! {
            biased;
            item = s.outbox.recv() => match item {
                Outbound::Frame(first) => {
                    // Coalesce what is already queued into one chunk; a lone event (the usual
                    // case) goes out as it is, without a copy.
                    let first = Bytes::from(first);
                    let mut joined: Option<Vec<u8>> = None;
                    while joined.as_ref().map_or(first.len(), Vec::len) < 64 * 1024 {
                        match s.outbox.try_recv() {
                            Some(Outbound::Frame(more)) => joined
                                .get_or_insert_with(|| first.to_vec())
                                .extend_from_slice(more.as_bytes()),
                            // Transport pings are for WebSockets; SSE keeps its own comment pings.
                            Some(Outbound::Ping) => {}
                            Some(Outbound::Close(_)) => {
                                s.done = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    joined.map_or(first, Bytes::from)
                }
                // (Not sent to SSE sessions; answered as the stream's own ping would be,
                // never as an empty chunk, which would end a chunked body.)
                Outbound::Ping => Bytes::from(s.guard.node.sse_ping()),
                Outbound::Close(_) => return None,
            },
            _ = s.ping.tick() => {
                s.guard.node.metrics.frames_out.inc();
                Bytes::from(s.guard.node.sse_ping())
            }
        };
        Some((Ok(Frame::data(chunk)), s))
    })
}
