//! Live data streams (capability `streams`): the chapter's `DataStreamer` as a server
//! capability.
//!
//! A stream is declared in the configuration (`[[streams]]`), by `--demo` (the chapter's three
//! streams), or with `POST /streams`. Producers publish points (`POST /streams/{id}/points`, or
//! the `stream.points` broker topic). Each stream keeps:
//! - its last `maxDataPoints` points, the source of the snapshot a new subscriber gets
//!   (downsampled with [`crate::lttb`] to the subscriber's `maxPoints`);
//! - its tumbling windows on event time ([`crate::windows`]) when it has a `windowMs`;
//! - a numbered log of its messages (every point and every window result has an offset in the
//!   stream's epoch), bounded like room history, from which a subscriber resumes all or nothing.
//!
//! **Cluster.** Points and API declarations go through the broker as ordered data
//! ([`Node::submit_ordered`]): the memory broker applies them at once; the Redis broker
//! publishes them on the cluster's bus, which every node reads in one order, so every node
//! numbers a stream's messages alike and delivers to its own subscribers. Every node computes
//! the windows (so a new leader carries on where the old one stopped), and only the leader
//! ([`Node::leads`], the broker's topic leader) publishes their results, again as ordered data.
//! Epochs are per node: offsets agree between nodes that saw the stream from the same start,
//! but a resume on another node than the first is answered `recovered: false` with a snapshot
//! (all or nothing holds).
//!
//! **Delivery order.** Everything about one stream happens under its lock: numbering, the log,
//! the snapshot or replay of a new subscriber and the pushes to subscribers (session queues
//! never block), so a subscriber gets its snapshot or replay, then every later message, nothing
//! missed or doubled.
//!
//! **Conflation.** A subscriber that asked for `maxRate` gets a point frame only when its rate
//! allows and its connection has (almost) nothing unsent; otherwise the point waits as the
//! subscriber's pending point, replaced by each newer one and counted. A flusher task sends
//! pending points once the subscriber may take them, with `conflated: n`. Window results go to
//! such a subscriber only while its queue is short; otherwise the latest one waits in the same
//! way (earlier ones are skipped; their offsets show the gap, and a resume fills it). So a
//! subscriber that never reads holds at most a few frames, however fast the points come; a
//! subscriber without `maxRate` gets every message, under the slow-consumer rule of any
//! connection.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use herald_protocol::limits::{DEFAULT_SNAPSHOT_POINTS, MAX_STREAM_SUBSCRIPTIONS};
use herald_protocol::stream::{
    PointIn, StreamId, StreamInfo, StreamPoint, StreamSpec, StreamValue, WindowResult, VALUE_FIELD,
};
use herald_protocol::{ClientMessage, ErrorCode, ServerMessage, StreamPosition};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::broker::BackendRequest;
use crate::history::History;
use crate::ids::new_epoch;
use crate::lttb::lttb;
use crate::node::{Capability, Node};
use crate::session::{Session, Transport, Utf8Bytes};
use crate::windows::Windows;
use crate::wire::{encode, sse_block};

/// The capability's name, under which the broker orders its data.
pub const NAME: &str = "streams";

/// What every node applies, in the broker's order.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    /// A stream declared through the API.
    Create {
        spec: StreamSpec,
        /// Set by the node whose caller waits for the outcome (a unique id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack: Option<String>,
    },
    /// Points for a stream, checked and stamped by the node that took them.
    Points {
        stream: StreamId,
        points: Vec<StreamPoint>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack: Option<String>,
    },
    /// A window's result, computed by the leading node.
    Window {
        stream: StreamId,
        window: WindowResult,
    },
    /// Nothing: when it comes back to the node that sent it, every declaration made anywhere
    /// before it was sent has come too ([`Streams::exists_synced`]).
    Sync { ack: String },
}

fn encode_op(op: &Op) -> String {
    serde_json::to_string(op).expect("stream data always serialises")
}

/// Points kept when a stream's declaration names no `maxDataPoints`.
pub const DEFAULT_MAX_DATA_POINTS: u32 = 1_000;

/// Window results kept per stream for snapshots.
const RECENT_WINDOWS: usize = 100;

/// A rate-limited subscriber gets a new frame only while it has at most this many bytes unsent.
const BACKLOG_BYTES: usize = 16 * 1024;

/// How often pending (conflated) points are looked at.
const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// Why a request about streams was refused: a code and a text, for an `error` frame or an HTTP
/// error body.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The stable code.
    pub code: ErrorCode,
    /// The text.
    pub message: String,
}

impl Refused {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refused {
            code,
            message: message.into(),
        }
    }
}

/// One kept message of a stream.
#[derive(Debug, Clone)]
enum Item {
    Point(StreamPoint),
    Window(WindowResult),
}

/// A message encoded once for every subscriber of one transport.
struct Encoded {
    json: String,
    kind: &'static str,
    ws: OnceLock<Utf8Bytes>,
    sse: OnceLock<Utf8Bytes>,
}

impl Encoded {
    fn new(message: &ServerMessage) -> Self {
        let kind = match message {
            ServerMessage::StreamPoint { .. } => "stream_point",
            ServerMessage::StreamWindow { .. } => "stream_window",
            ServerMessage::StreamSubscribed { .. } => "stream_subscribed",
            ServerMessage::StreamUnsubscribed { .. } => "stream_unsubscribed",
            _ => "error",
        };
        Encoded {
            json: serde_json::to_string(message).expect("server messages always serialise"),
            kind,
            ws: OnceLock::new(),
            sse: OnceLock::new(),
        }
    }

