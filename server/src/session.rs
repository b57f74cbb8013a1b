//! One client connection as the rest of the server sees it, whatever its transport.
//!
//! A session owns a bounded outbound queue. Producers (the hub, the node) push already-encoded
//! frames; the transport's writer task drains them onto its socket. The queue is bounded in
//! bytes: when a client stops reading and its queue fills, the session is closed as a slow
//! consumer instead of letting memory grow or holding up everyone else.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use herald_protocol::{RoomName, User};
use parking_lot::Mutex;
use std::collections::VecDeque;

use futures_util::task::AtomicWaker;

pub use crate::wire::{CloseReason, Transport, Utf8Bytes};

/// What a session's writer receives.
#[derive(Debug)]
pub enum Outbound {
    /// An encoded frame to write as it is.
    Frame(Utf8Bytes),
    /// Send a transport-level ping (WebSocket only; the node's pinger queues it).
    Ping,
    /// Close the connection.
    Close(CloseReason),
}

/// When a session's outbound queue counts as overflowing.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Over this many queued bytes the session is behind; it may stay so for `grace`.
    pub soft: usize,
    /// Over this many queued bytes the session is dropped at once.
    pub hard: usize,
    /// How long a session may stay over `soft` while it is still draining.
    pub grace: Duration,
}

/// Milliseconds since the first call: a cheap clock for the slow-consumer grace.
fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Hands out ping slots round robin.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// Room and identity of a session; touched only by the session's own task and the node.
#[derive(Debug, Default)]
pub struct SessionState {
    /// The room the session is in, if any.
    pub room: Option<RoomName>,
    /// Who the session speaks as: from `join`, or from the token when authentication is on.
    pub user: Option<User>,
    /// Whether it asked for presence as diffs (capability `presence-diff`).
    pub presence_diff: bool,
}

/// A session as seen by the hub and the node.
#[derive(Debug)]
pub struct Session {
    /// The connection's id (`clientId` on the wire).
    pub id: Arc<str>,
    /// The transport carrying it.
    pub transport: Transport,
    /// Room and identity.
    pub state: Mutex<SessionState>,
    /// The verified token's identity, set once at connect when authentication is on.
    pub identity: std::sync::OnceLock<Arc<crate::auth::Identity>>,
    /// The outbound queue. Its first item is held inline and the rest are allocated on use and
    /// released when drained, so an idle connection holds no queue memory and the usual case, one
    /// item at a time, allocates nothing.
    queue: Mutex<Queue>,
    /// Wakes the writer when the queue gains an item. The queue has one reader, so a single
    /// waker slot does (cheaper than a `Notify`, which keeps a list of waiters under a lock).
    ready: AtomicWaker,
    queued: AtomicUsize,
    limits: QueueLimits,
    /// When the queue went over `limits.soft` (ms on [`clock_ms`]); 0 while under it.
    behind_since: AtomicU64,
    closing: AtomicBool,
    /// Wakes a writer blocked on a full socket when the session is closed.
    kill: AtomicWaker,
    /// When the client last sent anything (ms on [`clock_ms`]), for the ping timeout.
    last_seen: AtomicU64,
    /// Which of the pinger's slots this session is pinged in, so pings spread over the interval.
    pub ping_slot: u32,
}

/// A FIFO whose oldest item lives inline: one item at a time (the usual case for a connection
/// that keeps up) never allocates, and the overflow is freed as soon as it drains.
#[derive(Default, Debug)]
struct Queue {
    /// The oldest item, when there is one and it is not in `rest`.
    first: Option<Outbound>,
    /// Items after `first` (or every item, once `first` has been taken while these waited).
    rest: VecDeque<Outbound>,
}

impl Queue {
    fn push_back(&mut self, item: Outbound) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    fn pop_front(&mut self) -> Option<Outbound> {
        if let Some(item) = self.first.take() {
            return Some(item);
        }
        let item = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            self.rest = VecDeque::new();
        }
        item
    }
}

