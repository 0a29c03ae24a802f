//! `limit`: the connection is cut (RST or FIN both ways) once `bytes` have
//! been delivered in the counted direction(s), counted from the fault's start.
//! The cut may fall inside a frame: that is its point.

use super::{CutHow, Fault, Flow, Kind, Seen, Stage, StageCtx};
use crate::events::Direction;
use crate::scenario::{ByteSize, Directions};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `kind: limit`: a byte budget, then a cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Bytes allowed.
    pub bytes: ByteSize,
    /// Direction(s) counted.
    #[serde(default)]
    pub direction: Directions,
    /// How to cut.
    #[serde(default)]
    pub then: LimitThen,
}

/// How `limit` cuts the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitThen {
    /// RST both ways.
    #[default]
    Reset,
    /// FIN both ways.
    Fin,
}

struct Budget {
    left: u64,
    then: LimitThen,
}

impl Stage for Budget {
    fn piece(&mut self, _ctx: &mut StageCtx<'_>) -> Option<(usize, Duration)> {
        Some((usize::try_from(self.left).unwrap_or(usize::MAX), Duration::ZERO))
    }
    fn observe(&mut self, seen: Seen<'_>) {
        if let Seen::Delivered(n) = seen {
            self.left = self.left.saturating_sub(n);
        }
    }
    fn flow(&self) -> Flow {
        if self.left > 0 {
            return Flow::Pass;
        }
        Flow::Cut(match self.then {
            LimitThen::Fin => CutHow::Fin,
            LimitThen::Reset => CutHow::Reset,
        })
    }
}

impl Fault for Limit {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(Budget {
                left: self.bytes.0,
                then: self.then,
            }) as Box<dyn Stage>
        })
    }
}

impl Kind for Limit {
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::testing::{ctx, rng};

    #[test]
    fn cuts_when_the_budget_is_spent() {
        let l = Limit {
            bytes: ByteSize(10),
            direction: Directions::ToClient,
            then: LimitThen::Fin,
        };
        assert!(l.stage(Direction::ToServer).is_none());
        let mut s = l.stage(Direction::ToClient).unwrap();
        let mut rng = rng(0, Direction::ToClient);
        let mut c = ctx(&mut rng, Direction::ToClient);
        assert_eq!(s.piece(&mut c), Some((10, Duration::ZERO)));
        s.observe(Seen::Delivered(7));
        assert_eq!(s.flow(), Flow::Pass);
        assert_eq!(s.piece(&mut c), Some((3, Duration::ZERO)));
        s.observe(Seen::Delivered(3));
        assert_eq!(s.flow(), Flow::Cut(CutHow::Fin));
    }
}
