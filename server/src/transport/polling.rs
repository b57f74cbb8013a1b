//! The long-polling transport (`/poll`, capability `long-polling`): the frames a WebSocket
//! carries, in JSON envelopes over plain HTTP requests (`herald_protocol::polling` has the
//! envelopes and the rules).
//!
//! A polling session is a node session like any other ([`Node::open`] with
//! [`Transport::Polling`]); what the transport adds is the numbering. Frames move from the
//! session's outbox into the session's *unacknowledged* list when a poll answers them, and leave
//! it only when a later poll acknowledges them, so an answer lost on the way is answered again.
//! The list holds at most one answer's worth of frames (an answer takes at most
//! [`ANSWER_FRAMES`] frames or [`ANSWER_BYTES`] bytes), because a poll that gets new frames has
//! acknowledged every earlier one; what waits beyond it waits in the outbox, whose slow-consumer
//! rule (as on a WebSocket) ends a session that does not poll fast enough.
//!
//! One poll and one send at a time per session (an overlapping one gets `409`
//! `overlapping_request`). A task per session ends it once it has made no request for the idle
//! timeout, or once the node closes it (slow consumer, token expiry, shutdown): the session then
//! leaves its room, and its entry lingers for one hold time so that a poll crossing the close
//! still collects the last frames and the reason.
//!
//! Requests find their session by its secret id in a process-wide table (entries name their
//! node, so two nodes in one process never see each other's sessions).

use std::collections::VecDeque;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use herald_protocol::polling::{PollClosed, PollOpened, PollSend, PollSent, MAX_FRAMES_PER_SEND};
use herald_protocol::{ErrorCode, ErrorResponse};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Body;
use crate::admission::{refuse_rate_limited, Admission};
use crate::auth::Denied;
use crate::broker::relay::{AskError, Handler, Relay};
use crate::limits::{MessageLimiter, Verdict};
use crate::node::Node;
use crate::session::{CloseReason, Outbound, Outbox, Session, Transport, Utf8Bytes};

/// Frames one answer carries at most.
pub const ANSWER_FRAMES: usize = 256;

/// Bytes of frames one answer carries at most (a single larger frame still goes alone).
pub const ANSWER_BYTES: usize = 256 * 1024;

/// The secret session id's length (letters and digits: about 155 bits).
const SECRET_CHARS: usize = 30;

/// The close code a session ended by the client's `DELETE` reports to a poll that crossed it.
const CLIENT_CLOSED: u16 = 1000;

/// Every polling session of the process, by secret id.
static SESSIONS: LazyLock<DashMap<String, Arc<Polled>, ahash::RandomState>> =
    LazyLock::new(DashMap::default);

/// One polling session.
struct Polled {
    /// Its secret id (the key in [`SESSIONS`]).
    key: String,
    node: Arc<Node>,
    session: Arc<Session>,
    /// Locked only inside one poll of a future, never across an await.
    outbox: Mutex<Outbox>,
    state: Mutex<State>,
    /// A poll is in progress.
    polling: AtomicBool,
    /// A send is in progress.
    sending: AtomicBool,
    /// The node has been told the session ended (it happens once).
    ended: AtomicBool,
    /// Cancelled when the client ends the session with `DELETE`.
    deleted: CancellationToken,
    /// Held until the session ends: the connection permit, the token's expiry timer.
    admission: Mutex<Option<Admission>>,
    limiter: Mutex<Option<MessageLimiter>>,
}

struct State {
    /// Frames numbered up to this one are acknowledged and forgotten.
    acked: u64,
    /// Frames answered and not acknowledged yet, numbered `acked + 1` on.
    unacked: VecDeque<Utf8Bytes>,
    /// Why the session was closed, once the poll has reached its close in the outbox.
    closed: Option<PollClosed>,
    /// The last send applied, and its answer.
    last_send: Option<PollSent>,
    /// When the last request started or ended.
    last_active: Instant,
}

/// A refused request: its status, code and message.
pub type Refused = (StatusCode, ErrorCode, String);

// --- routing ----------------------------------------------------------------------------------

