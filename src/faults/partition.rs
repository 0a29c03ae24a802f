//! `partition`: nothing arrives in the cut direction(s) and nothing is
//! closed. Bytes, FIN and RST are held by the relay (read and logged, not
//! delivered, not discarded). At the end they are delivered in order
//! (`on_end: flush`) or thrown away with RST both ways (`on_end: reset`).
//! Holding the upgrade request of a connection accepted during the partition
//! is what gives it "no handshake answer".

use super::{EndAction, Fault, KernelEffect, Stage};
use crate::events::Direction;
use crate::scenario::{Directions, OnEnd};

/// The fault.
pub struct Partition {
    direction: Directions,
    on_end: OnEnd,
}

impl Partition {
    /// From scenario parameters.
    pub fn new(direction: Directions, on_end: OnEnd) -> Self {
        Partition { direction, on_end }
    }
}

struct Hold {
    on_end: OnEnd,
}

impl Stage for Hold {
    fn holds(&self) -> bool {
        true
    }
    fn on_remove(&self) -> EndAction {
        match self.on_end {
            OnEnd::Flush => EndAction::Release,
            OnEnd::Reset => EndAction::Reset,
        }
    }
}

impl Fault for Partition {
    fn kernel(&self) -> Option<KernelEffect> {
        Some(KernelEffect::Drop {
            direction: self.direction,
            then_reset: self.on_end == OnEnd::Reset,
        })
    }
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(Hold {
                on_end: self.on_end,
            }) as Box<dyn Stage>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_in_its_directions_only() {
        let p = Partition::new(Directions::ToClient, OnEnd::Reset);
        assert!(p.stage(Direction::ToServer).is_none());
        let s = p.stage(Direction::ToClient).unwrap();
        assert!(s.holds());
        assert_eq!(s.on_remove(), EndAction::Reset);
    }
}
