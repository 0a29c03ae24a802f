//! A connection's command inbox: the controller's one sender, the
//! connection's one receiver.
//!
//! A connection polls its inbox every time its loop parks, which is twice
//! per relayed chunk, while commands come a few times per run. tokio's mpsc
//! receiver re-registers (clones) the task's waker and walks its block list
//! on every poll; this inbox registers the waker only after a send, the
//! close or a change of task, so an empty poll is two atomic loads.
//!
//! Dropping the [`Sender`] closes the inbox: the receiver gets what was sent
//! before, then `None` (how a connection learns that the relay stops).

use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    queue: Mutex<VecDeque<T>>,
    /// Something is queued (set under the queue's lock).
    pending: AtomicBool,
    /// The sender is gone.
    closed: AtomicBool,
    waker: AtomicWaker,
}

/// The sending half (one per inbox).
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving half.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The waker last registered, while the inbox still holds it: only a
    /// send or the close take it (and the next poll then returns `Ready`
    /// and forgets it), so a poll with the same task's waker registers
    /// nothing.
    registered: Option<Waker>,
}

/// A look at whether something waits in an inbox (a command, or the
/// close), for whoever drives the connection while its task does not poll
/// (the express lane).
pub struct Watch<T>(Arc<Shared<T>>);

impl<T> Watch<T> {
    /// A command or the close waits for the receiver.
    pub fn waiting(&self) -> bool {
        self.0.pending.load(Ordering::Acquire) || self.0.closed.load(Ordering::Acquire)
    }
}

/// A new inbox.
pub fn inbox<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        pending: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        waker: AtomicWaker::new(),
    });
    (
        Sender(shared.clone()),
        Receiver {
            shared,
            registered: None,
        },
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> Sender<T> {
    /// Queue `v` and wake the receiver.
    pub fn send(&self, v: T) {
        let mut q = lock(&self.0.queue);
        q.push_back(v);
        self.0.pending.store(true, Ordering::Release);
        drop(q);
        self.0.waker.wake();
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.waker.wake();
    }
}

impl<T> Receiver<T> {
    /// The next command, `None` once the sender is gone and all is taken,
    /// or pending (the task is woken by the next send or the close).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.register(cx);
        let got = self.take();
        if got.is_ready() {
            // A send or the close may have taken the waker: register anew.
            self.registered = None;
        }
        got
    }

    /// Ready when a command or the close waits, without taking it: it stays
    /// [`Watch::waiting`] until [`Receiver::poll_recv`] takes it.
    pub fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.register(cx);
        if self.watch().waiting() {
            self.registered = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }

    fn register(&mut self, cx: &mut Context<'_>) {
        if !self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            self.shared.waker.register(cx.waker());
            self.registered = Some(cx.waker().clone());
        }
    }

    /// A [`Watch`] on this inbox.
    pub fn watch(&self) -> Watch<T> {
        Watch(self.shared.clone())
    }

    fn take(&self) -> Poll<Option<T>> {
        let s = &self.shared;
        if s.pending.load(Ordering::Acquire) {
            let mut q = lock(&s.queue);
            let v = q.pop_front();
            if q.is_empty() {
                s.pending.store(false, Ordering::Release);
            }
            if let Some(v) = v {
                return Poll::Ready(Some(v));
            }
        }
        if s.closed.load(Ordering::Acquire) {
            // A send just before the close is still delivered.
            return Poll::Ready(lock(&s.queue).pop_front());
        }
        Poll::Pending
    }

    /// [`Receiver::poll_recv`] as a future.
    pub async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn delivers_in_order_then_none_after_close() {
        let (tx, mut rx) = inbox();
        tx.send(1);
        tx.send(2);
        assert_eq!(rx.recv().await, Some(1));
        let t = tokio::spawn(async move {
            let a = rx.recv().await;
            let b = rx.recv().await;
            let c = rx.recv().await;
            (a, b, c)
        });
        tx.send(3);
        drop(tx);
        let got = tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("receiver woken")
            .expect("task");
        assert_eq!(got, (Some(2), Some(3), None));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_parked_receiver_is_woken_by_each_send() {
        let (tx, mut rx) = inbox::<u32>();
        let t = tokio::spawn(async move {
            let mut sum = 0;
            while let Some(v) = rx.recv().await {
                sum += v;
            }
            sum
        });
        for i in 0..1000 {
            tx.send(i);
            if i % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        drop(tx);
        let sum = tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("receiver woken")
            .expect("task");
        assert_eq!(sum, (0..1000).sum::<u32>());
    }
}