/// Serves a request under `/poll` (the caller checked that long polling is on).
///
/// `held` is called when a poll is about to be held, and what it returns is kept until the poll
/// is answered (the HTTP layer uses it so that a connection holding a poll of an admitted session
/// does not count as an unadmitted one).
pub async fn route<G>(
    node: &Arc<Node>,
    req: Request<Incoming>,
    peer: SocketAddr,
    held: impl FnOnce() -> G,
) -> Response<Body> {
    let path = req.uri().path();
    let rest = path.strip_prefix("/poll").unwrap_or("");
    if rest.is_empty() || rest == "/" {
        return match *req.method() {
            Method::POST => open(node, &req, peer),
            _ => method_not_allowed(),
        };
    }
    let key = rest.trim_start_matches('/');
    if key.contains('/') {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("No such path: {path}"),
        );
    }
    if let Err(d) = node.limits.check_origin(req.headers().get(header::ORIGIN)) {
        return denied(d);
    }
    let Some(polled) = local(node, key) else {
        // Held by another node of the cluster? Relay the request to it.
        if let Some(relay) = relay_of(node) {
            if let Some((owner, _)) = key.rsplit_once('.') {
                if owner != relay.node() {
                    let owner = owner.to_owned();
                    let key = key.to_owned();
                    return forward(node, &relay, &owner, key, req, held).await;
                }
            }
        }
        return unknown_session();
    };
    match *req.method() {
        Method::GET => {
            let ack = match ack_of(&req) {
                Ok(ack) => ack,
                Err(response) => return *response,
            };
            // Nothing more is read from the request: let it go before the hold. Its head shares
            // hyper's read buffer, and hyper reads on (to notice a client that goes away) while
            // the poll is held: a buffer still shared then is replaced by a new one, an 8 KiB
            // allocation and release per poll.
            drop(req);
            let _held = held();
            poll(&polled, ack).await
        }
        Method::POST => send(&polled, req).await,
        Method::DELETE => {
            close_by_client(&polled);
            let mut response = Response::new(full(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        _ => method_not_allowed(),
    }
}

/// The session `key` names, if this node holds it.
fn local(node: &Arc<Node>, key: &str) -> Option<Arc<Polled>> {
    SESSIONS
        .get(key)
        .map(|entry| entry.value().clone())
        .filter(|polled| Arc::ptr_eq(&polled.node, node))
}

/// A poll's `?ack=N`.
fn ack_of(req: &Request<Incoming>) -> Result<u64, Box<Response<Body>>> {
    match ack_in(req.uri().query().unwrap_or("")) {
        Some(ack) => Ok(ack),
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "A poll names the last frame it has: ?ack=N (0 before any)",
        ))),
    }
}

/// The `ack` of a query string. Every poll has one, so the usual query, digits alone, is read
/// without decoding (or allocating); anything else goes through the form decoder.
fn ack_in(query: &str) -> Option<u64> {
    let decoded = || {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "ack")
            .and_then(|(_, v)| v.parse().ok())
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key.bytes().any(|b| b == b'%' || b == b'+') {
            // A key that may decode to `ack`: the decoder decides which comes first.
            return decoded();
        }
        if key == "ack" {
            if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                return value.parse().ok();
            }
            return decoded();
        }
    }
    None
}

// --- the cluster: requests for sessions other nodes hold ---------------------------------------

/// The relays of the nodes in this process that run in a cluster, by node.
static RELAYS: LazyLock<DashMap<usize, Arc<Relay>, ahash::RandomState>> =
    LazyLock::new(DashMap::default);

fn node_key(node: &Arc<Node>) -> usize {
    Arc::as_ptr(node) as usize
}

/// Makes `node`'s polling sessions reachable from the other nodes of its cluster through
/// `relay` (whose handler must be [`relay_handler`] for the same node).
pub fn use_relay(node: &Arc<Node>, relay: Arc<Relay>) {
    RELAYS.insert(node_key(node), relay);
}

fn relay_of(node: &Arc<Node>) -> Option<Arc<Relay>> {
    RELAYS.get(&node_key(node)).map(|r| r.value().clone())
}

/// A request relayed to the node that holds its session.
#[derive(Debug, Serialize, Deserialize)]
struct Relayed {
    /// `poll`, `send` or `close`.
    op: String,
    key: String,
    #[serde(default)]
    ack: u64,
    /// A send's body (already checked for its type and size).
    #[serde(default)]
    body: String,
}

/// The holder's answer.
#[derive(Debug, Serialize, Deserialize)]
struct RelayedAnswer {
    status: u16,
    body: String,
}