    fn frame(&self, transport: Transport) -> Utf8Bytes {
        match transport {
            Transport::WebSocket | Transport::Polling => self
                .ws
                .get_or_init(|| Utf8Bytes::from(self.json.clone()))
                .clone(),
            Transport::Sse => self
                .sse
                .get_or_init(|| sse_block(self.kind, None, &self.json))
                .clone(),
        }
    }
}

/// The frame of one message for one transport.
fn frame_for(transport: Transport, message: &ServerMessage) -> Utf8Bytes {
    match transport {
        Transport::WebSocket | Transport::Polling => encode(message),
        Transport::Sse => Encoded::new(message).frame(Transport::Sse),
    }
}

/// A point waiting for a rate-limited subscriber.
#[derive(Debug)]
struct Pending {
    point: StreamPoint,
    offset: u64,
    /// Points it stands for.
    folded: u64,
}

/// One subscriber of one stream.
struct Subscriber {
    session: Weak<Session>,
    transport: Transport,
    /// Least time between two point frames; `None`: every point, at once.
    interval: Option<Duration>,
    /// When the next point frame may go.
    next_at: Instant,
    pending: Option<Pending>,
    pending_window: Option<(WindowResult, u64)>,
}

impl Subscriber {
    /// Whether a rate-limited subscriber can take a frame now.
    fn ready(&self, session: &Session, now: Instant) -> bool {
        now >= self.next_at && session.queued_bytes() <= BACKLOG_BYTES
    }
}

/// One stream's state, under its lock.
struct Stream {
    spec: StreamSpec,
    max_points: usize,
    epoch: String,
    /// The offset of the latest message (0: none yet).
    last: u64,
    points: VecDeque<StreamPoint>,
    recent_windows: VecDeque<WindowResult>,
    log: History<Item>,
    windows: Option<Windows>,
    subscribers: HashMap<Arc<str>, Subscriber>,
}

impl Stream {
    fn new(spec: StreamSpec, history_ttl: Duration) -> Self {
        let max_points = spec.max_data_points.unwrap_or(DEFAULT_MAX_DATA_POINTS) as usize;
        let windows = spec.window_ms.map(|size| {
            Windows::new(
                size,
                spec.grace_ms.unwrap_or(0),
                spec.aggregates.as_deref().unwrap_or(&[]),
            )
        });
        Stream {
            max_points,
            epoch: new_epoch(),
            last: 0,
            points: VecDeque::new(),
            recent_windows: VecDeque::new(),
            log: History::new(max_points + RECENT_WINDOWS, history_ttl),
            windows,
            subscribers: HashMap::new(),
            spec,
        }
    }

    /// Numbers, keeps and delivers one point; returns how many frames went and the results of
    /// the windows it closed (which the leading node publishes, see [`Streams::apply`]).
    fn append(&mut self, point: StreamPoint, now: Instant) -> (u64, Vec<WindowResult>) {
        let closed = match &mut self.windows {
            Some(w) => w.add(point.timestamp, &point.value),
            None => Vec::new(),
        };
        self.last += 1;
        let offset = self.last;
        if self.points.len() >= self.max_points {
            self.points.pop_front();
        }
        self.points.push_back(point.clone());
        self.log.push(offset, Item::Point(point.clone()));
        (self.deliver_point(point, offset, now), closed)
    }

    /// Numbers, keeps and delivers one window result.
    fn append_window(&mut self, window: WindowResult) -> u64 {
        self.last += 1;
        let offset = self.last;
        if self.recent_windows.len() >= RECENT_WINDOWS {
            self.recent_windows.pop_front();
        }
        self.recent_windows.push_back(window.clone());
        self.log.push(offset, Item::Window(window.clone()));
        self.deliver_window(window, offset)
    }

    fn deliver_point(&mut self, point: StreamPoint, offset: u64, now: Instant) -> u64 {
        let stream = self.spec.id.clone();
        let encoded = Encoded::new(&ServerMessage::StreamPoint {
            stream,
            timestamp: point.timestamp,
            value: point.value.clone(),
            conflated: None,
            offset,
        });
        let mut sent = 0;
        self.subscribers.retain(|_, sub| {
            let Some(session) = sub.session.upgrade().filter(|s| !s.is_closing()) else {
                return false;
            };
            match sub.interval {
                None => sent += u64::from(session.push(encoded.frame(sub.transport))),
                Some(interval) => {
                    if sub.pending.is_none() && sub.ready(&session, now) {
                        sent += u64::from(session.push(encoded.frame(sub.transport)));
                        sub.next_at = now + interval;
                    } else {
                        let folded = sub.pending.as_ref().map_or(0, |p| p.folded);
                        sub.pending = Some(Pending {
                            point: point.clone(),
                            offset,
                            folded: folded + 1,
                        });
                    }
                }
            }
            true
        });
        sent
    }

    fn deliver_window(&mut self, window: WindowResult, offset: u64) -> u64 {
        let encoded = Encoded::new(&ServerMessage::StreamWindow {
            stream: self.spec.id.clone(),
            window: window.clone(),
            offset,
        });
        let mut sent = 0;
        self.subscribers.retain(|_, sub| {
            let Some(session) = sub.session.upgrade().filter(|s| !s.is_closing()) else {
                return false;
            };
            if sub.interval.is_none() || session.queued_bytes() <= BACKLOG_BYTES {
                sent += u64::from(session.push(encoded.frame(sub.transport)));
            } else {
                sub.pending_window = Some((window.clone(), offset));
            }
            true
        });
        sent
    }

