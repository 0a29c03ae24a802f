//! `slow_close` (Toxiproxy's toxic of that name): data flows untouched, but
//! a FIN from the sender is passed on only `delay` after it arrived.

use super::{Fault, Kind, Seen, Stage, StageCtx};
use crate::events::Direction;
use crate::scenario::{Directions, Dur};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// `kind: slow_close`: the end of the stream arrives late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowClose {
    /// How late the FIN is passed on.
    pub delay: Dur,
    /// Direction(s).
    #[serde(default)]
    pub direction: Directions,
}

struct SlowCloseStage {
    delay: Duration,
    closing: bool,
}

impl Stage for SlowCloseStage {
    fn observe(&mut self, seen: Seen<'_>) {
        if let Seen::Fin = seen {
            self.closing = true;
        }
    }
    /// Data leaves at once; the FIN (queued with no bytes once the sender
    /// half-closed) leaves `delay` later.
    fn release(&mut self, ready: Instant, len: usize, _ctx: &mut StageCtx<'_>) -> Instant {
        if self.closing && len == 0 {
            ready + self.delay
        } else {
            ready
        }
    }
}

impl Fault for SlowClose {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(SlowCloseStage {
                delay: self.delay.0,
                closing: false,
            }) as Box<dyn Stage>
        })
    }
}

impl Kind for SlowClose {
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::testing::{ctx, rng};

    #[test]
    fn only_the_fin_waits() {
        let f = SlowClose {
            delay: Dur(Duration::from_millis(300)),
            direction: Directions::ToClient,
        };
        assert!(f.stage(Direction::ToServer).is_none());
        let mut s = f.stage(Direction::ToClient).expect("stage");
        let mut rng = rng(0, Direction::ToClient);
        let mut c = ctx(&mut rng, Direction::ToClient);
        let now = c.now;
        assert_eq!(s.release(now, 10, &mut c), now);
        assert_eq!(s.release(now, 0, &mut c), now, "a status mark is not the end");
        s.observe(Seen::Fin);
        assert_eq!(s.release(now, 0, &mut c), now + Duration::from_millis(300));
    }
}
