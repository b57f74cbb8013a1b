//! A request/answer relay between the nodes of a cluster, over Redis pub/sub: a node asks
//! another node by its relay id and gets that node's answer back. Long polling uses it so that
//! a poll or send landing on a node that does not hold the session reaches the node that does,
//! without sticky sessions in the balancer.
//!
//! Each node subscribes to its own channel `<prefix>:relay:<node>`. A question is published on
//! the owner's channel as `q <from> <id>\n<body>`; the owner runs its handler and publishes
//! `a <id>\n<answer>` on the asker's channel. Bodies are opaque bytes here. A question nobody
//! is subscribed to (the owner is gone) fails at once; one that is not answered in time fails
//! when its wait ends.
//!
//! It keeps its own Redis connections, apart from the cluster broker's, and reconnects with a
//! capped backoff when Redis goes away. Layer 3: it uses nothing of the crate.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::StreamExt;
use tokio::sync::oneshot;

/// What a node does with a question from another node: the question's body in, the answer's
/// body out.
pub type Handler = Arc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>> + Send + Sync>;

/// Why a question got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskError {
    /// No node listens under that id: it is gone (or never was).
    Gone,
    /// The owner did not answer in time.
    Timeout,
    /// Redis is unreachable from here.
    Down,
}

/// One node's end of the relay.
pub struct Relay {
    node: String,
    prefix: String,
    source: super::RedisSource,
    publisher: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    pending: DashMap<u64, oneshot::Sender<Bytes>, ahash::RandomState>,
    next: AtomicU64,
    up: AtomicBool,
}

/// The channel a node listens on.
fn channel(prefix: &str, node: &str) -> String {
    format!("{prefix}:relay:{node}")
}

/// A relay message, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A question from node `from`, numbered `id` there.
    Question {
        /// The asking node.
        from: &'a str,
        /// The question's number at the asker.
        id: u64,
        /// The question.
        body: &'a [u8],
    },
    /// The answer to this node's question `id`.
    Answer {
        /// The question's number.
        id: u64,
        /// The answer.
        body: &'a [u8],
    },
}

/// Encodes a question.
pub fn question(from: &str, id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("q {from} {id}\n").into_bytes();
    out.extend_from_slice(body);
    out
}

/// Encodes an answer.
pub fn answer(id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("a {id}\n").into_bytes();
    out.extend_from_slice(body);
    out
}

/// Parses a relay message; `None` for anything else (it is dropped).
pub fn parse(payload: &[u8]) -> Option<Message<'_>> {
    let end = payload.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&payload[..end]).ok()?;
    let body = &payload[end + 1..];
    let mut parts = head.split(' ');
    match (parts.next()?, parts.next(), parts.next(), parts.next()) {
        ("q", Some(from), Some(id), None) if !from.is_empty() => Some(Message::Question {
            from,
            id: id.parse().ok()?,
            body,
        }),
        ("a", Some(id), None, None) => Some(Message::Answer {
            id: id.parse().ok()?,
            body,
        }),
        _ => None,
    }
}

impl Relay {
    /// Starts this node's end: it listens for questions (answering them with `handler`) and
    /// answers, reconnecting as needed. Must run inside a Tokio runtime.
    pub fn start(
        source: super::RedisSource,
        prefix: &str,
        node: String,
        handler: Handler,
    ) -> anyhow::Result<Arc<Relay>> {
        let relay = Arc::new(Relay {
            node,
            prefix: prefix.to_owned(),
            source,
            publisher: tokio::sync::Mutex::new(None),
            pending: DashMap::default(),
            next: AtomicU64::new(1),
            up: AtomicBool::new(false),
        });
        tokio::spawn(listen(Arc::downgrade(&relay), handler));
        Ok(relay)
    }

    /// This node's relay id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether it is listening now.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Asks node `owner` and waits up to `wait` for its answer.
    pub async fn ask(&self, owner: &str, body: &[u8], wait: Duration) -> Result<Bytes, AskError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id, tx);
        let sent = self
            .publish(
                &channel(&self.prefix, owner),
                question(&self.node, id, body),
            )
            .await;
        match sent {
            Ok(0) => {
                self.pending.remove(&id);
                return Err(AskError::Gone);
            }
            Ok(_) => {}
            Err(_) => {
                self.pending.remove(&id);
                return Err(AskError::Down);
            }
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => {
                self.pending.remove(&id);
                Err(AskError::Timeout)
            }
        }
    }

    /// Publishes on a channel; returns how many subscribers got it.
    async fn publish(&self, channel: &str, payload: Vec<u8>) -> redis::RedisResult<i64> {
        let mut guard = self.publisher.lock().await;
        if guard.is_none() {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(5)));
            *guard = Some(
                (self.source)()
                    .await?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            );
        }
        let mut conn = guard.as_ref().expect("connected above").clone();
        drop(guard);
        let result: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut conn)
            .await;
        if result.is_err() {
            *self.publisher.lock().await = None;
        }
        result
    }
}

/// Listens on this node's channel for as long as the relay lives.
async fn listen(relay: std::sync::Weak<Relay>, handler: Handler) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(this) = relay.upgrade() else { return };
        let own = channel(&this.prefix, &this.node);
        let source = this.source.clone();
        drop(this);
        let subscribed = async {
            let mut pubsub = source().await?.get_async_pubsub().await?;
            pubsub.subscribe(&own).await?;
            redis::RedisResult::Ok(pubsub.into_on_message())
        };
        match subscribed.await {
            Ok(mut messages) => {
                backoff = Duration::from_millis(100);
                if let Some(this) = relay.upgrade() {
                    this.up.store(true, Ordering::Release);
                }
                while let Some(message) = messages.next().await {
                    let Some(this) = relay.upgrade() else { return };
                    on_message(&this, &handler, message.get_payload_bytes());
                }
                if let Some(this) = relay.upgrade() {
                    this.up.store(false, Ordering::Release);
                }
                tracing::warn!("relay subscription ended; reconnecting");
            }
            Err(e) => tracing::debug!(error = %e, "relay cannot subscribe yet"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn on_message(relay: &Arc<Relay>, handler: &Handler, payload: &[u8]) {
    match parse(payload) {
        Some(Message::Question { from, id, body }) => {
            let channel = channel(&relay.prefix, from);
            let work = handler(Bytes::copy_from_slice(body));
            let relay = relay.clone();
            tokio::spawn(async move {
                let body = work.await;
                if let Err(e) = relay.publish(&channel, answer(id, &body)).await {
                    tracing::debug!(error = %e, "relay answer not sent");
                }
            });
        }
        Some(Message::Answer { id, body }) => {
            if let Some((_, waiter)) = relay.pending.remove(&id) {
                let _ = waiter.send(Bytes::copy_from_slice(body));
            }
        }
        None => tracing::debug!("unreadable relay message dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let q = question("n1", 7, b"{\"x\":1}\nmore");
        assert_eq!(
            parse(&q),
            Some(Message::Question {
                from: "n1",
                id: 7,
                body: b"{\"x\":1}\nmore"
            })
        );
        let a = answer(9, b"");
        assert_eq!(parse(&a), Some(Message::Answer { id: 9, body: b"" }));
        for bad in [
            &b""[..],
            b"q n1 7",
            b"q n1 x\n",
            b"q  7\n",
            b"a\n",
            b"a 1 2\n",
            b"z 1\n",
            b"\xff\xfe 1\n",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