    /// Sends what rate-limited subscribers may take now; returns how many frames went.
    fn flush(&mut self, now: Instant) -> u64 {
        let stream = &self.spec.id;
        let mut sent = 0;
        self.subscribers.retain(|_, sub| {
            let Some(session) = sub.session.upgrade().filter(|s| !s.is_closing()) else {
                return false;
            };
            if session.queued_bytes() > BACKLOG_BYTES {
                return true;
            }
            if let Some((window, offset)) = sub.pending_window.take() {
                let message = ServerMessage::StreamWindow {
                    stream: stream.clone(),
                    window,
                    offset,
                };
                sent += u64::from(session.push(frame_for(sub.transport, &message)));
            }
            if sub.pending.is_some() && sub.ready(&session, now) {
                let p = sub.pending.take().expect("checked");
                let message = ServerMessage::StreamPoint {
                    stream: stream.clone(),
                    timestamp: p.point.timestamp,
                    value: p.point.value,
                    conflated: (p.folded > 1).then_some(p.folded),
                    offset: p.offset,
                };
                sent += u64::from(session.push(frame_for(sub.transport, &message)));
                sub.next_at = now + sub.interval.unwrap_or_default();
            }
            true
        });
        sent
    }

    /// The snapshot: the kept points downsampled to `max`, and the recent window results.
    fn snapshot(&self, max: usize) -> (Vec<StreamPoint>, Vec<WindowResult>) {
        let field = self
            .spec
            .fields
            .as_ref()
            .and_then(|f| f.first().cloned())
            .unwrap_or_else(|| VALUE_FIELD.to_owned());
        let series: Vec<(f64, f64)> = self
            .points
            .iter()
            .map(|p| {
                (
                    p.timestamp as f64,
                    p.value.field(&field).unwrap_or(f64::NAN),
                )
            })
            .collect();
        let points = lttb(&series, max)
            .into_iter()
            .map(|i| self.points[i].clone())
            .collect();
        (points, self.recent_windows.iter().cloned().collect())
    }
}

/// Every stream of a node.
#[derive(Default)]
struct Registry {
    streams: RwLock<HashMap<StreamId, Arc<Mutex<Stream>>>>,
    flusher: OnceLock<()>,
    /// Callers waiting until their ordered data has been applied here (see [`Acked`]).
    waiting: Mutex<HashMap<String, tokio::sync::oneshot::Sender<Result<bool, Refused>>>>,
}

/// The outcome of ordered data once it has come back through the broker and been applied on
/// this node: a declaration's (`Ok(true)` created, `Ok(false)` the same existed, or a conflict),
/// or `Ok(true)` for points. By then the broker has handed it to every node in the cluster's
/// order, so the caller's next request, wherever it lands, sees it (barring that node's own
/// delay in reading the bus).
pub type Acked = tokio::sync::oneshot::Receiver<Result<bool, Refused>>;

impl Registry {
    fn get(&self, id: &StreamId) -> Option<Arc<Mutex<Stream>>> {
        self.streams.read().get(id).cloned()
    }
}

/// The streams capability.
#[derive(Default)]
pub struct Streams {
    registry: Arc<Registry>,
    /// Filled from the configuration on first use.
    loaded: OnceLock<()>,
}

impl Streams {
    /// A capability with no stream yet (the configuration's are declared on first use).
    pub fn new() -> Self {
        Self::default()
    }

    fn registry(&self, node: &Node) -> &Registry {
        self.loaded.get_or_init(|| {
            let mut specs = node.config.streams.clone();
            if node.config.demo {
                specs.extend(demo_specs());
            }
            for spec in specs {
                let outcome = check_spec(&spec).and_then(|()| self.insert(node, spec));
                if let Err(refused) = outcome {
                    tracing::warn!(message = %refused.message, "a configured stream is refused");
                }
            }
        });
        &self.registry
    }

    /// Adds a stream here; `Ok(false)` when the same declaration exists already.
    fn insert(&self, node: &Node, spec: StreamSpec) -> Result<bool, Refused> {
        let mut streams = self.registry.streams.write();
        if let Some(existing) = streams.get(&spec.id) {
            return if existing.lock().spec == spec {
                Ok(false)
            } else {
                Err(Refused::new(
                    ErrorCode::StreamConflict,
                    format!("Stream {} exists with another declaration", spec.id),
                ))
            };
        }
        let stream = Stream::new(spec.clone(), node.config.history_ttl);
        streams.insert(spec.id, Arc::new(Mutex::new(stream)));
        Ok(true)
    }

    /// Declares a stream on every node, through the broker: the first declaration of an id in
    /// the cluster's order wins everywhere. Refuses at once what this node can tell (a bad
    /// declaration, a conflicting one); otherwise the outcome comes with [`Acked`].
    pub fn create(&self, node: &Node, spec: StreamSpec) -> Result<Acked, Refused> {
        check_spec(&spec)?;
        if let Some(existing) = self.registry(node).get(&spec.id) {
            let same = existing.lock().spec == spec;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = tx.send(if same {
                Ok(false)
            } else {
                Err(conflict(&spec.id))
            });
            return if same {
                Ok(rx)
            } else {
                Err(conflict(&spec.id))
            };
        }
        let (ack, rx) = self.wait(node);
        node.submit_ordered(
            NAME,
            encode_op(&Op::Create {
                spec,
                ack: Some(ack),
            }),
        );
        Ok(rx)
    }

    /// Registers a caller that waits for its ordered data.
    fn wait(&self, node: &Node) -> (String, Acked) {
        let ack = node.next_id();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.registry.waiting.lock().insert(ack.clone(), tx);
        (ack, rx)
    }

    /// Tells the caller waiting for `ack` (on this node) the outcome.
    fn done(&self, ack: Option<String>, outcome: Result<bool, Refused>) {
        if let Some(tx) = ack.and_then(|a| self.registry.waiting.lock().remove(&a)) {
            let _ = tx.send(outcome);
        }
    }

    /// Forgets a caller that stopped waiting.
    pub fn abandon(&self, acked: Acked) {
        drop(acked);
        self.registry.waiting.lock().retain(|_, tx| !tx.is_closed());
    }