/// Sends a request for a session `owner` holds to it, and answers with its answer.
async fn forward<G>(
    node: &Arc<Node>,
    relay: &Relay,
    owner: &str,
    key: String,
    req: Request<Incoming>,
    held: impl FnOnce() -> G,
) -> Response<Body> {
    let mut _held = None;
    let (op, ack, body, wait) = match *req.method() {
        Method::GET => {
            let ack = match ack_of(&req) {
                Ok(ack) => ack,
                Err(response) => return *response,
            };
            _held = Some(held());
            let wait = node.config.poll_hold + Duration::from_secs(10);
            ("poll", ack, String::new(), wait)
        }
        Method::POST => match read_send(node, req).await {
            Ok(bytes) => (
                "send",
                0,
                String::from_utf8_lossy(&bytes).into_owned(),
                Duration::from_secs(30),
            ),
            Err((status, code, message)) => return error(status, code, message),
        },
        Method::DELETE => ("close", 0, String::new(), Duration::from_secs(30)),
        _ => return method_not_allowed(),
    };
    let question = Relayed {
        op: op.to_owned(),
        key,
        ack,
        body,
    };
    let question = serde_json::to_vec(&question).expect("relayed requests serialise");
    match relay.ask(owner, &question, wait).await {
        Ok(answer) => match serde_json::from_slice::<RelayedAnswer>(&answer) {
            Ok(answer) => {
                let mut response = Response::new(full(answer.body));
                *response.status_mut() =
                    StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
                let empty = response.status() == StatusCode::NO_CONTENT;
                let headers = response.headers_mut();
                if !empty {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(_) => error(
                StatusCode::BAD_GATEWAY,
                ErrorCode::Internal,
                "The node holding this session answered something unreadable",
            ),
        },
        Err(AskError::Gone) => unknown_session(),
        Err(AskError::Timeout | AskError::Down) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            "The node holding this session cannot be reached now: retry",
        ),
    }
}

/// What a node does with requests other nodes relay to it: the same as with its own.
pub fn relay_handler(node: std::sync::Weak<Node>) -> Handler {
    Arc::new(move |question: Bytes| {
        let node = node.clone();
        Box::pin(async move {
            let response = match (node.upgrade(), serde_json::from_slice::<Relayed>(&question)) {
                (Some(node), Ok(question)) => relayed(&node, question).await,
                _ => error(
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::Internal,
                    "unreadable relayed request",
                ),
            };
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let answer = RelayedAnswer {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            Bytes::from(serde_json::to_vec(&answer).expect("answers serialise"))
        })
    })
}

/// Runs a relayed request on the session this node holds.
async fn relayed(node: &Arc<Node>, question: Relayed) -> Response<Body> {
    let Some(polled) = local(node, &question.key) else {
        return unknown_session();
    };
    match question.op.as_str() {
        "poll" => poll(&polled, question.ack).await,
        "send" => match claim(&polled, &polled.sending) {
            Some(_busy) => apply_send(&polled, question.body.as_bytes()),
            None => overlapping("send"),
        },
        "close" => {
            close_by_client(&polled);
            let mut response = Response::new(full(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "unknown relayed operation",
        ),
    }
}

// --- open -------------------------------------------------------------------------------------

/// `POST /poll`: admits the request as a WebSocket upgrade would be, opens the session and
/// answers its first frames.
fn open(node: &Arc<Node>, req: &Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let mut admission = match crate::admission::admit(node, req, peer, None) {
        Ok(admission) => admission,
        Err(d) => return denied(d),
    };
    let (session, outbox) = node.open(Transport::Polling);
    admission.attach(node, &session);
    node.welcome(&session);
    // In a cluster the id names the node that holds the session, for the others to relay to.
    let secret = crate::ids::random_token(SECRET_CHARS);
    let key = match relay_of(node) {
        Some(relay) => format!("{}.{secret}", relay.node()),
        None => secret,
    };
    let polled = Arc::new(Polled {
        key: key.clone(),
        node: node.clone(),
        session,
        outbox: Mutex::new(outbox),
        state: Mutex::new(State {
            acked: 0,
            unacked: VecDeque::new(),
            closed: None,
            last_send: None,
            last_active: Instant::now(),
        }),
        polling: AtomicBool::new(false),
        sending: AtomicBool::new(false),
        ended: AtomicBool::new(false),
        deleted: CancellationToken::new(),
        admission: Mutex::new(Some(admission)),
        limiter: Mutex::new(node.limits.message_limiter()),
    });
    SESSIONS.insert(key.clone(), polled.clone());
    tracing::debug!(client = %polled.session.id, "polling session opened");
    tokio::spawn(watch(polled.clone()));
    let (cursor, frames, _) = {
        let mut state = polled.state.lock();
        take_ready(&polled, &mut state);
        answer_frames(&state)
    };
    json(
        StatusCode::OK,
        &PollOpened {
            session: key,
            cursor,
            frames,
            hold_ms: node.config.poll_hold.as_millis() as u64,
            idle_ms: node.config.poll_idle_timeout.as_millis() as u64,
        },
    )
}

// --- poll -------------------------------------------------------------------------------------

/// Clears a flag when dropped, and notes the end of a request.
struct Busy<'a> {
    polled: &'a Polled,
    flag: &'a AtomicBool,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.polled.state.lock().last_active = Instant::now();
        self.flag.store(false, Ordering::Release);
    }
}

/// Claims a session's poll or send slot; `None` when one is in progress.
fn claim<'a>(polled: &'a Polled, flag: &'a AtomicBool) -> Option<Busy<'a>> {
    if flag.swap(true, Ordering::AcqRel) {
        return None;
    }
    // No clock here: while the flag is up the idle watch counts the session as active, and the
    // end of the request (`Busy`'s drop) sets `last_active`.
    Some(Busy { polled, flag })
}

/// `GET /poll/{session}?ack=N`.
async fn poll(polled: &Arc<Polled>, ack: u64) -> Response<Body> {
    let Some(_busy) = claim(polled, &polled.polling) else {
        return overlapping("poll");
    };
    polled.session.seen();
    {
        let mut state = polled.state.lock();
        if let Err((status, code, message)) = acknowledge(&mut state, ack) {
            return error(status, code, message);
        }
        take_ready(polled, &mut state);
        if !state.unacked.is_empty() || state.closed.is_some() {
            return poll_answer(polled, &state);
        }
    }
    if polled.ended.load(Ordering::Acquire) {
        return poll_answer(polled, &polled.state.lock());
    }
    // Nothing yet: wait for a frame (or the close), at most the hold time.
    let hold = polled.node.config.poll_hold;
    let first = tokio::select! {
        biased;
        item = recv(&polled.outbox) => Some(item),
        _ = polled.deleted.cancelled() => None,
        _ = tokio::time::sleep(hold) => None,
    };
    let linger = polled.node.config.poll_linger;
    let lingering = {
        let mut state = polled.state.lock();
        let woken = first.is_some();
        if let Some(item) = first {
            keep(polled, &mut state, item);
            take_ready(polled, &mut state);
        }
        woken && !linger.is_zero() && state.closed.is_none() && !answer_full(&state)
    };
    if lingering {
        // Let what follows the first frame join it in this answer.
        tokio::select! {
            _ = tokio::time::sleep(linger) => {}
            _ = polled.deleted.cancelled() => {}
        }
    }
    let mut state = polled.state.lock();
    if lingering {
        take_ready(polled, &mut state);
    }
    if polled.deleted.is_cancelled() && state.closed.is_none() {
        state.closed = Some(PollClosed {
            code: CLIENT_CLOSED,
            reason: "closed by the client".to_owned(),
        });
    }
    poll_answer(polled, &state)
}

/// Forgets the frames up to `ack`, or refuses an `ack` outside what was answered.
fn acknowledge(state: &mut State, ack: u64) -> Result<(), Refused> {
    let answered = state.acked + state.unacked.len() as u64;
    if ack < state.acked {
        return Err((
            StatusCode::CONFLICT,
            ErrorCode::InvalidRequest,
            format!(
                "ack {ack} is behind frame {}, which an earlier poll acknowledged",
                state.acked
            ),
        ));
    }
    if ack > answered {
        return Err((
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            format!("ack {ack} is past the last frame answered ({answered})"),
        ));
    }
    for _ in state.acked..ack {
        state.unacked.pop_front();
    }
    state.acked = ack;
    Ok(())
}

/// Moves what the outbox holds now into the unacknowledged list, within one answer's budget.
fn take_ready(polled: &Polled, state: &mut State) {
    let mut bytes: usize = state.unacked.iter().map(|f| f.len()).sum();
    while state.closed.is_none() && state.unacked.len() < ANSWER_FRAMES && bytes < ANSWER_BYTES {
        let Some(item) = polled.outbox.lock().try_recv() else {
            break;
        };
        if let Outbound::Frame(frame) = &item {
            bytes += frame.len();
        }
        keep(polled, state, item);
    }
}

/// Whether the unacknowledged frames fill one answer.
fn answer_full(state: &State) -> bool {
    state.unacked.len() >= ANSWER_FRAMES
        || state.unacked.iter().map(|f| f.len()).sum::<usize>() >= ANSWER_BYTES
}

/// Takes one outbox item into the state.
fn keep(polled: &Polled, state: &mut State, item: Outbound) {
    match item {
        Outbound::Frame(frame) => state.unacked.push_back(frame),
        // Transport pings are for WebSockets; a poll is its own liveness.
        Outbound::Ping => {}
        Outbound::Close(reason) => {
            if reason == CloseReason::SlowConsumer {
                polled.node.metrics.slow_consumers.inc();
            }
            let text = match reason {
                // The only timeout a polling session has is its idle timeout.
                CloseReason::Timeout => "idle timeout",
                other => other.text(),
            };
            state.closed = Some(PollClosed {
                code: reason.code(),
                reason: text.to_owned(),
            })
        }
    }
}

/// The frames to answer: the cursor, the frames, and whether the session is closed.
fn answer_frames(state: &State) -> (u64, Vec<Box<RawValue>>, bool) {
    let frames = state.unacked.iter().map(raw).collect();
    (
        state.acked + state.unacked.len() as u64,
        frames,
        state.closed.is_some(),
    )
}

fn poll_answer(polled: &Polled, state: &State) -> Response<Body> {
    if state.closed.is_some() {
        // The client hears why the session ended; it is gone from now on.
        finish(polled);
        SESSIONS.remove(&polled.key);
    }
    json_bytes(StatusCode::OK, answer_body(state))
}

/// The [`herald_protocol::polling::PollAnswer`] envelope of the unacknowledged frames, written directly: the frames are
/// JSON the server encoded, so they are copied as they are, where serialising a `PollAnswer`
/// would first re-parse each one into a `RawValue` (a copy, a validation and an allocation per
/// frame: 9 % of the server's instructions at one frame per poll). The bytes are the same as
/// `serde_json::to_vec` of the `PollAnswer` (a unit test compares them).
fn answer_body(state: &State) -> Vec<u8> {
    let cursor = state.acked + state.unacked.len() as u64;
    let frames: usize = state.unacked.iter().map(|f| f.len() + 1).sum();
    let mut out = Vec::with_capacity(40 + frames);
    out.extend_from_slice(b"{\"cursor\":");
    let _ = write!(out, "{cursor}");
    out.extend_from_slice(b",\"frames\":[");
    for (i, frame) in state.unacked.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(frame.as_str().as_bytes());
    }
    out.push(b']');
    if let Some(closed) = &state.closed {
        out.extend_from_slice(b",\"closed\":");
        serde_json::to_writer(&mut out, closed).expect("a close reason serialises");
    }
    out.push(b'}');
    out
}

/// A frame as raw JSON for an envelope (a frame is one JSON object, encoded by the server).
fn raw(frame: &Utf8Bytes) -> Box<RawValue> {
    RawValue::from_string(frame.as_str().to_owned()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "an encoded frame is not JSON");
        RawValue::from_string("null".to_owned()).expect("null is JSON")
    })
}

