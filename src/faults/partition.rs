//! `partition`: nothing arrives in the cut direction(s) and nothing is
//! closed. Bytes, FIN and RST are held by the relay (read and logged, not
//! delivered, not discarded). At the end they are delivered in order
//! (`on_end: flush`) or thrown away with RST both ways (`on_end: reset`).
//! Holding the upgrade request of a connection accepted during the partition
//! is what gives it "no handshake answer".

use super::{EndAction, Fault, Flow, KernelEffect, Kind, Stage};
use crate::events::Direction;
use crate::scenario::Directions;
use serde::{Deserialize, Serialize};

/// `kind: partition`: a silent link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Direction(s) cut.
    #[serde(default)]
    pub direction: Directions,
    /// What happens at the end.
    #[serde(default)]
    pub on_end: OnEnd,
}

/// What a `partition` does when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnEnd {
    /// Held data is delivered in order.
    #[default]
    Flush,
    /// Both sides get RST.
    Reset,
}

struct Hold {
    on_end: OnEnd,
}

impl Stage for Hold {
    fn flow(&self) -> Flow {
        Flow::Hold
    }
    fn on_end(&self) -> EndAction {
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

impl Kind for Partition {
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_in_its_directions_only() {
        let p = Partition {
            direction: Directions::ToClient,
            on_end: OnEnd::Reset,
        };
        assert!(p.stage(Direction::ToServer).is_none());
        let s = p.stage(Direction::ToClient).unwrap();
        assert_eq!(s.flow(), Flow::Hold);
        assert_eq!(s.on_end(), EndAction::Reset);
        let flush = Partition {
            direction: Directions::Both,
            on_end: OnEnd::Flush,
        };
        assert_eq!(
            flush.stage(Direction::ToServer).unwrap().on_end(),
            EndAction::Release
        );
    }
}