    /// Whether a stream exists.
    pub fn exists(&self, node: &Node, id: &StreamId) -> bool {
        self.registry(node).get(id).is_some()
    }

    /// Whether a stream exists, once this node has every declaration the cluster ordered before
    /// this call: a stream that another node declared (and answered `201` for) just before is
    /// found here too. Costs a round trip through the broker only when the stream is unknown.
    pub async fn exists_synced(&self, node: &Node, id: &StreamId) -> bool {
        if self.exists(node, id) || !shared_order(node) {
            return self.exists(node, id);
        }
        let (ack, rx) = self.wait(node);
        node.submit_ordered(NAME, encode_op(&Op::Sync { ack }));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await;
        self.exists(node, id)
    }

    /// The declarations of every stream, by id.
    pub fn specs(&self, node: &Node) -> Vec<StreamSpec> {
        let streams = self.registry(node).streams.read();
        let mut specs: Vec<StreamSpec> = streams.values().map(|s| s.lock().spec.clone()).collect();
        specs.sort_by(|a, b| a.id.cmp(&b.id));
        specs
    }

    /// A stream's declaration and state on this node.
    pub fn info(&self, node: &Node, id: &StreamId) -> Option<StreamInfo> {
        let stream = self.registry(node).get(id)?;
        let stream = stream.lock();
        let mut max_queued = 0;
        let mut max_queued_limited = 0;
        let mut pending = 0;
        let mut subscribers = 0;
        for sub in stream.subscribers.values() {
            if let Some(session) = sub.session.upgrade() {
                subscribers += 1;
                let queued = session.queued_bytes() as u64;
                max_queued = max_queued.max(queued);
                if sub.interval.is_some() {
                    max_queued_limited = max_queued_limited.max(queued);
                }
                pending += sub.pending.as_ref().map_or(0, |p| p.folded);
            }
        }
        Some(StreamInfo {
            spec: stream.spec.clone(),
            epoch: stream.epoch.clone(),
            offset: stream.last,
            points: stream.points.len() as u64,
            subscribers,
            max_queued_bytes: max_queued,
            max_queued_bytes_rate_limited: max_queued_limited,
            pending,
            late: stream.windows.as_ref().map_or(0, Windows::late_total),
        })
    }

    /// Publishes points into a stream: each is checked against the stream's shape (all or
    /// none are taken) and stamped with the arrival time when it has no event time; then every
    /// node (through the broker, in one order) numbers, keeps, aggregates and delivers them.
    /// Returns how many were taken.
    pub fn publish(
        &self,
        node: &Node,
        id: &StreamId,
        points: Vec<PointIn>,
    ) -> Result<usize, Refused> {
        let checked = self.check_points(node, id, points)?;
        Ok(self.submit_points(node, id, checked, None))
    }

    /// [`Streams::publish`], with the outcome once the points are applied on this node.
    pub fn publish_acked(
        &self,
        node: &Node,
        id: &StreamId,
        points: Vec<PointIn>,
    ) -> Result<(usize, Acked), Refused> {
        // Checked first, so a refusal registers no waiter.
        let checked = self.check_points(node, id, points)?;
        let (ack, rx) = self.wait(node);
        Ok((self.submit_points(node, id, checked, Some(ack)), rx))
    }

    fn check_points(
        &self,
        node: &Node,
        id: &StreamId,
        points: Vec<PointIn>,
    ) -> Result<Vec<PointIn>, Refused> {
        let Some(stream) = self.registry(node).get(id) else {
            return Err(not_found(id));
        };
        let spec = stream.lock().spec.clone();
        for (i, point) in points.iter().enumerate() {
            check_value(&spec, &point.value).map_err(|m| {
                Refused::new(ErrorCode::InvalidRequest, format!("points[{i}]: {m}"))
            })?;
        }
        Ok(points)
    }

    fn submit_points(
        &self,
        node: &Node,
        id: &StreamId,
        points: Vec<PointIn>,
        ack: Option<String>,
    ) -> usize {
        let now_ms = now_millis();
        let points: Vec<StreamPoint> = points
            .into_iter()
            .map(|p| StreamPoint {
                timestamp: p.timestamp.unwrap_or(now_ms),
                value: p.value,
            })
            .collect();
        let count = points.len();
        let op = Op::Points {
            stream: id.clone(),
            points,
            ack,
        };
        node.submit_ordered(NAME, encode_op(&op));
        count
    }

    /// Applies ordered data (from this node or another): a declaration, or points.
    fn apply(&self, node: &Node, op: Op) {
        match op {
            Op::Sync { ack } => self.done(Some(ack), Ok(false)),
            Op::Create { spec, ack } => {
                self.registry(node);
                let outcome = check_spec(&spec).and_then(|()| self.insert(node, spec));
                if let Err(refused) = &outcome {
                    tracing::debug!(message = %refused.message, "a stream declaration is refused");
                }
                self.done(ack, outcome);
            }
            Op::Points {
                stream: id,
                points,
                ack,
            } => {
                let Some(stream) = self.registry(node).get(&id) else {
                    self.done(ack, Err(not_found(&id)));
                    return tracing::warn!(stream = %id, "points for a stream this node lacks");
                };
                let now = Instant::now();
                let mut stream = stream.lock();
                let mut sent = 0;
                let mut closed = Vec::new();
                for point in points {
                    if check_value(&stream.spec, &point.value).is_ok() {
                        let (n, windows) = stream.append(point, now);
                        sent += n;
                        closed.extend(windows);
                    }
                }
                drop(stream);
                node.metrics.frames_out.inc_by(sent);
                self.done(ack, Ok(true));
                // Every node computes the windows from the same points in the same order; one
                // node, the leader, publishes their results, which every node then numbers and
                // delivers like points. (After the lock: the memory broker applies at once.)
                if node.leads() {
                    for window in closed {
                        let op = Op::Window {
                            stream: id.clone(),
                            window,
                        };
                        node.submit_ordered(NAME, encode_op(&op));
                    }
                }
            }
            Op::Window { stream: id, window } => {
                let Some(stream) = self.registry(node).get(&id) else {
                    return;
                };
                let sent = stream.lock().append_window(window);
                node.metrics.frames_out.inc_by(sent);
            }
        }
    }