/// `Outbox::recv` on the shared outbox (the same pattern as the SSE stream's: each poll of the
/// future locks the outbox, looks at the queue and registers the waker).
async fn recv(outbox: &Mutex<Outbox>) -> Outbound {
    std::future::poll_fn(|cx| {
        let mut outbox = outbox.lock();
        let polled = std::pin::pin!(outbox.recv()).poll(cx);
        polled
    })
    .await
}

/// `Outbox::killed` on the shared outbox.
async fn killed(outbox: &Mutex<Outbox>) {
    std::future::poll_fn(|cx| {
        let outbox = outbox.lock();
        let polled = std::pin::pin!(outbox.killed()).poll(cx);
        polled
    })
    .await
}

// --- send -------------------------------------------------------------------------------------

/// `POST /poll/{session}`: applies a numbered batch of client frames once.
async fn send(polled: &Arc<Polled>, req: Request<Incoming>) -> Response<Body> {
    let Some(_busy) = claim(polled, &polled.sending) else {
        return overlapping("send");
    };
    match read_send(&polled.node, req).await {
        Ok(bytes) => apply_send(polled, &bytes),
        Err((status, code, message)) => error(status, code, message),
    }
}

/// Applies a send's body (the send slot is held by the caller).
fn apply_send(polled: &Arc<Polled>, bytes: &[u8]) -> Response<Body> {
    let node = &polled.node;
    let body = match parse_send(bytes, node.config.max_frame_bytes) {
        Ok(body) => body,
        Err((status, code, message)) => return error(status, code, message),
    };
    polled.session.seen();
    if polled.ended.load(Ordering::Acquire) || polled.session.is_closing() {
        return unknown_session();
    }
    {
        let state = polled.state.lock();
        let last = state.last_send.as_ref().map_or(0, |s| s.seq);
        if body.seq == last {
            if let Some(answer) = &state.last_send {
                // A retry of the last send: applied already, answered the same.
                return json(StatusCode::OK, answer);
            }
        }
        if body.seq != last + 1 {
            return error(
                StatusCode::CONFLICT,
                ErrorCode::InvalidRequest,
                format!(
                    "send seq {} out of order: the next is {} (or {last} to repeat the last)",
                    body.seq,
                    last + 1
                ),
            );
        }
    }
    let session = &polled.session;
    for frame in &body.frames {
        let verdict = match polled.limiter.lock().as_mut() {
            Some(limiter) => limiter.check(),
            None => Verdict::Allow,
        };
        match verdict {
            Verdict::Allow => node.on_text(session, frame.get()),
            Verdict::Refuse => refuse_rate_limited(node, session),
            Verdict::Close => {
                session.close(CloseReason::RateLimited);
                break;
            }
        }
    }
    let answer = PollSent {
        seq: body.seq,
        accepted: body.frames.len() as u64,
    };
    polled.state.lock().last_send = Some(answer.clone());
    json(StatusCode::OK, &answer)
}

