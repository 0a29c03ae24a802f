//! Which leg woke a connection: each leg's read readiness is polled with a
//! waker of its own, so a wake-up polls only the legs that may have changed.
//!
//! A connection waits on both legs at once. Polling a leg's readiness that
//! is still pending costs tokio a lock on the socket's waiter list (to store
//! the waker again), and a relayed chunk used to pay that for both legs at
//! every wake-up: seven readiness polls per 64 B round trip, five of them
//! pending. With a waker per leg, a leg whose waker is registered and has
//! not fired is known to be pending and is skipped: four polls per round
//! trip, two pending (tokio's `copy_bidirectional` makes six, four pending).
//!
//! The rule that keeps this safe: a leg is skipped only while a `Pending`
//! poll registered its waker and that waker has not been woken since. A
//! `Ready` leg is polled again next time (reading may drain it); a waker
//! that fires marks its leg, then wakes the task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// One leg's waker: notes that it fired, then wakes the task.
struct LegWaker {
    fired: AtomicBool,
    task: Waker,
}

impl Wake for LegWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

/// The read-readiness wakers of a connection's two legs.
pub struct LegWakers {
    legs: [Arc<LegWaker>; 2],
    wakers: [Waker; 2],
    /// A `Pending` poll registered this leg's waker and it has not fired
    /// (as far as last seen).
    armed: [bool; 2],
}

impl LegWakers {
    /// Wakers forwarding to `task`.
    pub fn new(task: &Waker) -> LegWakers {
        let leg = || {
            Arc::new(LegWaker {
                fired: AtomicBool::new(false),
                task: task.clone(),
            })
        };
        let legs = [leg(), leg()];
        let wakers = [Waker::from(legs[0].clone()), Waker::from(legs[1].clone())];
        LegWakers {
            legs,
            wakers,
            armed: [false; 2],
        }
    }

    /// Follow the task's waker if it changed (a task keeps one waker, so
    /// this is a pointer comparison): wakers registered before still wake
    /// the old one, so every leg is polled again.
    pub fn follow(&mut self, task: &Waker) {
        if !self.legs[0].task.will_wake(task) {
            *self = LegWakers::new(task);
        }
    }

    /// Poll leg `i`'s readiness with its own waker, unless it is known to
    /// be pending.
    pub fn poll(
        &mut self,
        i: usize,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<std::io::Result<()>>,
    ) -> Poll<std::io::Result<()>> {
        let fired = &self.legs[i].fired;
        if self.armed[i] {
            if !fired.load(Ordering::Acquire) {
                return Poll::Pending;
            }
            // Cleared before polling: a wake after this is seen next time.
            fired.store(false, Ordering::Relaxed);
        }
        let r = poll(&mut Context::from_waker(&self.wakers[i]));
        self.armed[i] = r.is_pending();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A leg pending and not woken is not polled again; once its waker
    /// fires (which wakes the task) it is; a ready leg always is.
    #[test]
    fn a_pending_leg_is_polled_again_only_after_its_waker_fired() {
        let task = Arc::new(Count(AtomicUsize::new(0)));
        let mut w = LegWakers::new(&Waker::from(task.clone()));
        let polls = std::cell::Cell::new(0);
        let saved = std::cell::RefCell::new(None);
        let pending = |cx: &mut Context<'_>| {
            polls.set(polls.get() + 1);
            *saved.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        };
        assert!(w.poll(0, pending).is_pending());
        assert!(w.poll(0, pending).is_pending());
        assert_eq!(polls.get(), 1, "a registered, unfired leg is skipped");
        saved.take().unwrap().wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "the task is woken");
        assert!(w.poll(0, pending).is_pending());
        assert_eq!(polls.get(), 2, "a fired leg is polled");
        let mut ready_polls = 0;
        for _ in 0..2 {
            let r = w.poll(1, |_| {
                ready_polls += 1;
                Poll::Ready(Ok(()))
            });
            assert!(r.is_ready());
        }
        assert_eq!(ready_polls, 2, "a ready leg is polled every time");
    }

    /// A new task waker re-arms nothing: every leg is polled again.
    #[test]
    fn a_new_task_waker_polls_every_leg_again() {
        let a = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let b = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut w = LegWakers::new(&a);
        let mut polls = 0;
        assert!(w.poll(0, |_| Poll::Pending).is_pending());
        w.follow(&a);
        let _ = w.poll(0, |_| {
            polls += 1;
            Poll::Pending
        });
        assert_eq!(polls, 0);
        w.follow(&b);
        let _ = w.poll(0, |_| {
            polls += 1;
            Poll::Pending
        });
        assert_eq!(polls, 1);
    }
}