    /// [`Self::subscribe`] to a stream this node does not know yet, once it has every
    /// declaration ordered before (another node may have just declared it), from a task.
    fn subscribe_synced(
        &self,
        node: &Node,
        session: &Arc<Session>,
        id: StreamId,
        max_points: Option<u32>,
        since: Option<StreamPosition>,
        max_rate: Option<f64>,
    ) {
        let (Some(node), session) = (node.owned(), session.clone()) else {
            return;
        };
        tokio::spawn(async move {
            let Some(streams) = node.capability::<Streams>() else {
                return;
            };
            streams.exists_synced(&node, &id).await;
            if let Err(refused) =
                streams.subscribe(&node, &session, &id, max_points, since, max_rate)
            {
                node.refuse(&session, refused.code, refused.message);
            }
        });
    }

    /// Subscribes a session (a WebSocket's `stream_subscribe`, or an SSE stream's `?stream=`):
    /// it gets `stream_subscribed` with a snapshot (or, resuming, the missed messages), then
    /// live messages.
    pub fn subscribe(
        &self,
        node: &Node,
        session: &Arc<Session>,
        id: &StreamId,
        max_points: Option<u32>,
        since: Option<StreamPosition>,
        max_rate: Option<f64>,
    ) -> Result<(), Refused> {
        if let Some(identity) = session.identity.get() {
            // With authentication on, the token's `rooms` claim grants streams as `stream:<id>`.
            if !identity.may_join(&format!("stream:{id}")) {
                let text = format!("You may not subscribe to stream {id}");
                return Err(Refused::new(ErrorCode::Forbidden, text));
            }
        }
        let registry = self.registry(node);
        let Some(stream) = registry.get(id) else {
            return Err(not_found(id));
        };
        let interval = match max_rate {
            Some(rate) if rate.is_finite() && rate > 0.0 => {
                self.start_flusher(node);
                Some(Duration::from_secs_f64(1.0 / rate))
            }
            Some(_) => {
                return Err(Refused::new(
                    ErrorCode::InvalidMessage,
                    "maxRate must be a positive number",
                ))
            }
            None => None,
        };
        let subscribed_elsewhere = {
            let streams = registry.streams.read();
            streams
                .iter()
                .filter(|(other, _)| *other != id)
                .filter(|(_, s)| s.lock().subscribers.contains_key(&session.id))
                .count()
        };
        if subscribed_elsewhere >= MAX_STREAM_SUBSCRIPTIONS {
            return Err(Refused::new(
                ErrorCode::SubscriptionRefused,
                format!("A connection may subscribe to at most {MAX_STREAM_SUBSCRIPTIONS} streams"),
            ));
        }
        let max = max_points.unwrap_or(DEFAULT_SNAPSHOT_POINTS) as usize;
        let mut stream = stream.lock();
        let replay = since.as_ref().and_then(|since| {
            (since.epoch == stream.epoch)
                .then(|| stream.log.complete_after(since.offset, stream.last))
                .flatten()
        });
        let (points, windows) = match &replay {
            Some(_) => (Vec::new(), Vec::new()),
            None => stream.snapshot(max),
        };
        let answer = ServerMessage::StreamSubscribed {
            stream: id.clone(),
            epoch: stream.epoch.clone(),
            offset: stream.last,
            recovered: since.as_ref().map(|_| replay.is_some()),
            fields: stream.spec.fields.clone(),
            points,
            windows,
        };
        let transport = session.transport;
        let mut sent = u64::from(session.push(frame_for(transport, &answer)));
        let first = since.as_ref().map_or(0, |s| s.offset) + 1;
        for (i, item) in replay.unwrap_or_default().into_iter().enumerate() {
            let offset = first + i as u64;
            let message = match item {
                Item::Point(p) => ServerMessage::StreamPoint {
                    stream: id.clone(),
                    timestamp: p.timestamp,
                    value: p.value,
                    conflated: None,
                    offset,
                },
                Item::Window(window) => ServerMessage::StreamWindow {
                    stream: id.clone(),
                    window,
                    offset,
                },
            };
            sent += u64::from(session.push(frame_for(transport, &message)));
        }
        stream.subscribers.insert(
            session.id.clone(),
            Subscriber {
                session: Arc::downgrade(session),
                transport,
                interval,
                next_at: Instant::now(),
                pending: None,
                pending_window: None,
            },
        );
        drop(stream);
        node.metrics.frames_out.inc_by(sent);
        Ok(())
    }

    /// Ends a session's subscription; answered with `stream_unsubscribed`.
    pub fn unsubscribe(
        &self,
        node: &Node,
        session: &Arc<Session>,
        id: &StreamId,
    ) -> Result<(), Refused> {
        let Some(stream) = self.registry(node).get(id) else {
            return Err(not_found(id));
        };
        let mut stream = stream.lock();
        if stream.subscribers.remove(&session.id).is_none() {
            return Err(Refused::new(
                ErrorCode::SubscriptionRefused,
                format!("Not subscribed to stream {id}"),
            ));
        }
        let answer = ServerMessage::StreamUnsubscribed { stream: id.clone() };
        session.push(frame_for(session.transport, &answer));
        Ok(())
    }

