//! The demo client's reconnect delays: exponential backoff with seeded
//! jitter, full jitter on the first retry after a healthy connection was
//! lost, and the broken variant without any jitter.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Exponential backoff with seeded jitter: the delay before reconnect
/// attempt `n` (counting consecutive failures from 0) is
/// `min(backoff_max, backoff_min * 2^n * j)` with `j` uniform in `[1, 1.5)`.
/// Because `j < 2`, delays never shrink until they reach the cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: ChaCha8Rng,
    jitter: bool,
}

impl Backoff {
    /// A backoff between `min` and `max` (a `max` below `min` is raised to it).
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            jitter: true,
        }
    }

    /// The same without any jitter (the broken `--no-jitter` client): the
    /// delay before attempt `n` is exactly `min(backoff_max, backoff_min * 2^n)`.
    pub fn without_jitter(min: Duration, max: Duration) -> Self {
        Backoff {
            jitter: false,
            ..Backoff::new(min, max, 0)
        }
    }

    /// The delay before the first retry after a healthy connection was lost
    /// (no failure counted yet): full jitter, uniform in `[0, min)`; without
    /// jitter, `min`. Counts no failure.
    pub fn first_retry(&mut self) -> Duration {
        if !self.jitter {
            return self.min;
        }
        self.min.mul_f64(self.rng.gen_range(0.0..1.0))
    }

    /// The delay before the next attempt; counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let j = if self.jitter {
            self.rng.gen_range(1.0..1.5)
        } else {
            1.0
        };
        let factor = 2f64.powi(self.failures.min(40) as i32) * j;
        self.failures = self.failures.saturating_add(1);
        let secs = self.min.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs).max(self.min)
        }
    }

    /// Forgets the failures (after a connection that stayed open a while).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}
