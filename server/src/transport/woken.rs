//! [`WhenWoken`]: a future polled again only when its own waker fired.
//!
//! A `select!` polls every pending branch each time its task wakes, whichever branch woke it. A
//! connection's task wakes for every request and answer, while its shutdown and kill tokens
//! almost never fire; yet each poll of a `CancellationToken`'s future takes two locks (the
//! token's tree node and its `Notify`). The profile of 10,000 polls/s put those futures at 4 %
//! of the server's instructions. Wrapped in [`WhenWoken`], such a branch costs an atomic swap
//! per wake until its own event comes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// The waker handed to the inner future: notes that it fired, then wakes the outer task.
struct Flag {
    fired: AtomicBool,
    outer: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.outer.wake();
    }
}

/// `inner`, polled on the first poll and afterwards only when the waker it registered fired.
pub struct WhenWoken<F> {
    inner: Pin<Box<F>>,
    flag: Arc<Flag>,
    waker: Waker,
}

impl<F: Future> WhenWoken<F> {
    pub fn new(inner: F) -> Self {
        let flag = Arc::new(Flag {
            fired: AtomicBool::new(true),
            outer: AtomicWaker::new(),
        });
        WhenWoken {
            inner: Box::pin(inner),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // Registered before the flag is read: a wake between the two is not lost.
        this.flag.outer.register(cx.waker());
        if !this.flag.fired.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `open` is set, waking the registered waker then.
    struct Gate {
        polls: Arc<AtomicUsize>,
        open: Arc<AtomicBool>,
        waiter: Arc<AtomicWaker>,
    }

    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            self.waiter.register(cx.waker());
            if self.open.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[test]
    fn the_inner_future_is_polled_only_after_its_own_wake() {
        let polls = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicBool::new(false));
        let waiter = Arc::new(AtomicWaker::new());
        let mut f = WhenWoken::new(Gate {
            polls: polls.clone(),
            open: open.clone(),
            waiter: waiter.clone(),
        });
        let outer_wakes = Arc::new(Counter::default());
        let outer = Waker::from(outer_wakes.clone());
        let mut cx = Context::from_waker(&outer);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        // The outer task woken for other reasons: the inner future is left alone.
        for _ in 0..5 {
            assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        // Its own event: the outer task is woken and the next poll reaches it.
        open.store(true, Ordering::SeqCst);
        waiter.wake();
        assert_eq!(outer_wakes.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_cancellation_token_still_ends_the_wait() {
        let token = tokio_util::sync::CancellationToken::new();
        let waiting = WhenWoken::new(token.clone().cancelled_owned());
        let canceller = tokio::spawn(async move { token.cancel() });
        waiting.await;
        canceller.await.unwrap();
    }

    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}