/// Reads a send's body: JSON by its type, within the size limit.
async fn read_send(node: &Node, req: Request<Incoming>) -> Result<Bytes, Refused> {
    let essence = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|ct| ct.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if essence != "application/json" {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            format!(
                "Expected Content-Type application/json, got {}",
                if essence.is_empty() { "none" } else { &essence }
            ),
        ));
    }
    let frame_limit = node.config.max_frame_bytes;
    let limit = send_limit(frame_limit);
    let bytes = match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("A send's body is at most {limit} bytes"),
            ))
        }
        Err(e) => {
            return Err((
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                format!("Could not read the body: {e}"),
            ))
        }
    };
    Ok(bytes)
}

/// A send's body limit: room for a few frames of the largest size and the envelope.
pub fn send_limit(max_frame_bytes: usize) -> usize {
    max_frame_bytes.saturating_mul(4).saturating_add(1024)
}

/// Parses a send's envelope and checks its limits (socket-free, for the unit tests).
pub fn parse_send(bytes: &[u8], max_frame_bytes: usize) -> Result<PollSend, Refused> {
    let body: PollSend = serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                format!("Body is not valid JSON: {e}"),
            ),
            Category::Data => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                format!("Body is not a send envelope {{\"seq\":N,\"frames\":[...]}}: {e}"),
            ),
        }
    })?;
    if body.seq == 0 {
        return Err((
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "seq starts at 1".to_owned(),
        ));
    }
    if body.frames.is_empty() || body.frames.len() > MAX_FRAMES_PER_SEND {
        return Err((
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            format!(
                "A send carries 1 to {MAX_FRAMES_PER_SEND} frames, not {}",
                body.frames.len()
            ),
        ));
    }
    if let Some(big) = body
        .frames
        .iter()
        .position(|f| f.get().len() > max_frame_bytes)
    {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("Frame {big} is larger than {max_frame_bytes} bytes; nothing was applied"),
        ));
    }
    Ok(body)
}

