//! `throttle`: bandwidth capped at `rate`. Each chunk begins when the
//! previous ones have had their share of time (computed from arrival
//! instants), in writes of about 10 ms worth of bytes.

use super::{Fault, Kind, Stage, StageCtx};
use crate::events::Direction;
use crate::scenario::{Directions, Rate};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// `kind: throttle`: a bandwidth cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Bytes per second.
    pub rate: Rate,
    /// Direction(s).
    #[serde(default)]
    pub direction: Directions,
}

struct ThrottleStage {
    bytes_per_sec: u64,
    free_at: Option<Instant>,
}

impl Stage for ThrottleStage {
    fn release(&mut self, ready: Instant, len: usize, _ctx: &mut StageCtx<'_>) -> Instant {
        let start = self.free_at.map_or(ready, |f| f.max(ready));
        let cost = Duration::from_secs_f64(len as f64 / self.bytes_per_sec as f64);
        self.free_at = Some(start + cost);
        // The chunk begins when the earlier ones have had their time; its
        // own time is spent in the paced pieces (releasing it only at
        // `start + cost` would count its time twice: half the rate).
        start
    }
    fn piece(&mut self, _ctx: &mut StageCtx<'_>) -> Option<(usize, Duration)> {
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
                bytes_per_sec: self.rate.bytes_per_sec.max(1),
                free_at: None,
            }) as Box<dyn Stage>
        })
    }
}

impl Kind for Throttle {
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::testing::{ctx, rng};

    #[test]
    fn spaces_chunks_by_rate_in_10ms_pieces() {
        let t = Throttle {
            rate: "1000B/s".parse().unwrap(),
            direction: Directions::ToServer,
        };
        assert!(t.stage(Direction::ToClient).is_none());
        let mut s = t.stage(Direction::ToServer).unwrap();
        let mut rng = rng(0, Direction::ToServer);
        let mut ctx = ctx(&mut rng, Direction::ToServer);
        let now = ctx.now;
        let a = s.release(now, 500, &mut ctx);
        let b = s.release(now, 500, &mut ctx);
        assert_eq!(a - now, Duration::ZERO);
        assert_eq!(b - now, Duration::from_millis(500));
        assert_eq!(s.piece(&mut ctx), Some((10, Duration::from_millis(10))));
    }
}