    /// Starts the task that sends conflated points, once.
    fn start_flusher(&self, node: &Node) {
        let _ = node;
        self.registry.flusher.get_or_init(|| {
            let registry: Weak<Registry> = Arc::downgrade(&self.registry);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(flush_loop(registry));
            }
        });
    }
}

/// Sends pending points to rate-limited subscribers as they become ready, until the registry is
/// gone.
async fn flush_loop(registry: Weak<Registry>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let streams: Vec<Arc<Mutex<Stream>>> = registry.streams.read().values().cloned().collect();
        let now = Instant::now();
        for stream in streams {
            stream.lock().flush(now);
        }
    }
}

impl Capability for Streams {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self) -> &'static [&'static str] {
        &["stream_subscribe", "stream_unsubscribe"]
    }

    fn announces(&self) -> &'static [&'static str] {
        &[herald_protocol::capability::name::STREAMS]
    }

    fn handle(&self, node: &Node, session: &Arc<Session>, message: ClientMessage) {
        let outcome = match message {
            ClientMessage::StreamSubscribe {
                stream,
                max_points,
                since,
                max_rate,
            } => {
                if !self.exists(node, &stream) && shared_order(node) {
                    return self
                        .subscribe_synced(node, session, stream, max_points, since, max_rate);
                }
                self.subscribe(node, session, &stream, max_points, since, max_rate)
            }
            ClientMessage::StreamUnsubscribe { stream } => self.unsubscribe(node, session, &stream),
            _ => return,
        };
        if let Err(refused) = outcome {
            node.refuse(session, refused.code, refused.message);
        }
    }

    fn ordered(&self, node: &Node, body: &str) {
        match serde_json::from_str::<Op>(body) {
            Ok(op) => self.apply(node, op),
            Err(e) => tracing::warn!(error = %e, "unreadable stream data from the broker"),
        }
    }

    fn backend(&self, node: &Node, request: &BackendRequest) -> bool {
        let BackendRequest::StreamPoints(topic) = request else {
            return false;
        };
        if let Err(refused) = self.publish(node, &topic.stream, topic.points.clone()) {
            tracing::warn!(stream = %topic.stream, message = %refused.message, "stream points refused");
        }
        true
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// Whether declarations reach this node through a shared broker (a cluster), where one made on
/// another node may still be on its way; the in-memory broker applies them at once.
fn shared_order(node: &Node) -> bool {
    node.config.broker.is_some()
}

fn conflict(id: &StreamId) -> Refused {
    Refused::new(
        ErrorCode::StreamConflict,
        format!("Stream {id} exists with another declaration"),
    )
}

fn not_found(id: &StreamId) -> Refused {
    Refused::new(ErrorCode::StreamNotFound, format!("No stream {id}"))
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Checks what the schema cannot: unique field names, and a grace that keeps the number of
/// open windows bounded (at most 1,000 windows' worth).
pub fn check_spec(spec: &StreamSpec) -> Result<(), Refused> {
    let invalid = |m: String| Err(Refused::new(ErrorCode::InvalidRequest, m));
    if let Some(fields) = &spec.fields {
        let mut sorted = fields.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != fields.len() {
            return invalid(format!("stream {}: field names repeat", spec.id));
        }
    }
    if let (Some(window), Some(grace)) = (spec.window_ms, spec.grace_ms) {
        if grace / window.max(1) > 1_000 {
            return invalid(format!(
                "stream {}: graceMs may be at most 1000 windows (windowMs {window})",
                spec.id
            ));
        }
    }
    if spec.grace_ms.is_some() && spec.window_ms.is_none() {
        return invalid(format!("stream {}: graceMs needs windowMs", spec.id));
    }
    Ok(())
}

/// Checks a value against the stream's shape: a number for a plain stream; for a stream with
/// fields, an object of some of them, each a finite number.
pub fn check_value(spec: &StreamSpec, value: &StreamValue) -> Result<(), String> {
    match (&spec.fields, value) {
        (None, StreamValue::Number(x)) if x.is_finite() => Ok(()),
        (None, StreamValue::Number(_)) => Err("value is not a finite number".into()),
        (None, StreamValue::Fields(_)) => Err("this stream takes numbers, not objects".into()),
        (Some(_), StreamValue::Number(_)) => Err("this stream takes objects of numbers".into()),
        (Some(fields), StreamValue::Fields(map)) => {
            for (name, x) in map {
                if !fields.iter().any(|f| f == name) {
                    return Err(format!("unknown field {name}"));
                }
                if !x.is_finite() {
                    return Err(format!("{name} is not a finite number"));
                }
            }
            Ok(())
        }
    }
}

/// The chapter's three streams, declared by `--demo`: visitors (a count every 2 s), sales (an
/// amount every 5 s) and performance (response time, throughput and error rate every 1 s), with
/// the chapter's `maxDataPoints` and aggregation, over windows of 10 s (visitors, performance)
/// and 30 s (sales).
pub fn demo_specs() -> Vec<StreamSpec> {
    use herald_protocol::stream::Aggregate;
    let spec =
        |id: &str, max, fields: Option<&[&str]>, window, aggregates: Vec<Aggregate>| StreamSpec {
            id: StreamId::from(id),
            max_data_points: Some(max),
            fields: fields.map(|f| f.iter().map(|s| (*s).to_owned()).collect()),
            window_ms: Some(window),
            grace_ms: Some(1_000),
            aggregates: Some(aggregates),
        };
    vec![
        spec(
            "visitors",
            100,
            None,
            10_000,
            vec![Aggregate::Count, Aggregate::Sum, Aggregate::Max],
        ),
        spec(
            "sales",
            50,
            None,
            30_000,
            vec![Aggregate::Count, Aggregate::Sum],
        ),
        spec(
            "performance",
            200,
            Some(&["responseTime", "throughput", "errorRate"]),
            10_000,
            vec![Aggregate::Avg, Aggregate::Min, Aggregate::Max],
        ),
    ]
}

/// The chapter's data generators, run with `--demo`: a visitor count every 2 s, a sale every
/// 5 s, performance metrics every 1 s, into [`demo_specs`]'s streams, until `stop`. In a
/// cluster only the leading node feeds them (every node delivers).
pub async fn run_demo(node: Arc<Node>, stop: tokio_util::sync::CancellationToken) {
    use rand::Rng;
    let mut visitors = tokio::time::interval(Duration::from_secs(2));
    let mut sales = tokio::time::interval(Duration::from_secs(5));
    let mut performance = tokio::time::interval(Duration::from_secs(1));
    let feed = |id: &str, value: StreamValue| {
        if !node.leads() {
            return;
        }
        let Some(streams) = node.capability::<Streams>() else {
            return;
        };
        let point = PointIn {
            timestamp: None,
            value,
        };
        if let Err(r) = streams.publish(&node, &StreamId::from(id), vec![point]) {
            tracing::warn!(stream = id, message = %r.message, "a demo point is refused");
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = visitors.tick() => {
                let n = rand::rng().random_range(10..60);
                feed("visitors", StreamValue::Number(f64::from(n)));
            }
            _ = sales.tick() => {
                let amount = rand::rng().random::<f64>() * 1000.0 + 100.0;
                feed("sales", StreamValue::Number((amount * 100.0).round() / 100.0));
            }
            _ = performance.tick() => {
                let mut rng = rand::rng();
                let mut fields = std::collections::BTreeMap::new();
                fields.insert("responseTime".to_owned(), rng.random::<f64>() * 200.0 + 50.0);
                fields.insert("throughput".to_owned(), rng.random::<f64>() * 1000.0 + 500.0);
                fields.insert("errorRate".to_owned(), rng.random::<f64>() * 5.0);
                drop(rng);
                feed("performance", StreamValue::Fields(fields));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::testing::{frames, node};
    use crate::config::Config;
    use crate::wire::Transport;

    fn plain(id: &str, max: u32, window: Option<u64>) -> StreamSpec {
        StreamSpec {
            id: StreamId::from(id),
            max_data_points: Some(max),
            fields: None,
            window_ms: window,
            grace_ms: None,
            aggregates: None,
        }
    }

    fn point(t: i64, v: f64) -> PointIn {
        PointIn {
            timestamp: Some(t),
            value: StreamValue::Number(v),
        }
    }

    /// Declares a stream; the memory broker applies it at once.
    fn created(s: &Streams, node: &Node, spec: StreamSpec) -> Result<bool, Refused> {
        let mut acked = s.create(node, spec)?;
        acked.try_recv().expect("applied at once")
    }

    fn streams(node: &Node) -> &Streams {
        node.capability::<Streams>().expect("the node runs streams")
    }

    #[test]
    fn a_subscriber_gets_a_snapshot_then_every_point_and_window_with_offsets() {
        let node = node(Config::default());
        let s = streams(&node);
        assert_eq!(created(s, &node, plain("cpu", 5, Some(100))), Ok(true));
        assert_eq!(created(s, &node, plain("cpu", 5, Some(100))), Ok(false));
        assert_eq!(
            created(s, &node, plain("cpu", 6, None)).unwrap_err().code,
            ErrorCode::StreamConflict
        );
        s.publish(
            &node,
            &"cpu".into(),
            (0..8).map(|i| point(i * 10, i as f64)).collect(),
        )
        .unwrap();
        let (session, mut outbox) = node.open(Transport::WebSocket);
        node.on_text(
            &session,
            r#"{"type":"stream_subscribe","stream":"cpu","maxPoints":3}"#,
        );
        let got = frames(&mut outbox);
        assert_eq!(got[0]["type"], "stream_subscribed");
        assert_eq!(got[0]["offset"], 8);
        // Five kept, three sent: first and last kept.
        let ts: Vec<i64> = got[0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["timestamp"].as_i64().unwrap())
            .collect();
        assert_eq!((ts.len(), ts[0], ts[2]), (3, 30, 70));
        s.publish(&node, &"cpu".into(), vec![point(150, 1.0)])
            .unwrap();
        let got = frames(&mut outbox);
        assert_eq!(got[0]["type"], "stream_point");
        assert_eq!(got[0]["offset"], 9);
        assert_eq!(got[1]["type"], "stream_window");
        assert_eq!(got[1]["window"]["count"], 8);
        assert_eq!(got[1]["offset"], 10);
    }

    #[test]
    fn resume_replays_every_missed_message_or_says_it_cannot() {
        let node = node(Config::default());
        let s = streams(&node);
        created(s, &node, plain("t", 4, None)).unwrap();
        s.publish(
            &node,
            &"t".into(),
            (0..3).map(|i| point(i, i as f64)).collect(),
        )
        .unwrap();
        let (session, mut outbox) = node.open(Transport::WebSocket);
        node.on_text(&session, r#"{"type":"stream_subscribe","stream":"t"}"#);
        let epoch = frames(&mut outbox)[0]["epoch"].as_str().unwrap().to_owned();
        node.on_text(&session, r#"{"type":"stream_unsubscribe","stream":"t"}"#);
        assert_eq!(frames(&mut outbox)[0]["type"], "stream_unsubscribed");
        s.publish(&node, &"t".into(), vec![point(5, 5.0), point(6, 6.0)])
            .unwrap();
        let resume = |offset: u64, epoch: &str| {
            format!(
                r#"{{"type":"stream_subscribe","stream":"t","since":{{"offset":{offset},"epoch":"{epoch}"}}}}"#
            )
        };
        node.on_text(&session, &resume(3, &epoch));
        let got = frames(&mut outbox);
        assert_eq!(got[0]["recovered"], true);
        assert_eq!(got[0]["points"].as_array().unwrap().len(), 0);
        let offsets: Vec<u64> = got[1..]
            .iter()
            .map(|f| f["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(offsets, [4, 5]);
        node.on_text(&session, r#"{"type":"stream_unsubscribe","stream":"t"}"#);
        frames(&mut outbox);
        // The log keeps `maxDataPoints` plus room for windows (104 here): after 120 more points
        // offset 1 is gone, so nothing is replayed, a snapshot instead.
        s.publish(
            &node,
            &"t".into(),
            (0..120).map(|i| point(i, 0.0)).collect(),
        )
        .unwrap();
        node.on_text(&session, &resume(0, &epoch));
        let got = frames(&mut outbox);
        assert_eq!(
            (got.len(), &got[0]["recovered"]),
            (1, &serde_json::json!(false))
        );
        assert_eq!(got[0]["points"].as_array().unwrap().len(), 4);
        node.on_text(&session, r#"{"type":"stream_unsubscribe","stream":"t"}"#);
        frames(&mut outbox);
        node.on_text(&session, &resume(3, "another"));
        assert_eq!(frames(&mut outbox)[0]["recovered"], false);
    }

    #[test]
    fn bad_requests_get_stable_codes() {
        let node = node(Config::default());
        let s = streams(&node);
        let (session, mut outbox) = node.open(Transport::WebSocket);
        node.on_text(&session, r#"{"type":"stream_subscribe","stream":"nope"}"#);
        node.on_text(&session, r#"{"type":"stream_unsubscribe","stream":"nope"}"#);
        node.on_text(
            &session,
            r#"{"type":"stream_subscribe","stream":"x","maxRate":0}"#,
        );
        node.on_text(
            &session,
            r#"{"type":"stream_subscribe","stream":"x","maxPoints":-1}"#,
        );
        let codes: Vec<String> = frames(&mut outbox)
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            codes,
            [
                "stream_not_found",
                "stream_not_found",
                "invalid_message",
                "invalid_message"
            ]
        );
        let mut spec = plain("obj", 10, None);
        spec.fields = Some(vec!["a".into()]);
        created(s, &node, spec).unwrap();
        let refused = s
            .publish(&node, &"obj".into(), vec![point(1, 1.0)])
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidRequest);
        let mut spec = plain("dup", 10, None);
        spec.fields = Some(vec!["a".into(), "a".into()]);
        assert!(created(s, &node, spec).is_err());
    }

    #[test]
    fn a_rate_limited_subscriber_that_does_not_read_gets_the_latest_point_conflated() {
        let node = node(Config::default());
        let s = streams(&node);
        created(s, &node, plain("fast", 100, None)).unwrap();
        let (session, mut outbox) = node.open(Transport::WebSocket);
        node.on_text(
            &session,
            r#"{"type":"stream_subscribe","stream":"fast","maxRate":1}"#,
        );
        frames(&mut outbox);
        s.publish(
            &node,
            &"fast".into(),
            (0..50).map(|i| point(i, i as f64)).collect(),
        )
        .unwrap();
        // The first point goes at once; the 49 after it wait as one.
        let got = frames(&mut outbox);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["offset"], 1);
        let stream = s.registry.get(&"fast".into()).unwrap();
        // Once the interval has passed, the flush sends the latest with its count.
        let later = Instant::now() + Duration::from_secs(2);
        stream.lock().flush(later);
        let got = frames(&mut outbox);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0]["offset"].as_u64(), got[0]["conflated"].as_u64()),
            (Some(50), Some(49))
        );
        assert_eq!(got[0]["value"], 49.0);
    }

    #[test]
    fn a_subscriber_that_never_reads_keeps_a_bounded_queue_and_every_point_is_accounted_for() {
        let node = node(Config::default());
        let s = streams(&node);
        created(s, &node, plain("flood", 1000, Some(1000))).unwrap();
        let (slow, _slow_outbox) = node.open(Transport::WebSocket);
        let (fast, mut fast_outbox) = node.open(Transport::WebSocket);
        node.on_text(
            &slow,
            r#"{"type":"stream_subscribe","stream":"flood","maxRate":1000}"#,
        );
        node.on_text(&fast, r#"{"type":"stream_subscribe","stream":"flood"}"#);
        frames(&mut fast_outbox);
        let stream = s.registry.get(&"flood".into()).unwrap();
        let start = Instant::now();
        let mut seen = 0;
        let mut last = 0;
        // 10,000 points, a millisecond apart, flushing as the task would: the slow session's
        // queue (never drained) stops growing once it passes the backlog bound.
        for i in 0..10_000i64 {
            s.publish(&node, &"flood".into(), vec![point(i, i as f64)])
                .unwrap();
            stream
                .lock()
                .flush(start + Duration::from_millis(i as u64 + 1));
            if i % 1000 == 999 {
                for f in frames(&mut fast_outbox) {
                    let offset = f["offset"].as_u64().unwrap();
                    assert_eq!(offset, last + 1, "{f}");
                    last = offset;
                    seen += u64::from(f["type"] == "stream_point");
                }
                assert!(
                    slow.queued_bytes() <= BACKLOG_BYTES + 1024,
                    "{}",
                    slow.queued_bytes()
                );
            }
        }
        // The subscriber without maxRate saw every point.
        assert_eq!(seen, 10_000);
        let info = s.info(&node, &"flood".into()).unwrap();
        assert!(info.pending > 9_000, "{info:?}");
        assert_eq!(info.subscribers, 2);
    }
}
