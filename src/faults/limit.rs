//! `limit`: the connection is cut (RST or FIN both ways) once `bytes` have
//! been delivered in the counted direction(s), counted from the fault's start.
//! The cut may fall inside a frame: that is its point.

use super::{CutHow, Fault, Stage};
use crate::events::Direction;
use crate::scenario::{Directions, LimitThen};

/// The fault.
pub struct Limit {
    bytes: u64,
    direction: Directions,
    then: LimitThen,
}

impl Limit {
    /// From scenario parameters.
    pub fn new(bytes: u64, direction: Directions, then: LimitThen) -> Self {
        Limit {
            bytes,
            direction,
            then,
        }
    }
}

struct LimitStage {
    left: u64,
    then: LimitThen,
}

impl Stage for LimitStage {
    fn budget(&self) -> Option<u64> {
        Some(self.left)
    }
    fn delivered(&mut self, n: u64) {
        self.left = self.left.saturating_sub(n);
    }
    fn on_budget_spent(&self) -> Option<CutHow> {
        Some(match self.then {
            LimitThen::Fin => CutHow::Fin,
            LimitThen::Reset => CutHow::Reset,
        })
    }
}

impl Fault for Limit {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(LimitStage {
                left: self.bytes,
                then: self.then,
            }) as Box<dyn Stage>
        })
    }
}
