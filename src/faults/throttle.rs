//! `throttle`: bandwidth capped at `rate`. Each chunk leaves when the
//! previous ones have had their share of time (computed from arrival instants).

use super::{Fault, Stage, StageCtx};
use crate::events::Direction;
use crate::scenario::Directions;
use std::time::{Duration, Instant};

/// The fault.
pub struct Throttle {
    bytes_per_sec: u64,
    direction: Directions,
}

impl Throttle {
    /// From scenario parameters.
    pub fn new(bytes_per_sec: u64, direction: Directions) -> Self {
        Throttle {
            bytes_per_sec: bytes_per_sec.max(1),
            direction,
        }
    }
}

struct ThrottleStage {
    bytes_per_sec: u64,
    free_at: Option<Instant>,
}

impl Stage for ThrottleStage {
    fn timed(&self) -> bool {
        true
    }
    fn release(&mut self, ready: Instant, len: usize, _ctx: &mut StageCtx<'_>) -> Instant {
        let start = self.free_at.map_or(ready, |f| f.max(ready));
        let cost = Duration::from_secs_f64(len as f64 / self.bytes_per_sec as f64);
        self.free_at = Some(start + cost);
        // The chunk begins when the earlier ones have had their time; its
        // own time is spent in the paced pieces of `write_size` (releasing
        // it only at `start + cost` would count its time twice: half the rate).
        start
    }
    fn write_size(&mut self, _ctx: &mut StageCtx<'_>) -> Option<(usize, Duration)> {
        // Large chunks go out in pieces of about 10 ms worth of bytes.
        let piece = (self.bytes_per_sec / 100).max(1);
        Some((
            piece as usize,
            Duration::from_secs_f64(piece as f64 / self.bytes_per_sec as f64),
        ))
    }
}

impl Fault for Throttle {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(ThrottleStage {
                bytes_per_sec: self.bytes_per_sec,
                free_at: None,
            }) as Box<dyn Stage>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{pipe_rng, test_ctx};

    #[test]
    fn spaces_chunks_by_rate() {
        let t = Throttle::new(1000, Directions::Both);
        let mut s = t.stage(Direction::ToServer).unwrap();
        let mut rng = pipe_rng(0, 1, Direction::ToServer);
        let mut ctx = test_ctx(&mut rng);
        let now = ctx.now;
        let a = s.release(now, 500, &mut ctx);
        let b = s.release(now, 500, &mut ctx);
        assert_eq!(a - now, Duration::ZERO);
        assert_eq!(b - now, Duration::from_millis(500));
    }
}
