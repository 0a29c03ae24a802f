//! `lose_fin`: from the moment `from` sends a close frame or FIN while the
//! fault is active, nothing more from `from` is passed on on that connection
//! (data, close frame, FIN and RST are held and logged), and the relay closes
//! nothing toward the other side: it is left half-open. The held bytes are
//! never delivered: when the fault ends they stay held (the FIN was lost).

use super::{EndAction, Fault, Flow, Kind, Seen, Stage};
use crate::events::{Direction, Opcode, Side};
use serde::{Deserialize, Serialize};

/// `kind: lose_fin`: a side's goodbye never arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoseFin {
    /// Whose FIN is lost.
    pub from: Side,
}

struct LoseStage {
    triggered: bool,
}

impl Stage for LoseStage {
    fn observe(&mut self, seen: Seen<'_>) {
        match seen {
            Seen::Frame(f) if f.opcode == Opcode::Close => self.triggered = true,
            Seen::Fin => self.triggered = true,
            _ => {}
        }
    }
    fn flow(&self) -> Flow {
        if self.triggered {
            Flow::Hold
        } else {
            Flow::Pass
        }
    }
    fn on_end(&self) -> EndAction {
        // Lost is lost: what was held stays undelivered (and is logged as
        // discarded when the connection ends).
        if self.triggered {
            EndAction::HoldForever
        } else {
            EndAction::Release
        }
    }
}

impl Fault for LoseFin {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        (dir == self.from.sending())
            .then(|| Box::new(LoseStage { triggered: false }) as Box<dyn Stage>)
    }
}

impl Kind for LoseFin {
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::testing::frame;

    #[test]
    fn holds_from_the_close_frame_or_fin_for_good() {
        let l = LoseFin { from: Side::Client };
        assert!(l.stage(Direction::ToClient).is_none());
        let mut s = l.stage(Direction::ToServer).unwrap();
        s.observe(Seen::Frame(&frame(Direction::ToServer, Opcode::Text, "x")));
        assert_eq!(s.flow(), Flow::Pass);
        assert_eq!(s.on_end(), EndAction::Release);
        s.observe(Seen::Frame(&frame(Direction::ToServer, Opcode::Close, "")));
        assert_eq!(s.flow(), Flow::Hold);
        assert_eq!(s.on_end(), EndAction::HoldForever);
        let mut f = l.stage(Direction::ToServer).unwrap();
        f.observe(Seen::Fin);
        assert_eq!(f.flow(), Flow::Hold);
    }
}
