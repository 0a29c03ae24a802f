//! `slice`: bytes arrive in many small TCP writes of `size` bytes (a seeded
//! draw from a range), with `gap` between writes. Bytes and order are kept.

use super::{Fault, Stage, StageCtx};
use crate::events::Direction;
use crate::scenario::Directions;
use rand::Rng;
use std::time::Duration;

/// The fault.
pub struct Slice {
    min: u64,
    max: u64,
    gap: Duration,
    direction: Directions,
}

impl Slice {
    /// From scenario parameters.
    pub fn new(min: u64, max: u64, gap: Duration, direction: Directions) -> Self {
        Slice {
            min: min.max(1),
            max: max.max(min.max(1)),
            gap,
            direction,
        }
    }
}

struct SliceStage {
    min: u64,
    max: u64,
    gap: Duration,
}

impl Stage for SliceStage {
    fn timed(&self) -> bool {
        true
    }
    fn write_size(&mut self, ctx: &mut StageCtx<'_>) -> Option<(usize, Duration)> {
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
        self.direction.covers(dir).then(|| {
            Box::new(SliceStage {
                min: self.min,
                max: self.max,
                gap: self.gap,
            }) as Box<dyn Stage>
        })
    }
}
