//! `slice`: bytes arrive in many small TCP writes of `size` bytes (a seeded
//! draw from a range), with `gap` between writes. Bytes and order are kept.

use super::{Fault, Kind, Stage, StageCtx};
use crate::events::Direction;
use crate::scenario::{Directions, Dur, SizeRange};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `kind: slice`: many small writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slice {
    /// Bytes per write (or a range).
    pub size: SizeRange,
    /// Pause between writes.
    #[serde(default)]
    pub gap: Dur,
    /// Direction(s).
    #[serde(default)]
    pub direction: Directions,
}

struct SliceStage {
    min: u64,
    max: u64,
    gap: Duration,
}

impl Stage for SliceStage {
    fn piece(&mut self, ctx: &mut StageCtx<'_>) -> Option<(usize, Duration)> {
        let n = if self.min == self.max {
            self.min
        } else {
            ctx.rng.gen_range(self.min..=self.max)
        };
        Some((n as usize, self.gap))
    }
}

impl Fault for Slice {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        let min = self.size.min.max(1);
        self.direction.covers(dir).then(|| {
            Box::new(SliceStage {
                min,
                max: self.size.max.max(min),
                gap: self.gap.0,
            }) as Box<dyn Stage>
        })
    }
}

impl Kind for Slice {
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::testing::{ctx, rng};

    #[test]
    fn pieces_stay_in_range_and_are_seeded() {
        let s = Slice {
            size: "1..16".parse().unwrap(),
            gap: Dur(Duration::from_millis(2)),
            direction: Directions::Both,
        };
        let draw = |seed| {
            let mut st = s.stage(Direction::ToClient).unwrap();
            let mut rng = rng(seed, Direction::ToClient);
            let mut c = ctx(&mut rng, Direction::ToClient);
            (0..40).map(|_| st.piece(&mut c).unwrap()).collect::<Vec<_>>()
        };
        let a = draw(5);
        assert!(a
            .iter()
            .all(|(n, g)| (1..=16).contains(n) && *g == Duration::from_millis(2)));
        assert_eq!(a, draw(5));
    }
}
