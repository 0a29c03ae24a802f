//! `slow_close` (Toxiproxy's toxic of that name): data flows untouched, but
//! a FIN or RST from the sender is passed on only `delay` after it arrived.
//! Not a scenario kind yet; `flatline serve` builds it for Toxiproxy clients.

use super::{Fault, Stage, StageCtx};
use crate::events::Direction;
use crate::scenario::Directions;
use std::time::{Duration, Instant};

/// The fault.
pub struct SlowClose {
    delay: Duration,
    direction: Directions,
}

impl SlowClose {
    /// Delay the end of the stream in `direction` by `delay`.
    pub fn new(delay: Duration, direction: Directions) -> Self {
        SlowClose { delay, direction }
    }
}

struct SlowCloseStage {
    delay: Duration,
}

impl Stage for SlowCloseStage {
    fn timed(&self) -> bool {
        true
    }
    /// Data (never empty) leaves at once; the end of the stream (FIN or RST,
    /// queued with no bytes) leaves `delay` later.
    fn release(&mut self, ready: Instant, len: usize, _ctx: &mut StageCtx<'_>) -> Instant {
        if len == 0 {
            ready + self.delay
        } else {
            ready
        }
    }
}

impl Fault for SlowClose {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction
            .covers(dir)
            .then(|| Box::new(SlowCloseStage { delay: self.delay }) as Box<dyn Stage>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{pipe_rng, test_ctx};

    #[test]
    fn only_the_end_of_the_stream_waits() {
        let f = SlowClose::new(Duration::from_millis(300), Directions::ToClient);
        assert!(f.stage(Direction::ToServer).is_none());
        let mut s = f.stage(Direction::ToClient).expect("stage");
        let mut rng = pipe_rng(0, 1, Direction::ToClient);
        let now = Instant::now();
        assert_eq!(s.release(now, 10, &mut test_ctx(&mut rng)), now);
        assert_eq!(
            s.release(now, 0, &mut test_ctx(&mut rng)),
            now + Duration::from_millis(300)
        );
    }
}