// --- the end of a session ---------------------------------------------------------------------

/// Ends the session for the node once: it leaves its room, its user goes offline, its permit is
/// released.
fn finish(polled: &Polled) {
    if polled.ended.swap(true, Ordering::AcqRel) {
        return;
    }
    polled.node.close(&polled.session);
    polled.admission.lock().take();
    tracing::debug!(client = %polled.session.id, "polling session ended");
}

/// `DELETE /poll/{session}`.
fn close_by_client(polled: &Polled) {
    polled.deleted.cancel();
    finish(polled);
    SESSIONS.remove(&polled.key);
}

/// Ends the session when it has been idle past the timeout or the node closed it, then keeps
/// its entry one hold time more for a poll crossing the close.
async fn watch(polled: Arc<Polled>) {
    let idle = polled.node.config.poll_idle_timeout;
    loop {
        let deadline = polled.state.lock().last_active + idle;
        tokio::select! {
            biased;
            _ = killed(&polled.outbox) => break,
            _ = polled.deleted.cancelled() => return,
            _ = tokio::time::sleep_until(deadline) => {
                let busy = polled.polling.load(Ordering::Acquire)
                    || polled.sending.load(Ordering::Acquire);
                let last = polled.state.lock().last_active;
                if !busy && last + idle <= Instant::now() {
                    tracing::debug!(client = %polled.session.id, "polling session idle: ending it");
                    polled.node.metrics.timeouts.inc();
                    polled.session.close(CloseReason::Timeout);
                    break;
                }
                if busy {
                    polled.state.lock().last_active = Instant::now();
                }
            }
        }
    }
    finish(&polled);
    tokio::select! {
        _ = polled.deleted.cancelled() => {}
        _ = tokio::time::sleep(polled.node.config.poll_hold.max(Duration::from_secs(1))) => {}
    }
    SESSIONS.remove(&polled.key);
}

