//! `delay`: every chunk is delivered `latency ± jitter` after it was read.
//! Release times are computed from arrival instants (never one sleep per
//! chunk, so throughput is kept) and never go backwards: TCP does not reorder.

use super::{Fault, Stage, StageCtx};
use crate::events::Direction;
use crate::scenario::Directions;
use rand::Rng;
use std::time::{Duration, Instant};

/// The fault.
pub struct Delay {
    latency: Duration,
    jitter: Duration,
    direction: Directions,
}

impl Delay {
    /// From scenario parameters.
    pub fn new(latency: Duration, jitter: Duration, direction: Directions) -> Self {
        Delay {
            latency,
            jitter,
            direction,
        }
    }
}

struct DelayStage {
    latency: Duration,
    jitter: Duration,
}

impl Stage for DelayStage {
    fn timed(&self) -> bool {
        true
    }
    fn release(&mut self, ready: Instant, _len: usize, ctx: &mut StageCtx<'_>) -> Instant {
        let j = self.jitter.as_micros() as i64;
        let offset = if j > 0 { ctx.rng.gen_range(-j..=j) } else { 0 };
        let micros = (self.latency.as_micros() as i64 + offset).max(0) as u64;
        ready + Duration::from_micros(micros)
    }
}

impl Fault for Delay {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(DelayStage {
                latency: self.latency,
                jitter: self.jitter,
            }) as Box<dyn Stage>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{pipe_rng, test_ctx};

    #[test]
    fn jitter_stays_in_bounds_and_is_seeded() {
        let d = Delay::new(
            Duration::from_millis(100),
            Duration::from_millis(20),
            Directions::Both,
        );
        let draw = |seed| {
            let mut s = d.stage(Direction::ToClient).unwrap();
            let mut rng = pipe_rng(seed, 1, Direction::ToClient);
            let mut ctx = test_ctx(&mut rng);
            let now = ctx.now;
            (0..50)
                .map(|_| s.release(now, 10, &mut ctx) - now)
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert!(a
            .iter()
            .all(|d| *d >= Duration::from_millis(80) && *d <= Duration::from_millis(120)));
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
    }
}