/// The receiving half a transport's writer drains.
pub struct Outbox {
    session: Arc<Session>,
}

impl Session {
    /// A new session and the outbox its transport drains.
    pub fn new(id: Arc<str>, transport: Transport, limits: QueueLimits) -> (Arc<Session>, Outbox) {
        let session = Arc::new(Session {
            id,
            transport,
            state: Mutex::new(SessionState::default()),
            identity: std::sync::OnceLock::new(),
            queue: Mutex::new(Queue::default()),
            ready: AtomicWaker::new(),
            queued: AtomicUsize::new(0),
            limits,
            behind_since: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            kill: AtomicWaker::new(),
            last_seen: AtomicU64::new(clock_ms()),
            ping_slot: NEXT_SLOT.fetch_add(1, Ordering::Relaxed) as u32,
        });
        let outbox = Outbox {
            session: session.clone(),
        };
        (session, outbox)
    }

    /// Queues an encoded frame. Returns false when the session is closing, or when this push
    /// overflowed its queue (the session is then closed as a slow consumer): that is, the queue
    /// passed the hard limit, or stayed over the soft limit for longer than the grace period.
    /// A client that reads, even if a burst (a join storm in a large room) puts it behind for a
    /// moment, is not dropped.
    pub fn push(&self, frame: Utf8Bytes) -> bool {
        if self.closing.load(Ordering::Relaxed) {
            return false;
        }
        let len = frame.len();
        let queued = self.queued.fetch_add(len, Ordering::Relaxed) + len;
        if queued > self.limits.soft && self.overflowing(queued) {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.close(CloseReason::SlowConsumer);
            return false;
        }
        self.enqueue(Outbound::Frame(frame));
        true
    }

    fn enqueue(&self, item: Outbound) {
        self.queue.lock().push_back(item);
        self.ready.wake();
    }

    fn overflowing(&self, queued: usize) -> bool {
        if queued > self.limits.hard {
            return true;
        }
        let now = clock_ms();
        match self
            .behind_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => false,
            Err(since) => now.saturating_sub(since) > self.limits.grace.as_millis() as u64,
        }
    }

    /// Asks the transport to close the connection. The first reason given wins. A writer stuck
    /// on a full socket is woken so it can give up instead of waiting forever.
    pub fn close(&self, reason: CloseReason) -> bool {
        if self.closing.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.enqueue(Outbound::Close(reason));
        self.kill.wake();
        true
    }

    /// Notes that the client sent something (a frame, a pong): it is alive.
    pub fn seen(&self) {
        self.last_seen.store(clock_ms(), Ordering::Relaxed);
    }

    /// How long the client has been silent.
    pub fn silent_for(&self) -> Duration {
        Duration::from_millis(clock_ms().saturating_sub(self.last_seen.load(Ordering::Relaxed)))
    }

    /// Queues a transport ping, unless the session is closing.
    pub fn ping(&self) {
        if !self.closing.load(Ordering::Relaxed) {
            self.enqueue(Outbound::Ping);
        }
    }

    /// Takes the queue's next item (for the session's one reader, its [`Outbox`]).
    fn take(&self) -> Option<Outbound> {
        let item = self.queue.lock().pop_front();
        if let Some(Outbound::Frame(frame)) = &item {
            let left = self.queued.fetch_sub(frame.len(), Ordering::Relaxed) - frame.len();
            if left <= self.limits.soft && self.behind_since.load(Ordering::Relaxed) != 0 {
                // Caught up: a later backlog gets a grace period of its own.
                self.behind_since.store(0, Ordering::Relaxed);
            }
        }
        item
    }

    /// Whether the session is closing.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Bytes waiting in the queue.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The user id this session speaks as, if it has an identity.
    pub fn user_id(&self) -> Option<String> {
        self.state.lock().user.as_ref().map(|u| u.id().to_owned())
    }
}