// --- answers ----------------------------------------------------------------------------------

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    json_bytes(
        status,
        serde_json::to_vec(body).expect("envelopes always serialise"),
    )
}

/// Room for every header of an answer (these two, the two CORS ones the router adds), made at
/// once instead of growing the map as they are inserted.
const ANSWER_HEADERS: usize = 4;

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = header::HeaderMap::with_capacity(ANSWER_HEADERS);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Proxies and browsers must never answer a poll from a cache.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response<Body> {
    json(status, &ErrorResponse::new(code, message))
}

fn denied(d: Denied) -> Response<Body> {
    error(d.status, d.code, d.message)
}

fn unknown_session() -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownSession,
        "No such polling session (it expired or was closed): open a new one with POST /poll",
    )
}

fn overlapping(what: &str) -> Response<Body> {
    error(
        StatusCode::CONFLICT,
        ErrorCode::OverlappingRequest,
        format!("Another {what} of this session is in progress: one at a time"),
    )
}

fn method_not_allowed() -> Response<Body> {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "Method not allowed",
    )
}

/// Polling sessions this process holds (every node's).
pub fn session_count() -> usize {
    SESSIONS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(acked: u64, unacked: &[&str]) -> State {
        State {
            acked,
            unacked: unacked
                .iter()
                .map(|s| Utf8Bytes::from((*s).to_owned()))
                .collect(),
            closed: None,
            last_send: None,
            last_active: Instant::now(),
        }
    }

    #[tokio::test]
    async fn an_ack_forgets_what_it_covers_and_a_repeat_keeps_the_rest() {
        let mut s = state(3, &["{\"n\":4}", "{\"n\":5}", "{\"n\":6}"]);
        // The same ack again (a lost answer): nothing is forgotten.
        acknowledge(&mut s, 3).unwrap();
        assert_eq!(s.unacked.len(), 3);
        acknowledge(&mut s, 5).unwrap();
        assert_eq!(s.acked, 5);
        assert_eq!(s.unacked.len(), 1);
        assert_eq!(s.unacked[0].as_str(), "{\"n\":6}");
        let (cursor, frames, closed) = answer_frames(&s);
        assert_eq!(cursor, 6);
        assert_eq!(frames.len(), 1);
        assert!(!closed);
        // Behind what was acknowledged, or past what was answered: refused.
        assert_eq!(acknowledge(&mut s, 4).unwrap_err().0, StatusCode::CONFLICT);
        assert_eq!(
            acknowledge(&mut s, 7).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        acknowledge(&mut s, 6).unwrap();
        assert!(s.unacked.is_empty());
        assert_eq!(answer_frames(&s).0, 6);
    }

    #[tokio::test]
    async fn a_written_answer_is_the_serialised_envelope() {
        use herald_protocol::polling::PollAnswer;
        let serialised = |s: &State| {
            let (cursor, frames, _) = answer_frames(s);
            serde_json::to_vec(&PollAnswer {
                cursor,
                frames,
                closed: s.closed.clone(),
            })
            .unwrap()
        };
        let mut cases = vec![
            state(0, &[]),
            state(41, &[]),
            state(7, &[r#"{"type":"chat","room":"r","text":"a \"q\" é 😀"}"#]),
            state(
                u64::MAX - 2,
                &[r#"{"type":"pong"}"#, r#"{"type":"user_left","user":"u"}"#],
            ),
        ];
        let mut closed = state(3, &[r#"{"type":"error","code":"rate_limited"}"#]);
        closed.closed = Some(PollClosed {
            code: 1008,
            reason: "slow \"consumer\"".to_owned(),
        });
        cases.push(closed);
        let mut closed_empty = state(9, &[]);
        closed_empty.closed = Some(PollClosed {
            code: 1000,
            reason: "closed by the client".to_owned(),
        });
        cases.push(closed_empty);
        for s in &cases {
            let written = answer_body(s);
            assert_eq!(
                String::from_utf8(written.clone()).unwrap(),
                String::from_utf8(serialised(s)).unwrap()
            );
            let back: PollAnswer = serde_json::from_slice(&written).unwrap();
            assert_eq!(back.cursor, s.acked + s.unacked.len() as u64);
            assert_eq!(back.frames.len(), s.unacked.len());
            assert_eq!(back.closed, s.closed);
        }
    }

    #[test]
    fn the_ack_is_read_from_any_query() {
        assert_eq!(ack_in("ack=0"), Some(0));
        assert_eq!(ack_in("ack=18446744073709551615"), Some(u64::MAX));
        assert_eq!(ack_in("x=1&ack=42&y=2"), Some(42));
        // Encoded forms still count, through the form decoder.
        assert_eq!(ack_in("%61ck=5"), Some(5));
        assert_eq!(ack_in("ack=%35"), Some(5));
        // Missing, empty, negative, not a number, too large: no ack.
        assert_eq!(ack_in(""), None);
        assert_eq!(ack_in("ack="), None);
        assert_eq!(ack_in("ack"), None);
        assert_eq!(ack_in("ack=-1"), None);
        assert_eq!(ack_in("ack=1x"), None);
        assert_eq!(ack_in("ack=18446744073709551616"), None);
        assert_eq!(ack_in("acknowledged=3"), None);
        // The first ack decides, as the form decoder reads it.
        assert_eq!(ack_in("ack=x&ack=5"), None);
        assert_eq!(ack_in("%61ck=1&ack=2"), Some(1));
    }

    #[test]
    fn send_envelopes_are_checked() {
        let ok = parse_send(
            br#"{"seq":1,"frames":[{"type":"ping"},{"type":"chat","text":"x"}]}"#,
            1024,
        )
        .unwrap();
        assert_eq!(ok.seq, 1);
        assert_eq!(ok.frames[0].get(), r#"{"type":"ping"}"#);
        let code = |body: &[u8]| parse_send(body, 64).unwrap_err().1;
        assert_eq!(code(b"{\"seq\":1,"), ErrorCode::InvalidJson);
        assert_eq!(code(b"not json"), ErrorCode::InvalidJson);
        assert_eq!(
            code(br#"{"seq":"1","frames":[{}]}"#),
            ErrorCode::InvalidRequest
        );
        assert_eq!(code(br#"{"seq":1}"#), ErrorCode::InvalidRequest);
        assert_eq!(
            code(br#"{"seq":1,"frames":[],"x":1}"#),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(br#"{"seq":0,"frames":[{}]}"#),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(br#"{"seq":-1,"frames":[{}]}"#),
            ErrorCode::InvalidRequest
        );
        assert_eq!(code(br#"{"seq":1,"frames":[]}"#), ErrorCode::InvalidRequest);
        let many = format!(
            r#"{{"seq":1,"frames":[{}]}}"#,
            vec!["1"; MAX_FRAMES_PER_SEND + 1].join(",")
        );
        assert_eq!(code(many.as_bytes()), ErrorCode::InvalidRequest);
        let big = format!(r#"{{"seq":1,"frames":["{}"]}}"#, "x".repeat(100));
        assert_eq!(code(big.as_bytes()), ErrorCode::PayloadTooLarge);
    }
}
