//! `delay`: every chunk is delivered `latency ± jitter` after it was read.
//! Release times are computed from arrival instants (never one sleep per
//! chunk, so throughput is kept) and never go backwards: TCP does not reorder.

use super::{Fault, Kind, Stage, StageCtx};
use crate::events::Direction;
use crate::scenario::{Directions, Dur, FaultCheck, ScenarioError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// `kind: delay`: added latency, order kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    /// Added latency.
    pub latency: Dur,
    /// ± seeded jitter.
    #[serde(default)]
    pub jitter: Dur,
    /// Direction(s).
    #[serde(default)]
    pub direction: Directions,
}

struct DelayStage {
    latency: Duration,
    jitter: Duration,
}

impl Stage for DelayStage {
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
                latency: self.latency.0,
                jitter: self.jitter.0,
            }) as Box<dyn Stage>
        })
    }
}

impl Kind for Delay {
    fn check(&self, c: &mut FaultCheck<'_>) -> Result<(), ScenarioError> {
        let (latency, jitter) = (self.latency, self.jitter);
        if jitter > latency {
            let msg = format!(
                "{}.jitter {jitter} is above the latency {latency}, so delays range 0..{}",
                c.label(),
                Dur(latency.0 + jitter.0)
            );
            c.warn(&["jitter"], msg);
        }
        Ok(())
    }
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::testing::{ctx, rng};

    #[test]
    fn jitter_stays_in_bounds_and_is_seeded() {
        let d = Delay {
            latency: Dur(Duration::from_millis(100)),
            jitter: Dur(Duration::from_millis(20)),
            direction: Directions::Both,
        };
        let draw = |seed| {
            let mut s = d.stage(Direction::ToClient).unwrap();
            let mut rng = rng(seed, Direction::ToClient);
            let mut ctx = ctx(&mut rng, Direction::ToClient);
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