/// Polls `check` and, when it has nothing, registers for `waker` and looks once more: whatever
/// happened between the first look and the registration would otherwise wake nobody.
fn poll_waker<T>(
    waker: &AtomicWaker,
    cx: &mut std::task::Context<'_>,
    mut check: impl FnMut() -> Option<T>,
) -> std::task::Poll<T> {
    if let Some(value) = check() {
        return std::task::Poll::Ready(value);
    }
    waker.register(cx.waker());
    match check() {
        Some(value) => std::task::Poll::Ready(value),
        None => std::task::Poll::Pending,
    }
}

impl Outbox {
    /// The next item, waiting for one (cancel-safe: nothing is lost if the wait is dropped).
    pub async fn recv(&mut self) -> Outbound {
        let session = &*self.session;
        std::future::poll_fn(|cx| poll_waker(&session.ready, cx, || session.take())).await
    }

    /// The next item if one is ready now.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        self.session.take()
    }

    /// Resolves when the session has been asked to close; a writer blocked on the socket races
    /// its write against this.
    pub async fn killed(&self) {
        let session = &self.session;
        std::future::poll_fn(|cx| {
            poll_waker(&session.kill, cx, || session.is_closing().then_some(()))
        })
        .await
    }

    /// The session this outbox belongs to.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(item: Option<Outbound>) -> Option<String> {
        match item {
            Some(Outbound::Frame(f)) => Some(f.as_str().to_owned()),
            Some(other) => panic!("unexpected {other:?}"),
            None => None,
        }
    }

    #[test]
    fn queue_keeps_order_across_its_inline_slot() {
        let mut q = Queue::default();
        let frame = |s: &str| Outbound::Frame(Utf8Bytes::from(s.to_owned()));
        // One at a time: only the inline slot is used, nothing is allocated.
        q.push_back(frame("a"));
        assert_eq!(q.rest.capacity(), 0);
        assert_eq!(text(q.pop_front()).as_deref(), Some("a"));
        // A burst spills into `rest`; taking the first and pushing more must keep FIFO order
        // (new items go behind the waiting ones, not into the freed slot).
        q.push_back(frame("b"));
        q.push_back(frame("c"));
        assert_eq!(text(q.pop_front()).as_deref(), Some("b"));
        q.push_back(frame("d"));
        assert_eq!(text(q.pop_front()).as_deref(), Some("c"));
        q.push_back(frame("e"));
        assert_eq!(text(q.pop_front()).as_deref(), Some("d"));
        assert_eq!(text(q.pop_front()).as_deref(), Some("e"));
        assert_eq!(text(q.pop_front()), None);
        // Drained: the spill's memory is gone.
        assert_eq!(q.rest.capacity(), 0);
        assert!(q.first.is_none());
    }
}

#[cfg(test)]
mod grace_tests {
    use super::*;

    fn frame(len: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(len))
    }

    /// Time passes: whatever backlog the session is tracking started long ago.
    fn age(session: &Session) {
        while clock_ms() < 3 {
            std::thread::yield_now();
        }
        if session.behind_since.load(Ordering::Relaxed) != 0 {
            session.behind_since.store(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_slow_consumer_grace_starts_again_after_the_queue_drains() {
        let (session, mut outbox) = Session::new(
            "s".into(),
            Transport::WebSocket,
            QueueLimits {
                soft: 100,
                hard: 10_000,
                grace: Duration::ZERO,
            },
        );
        // A first burst puts it over the soft limit; it drains.
        assert!(session.push(frame(80)));
        assert!(session.push(frame(80)));
        while outbox.try_recv().is_some() {}
        // Long after, a second burst: a client that kept reading gets a new grace period.
        age(&session);
        assert!(
            session.push(frame(80)) && session.push(frame(80)),
            "a second backlog, long after the first drained, dropped the client at once"
        );
        assert!(!session.is_closing());
        // Staying behind past the grace still closes it.
        age(&session);
        assert!(!session.push(frame(80)));
        assert!(session.is_closing());
    }
}
