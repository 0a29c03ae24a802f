//! `lose_fin`: from the moment `from` sends a close frame or FIN while the
//! fault is active, nothing more from `from` is passed on on that connection
//! (data, close frame, FIN and RST are held and logged), and the relay closes
//! nothing toward the other side: it is left half-open. The held bytes are
//! never delivered (`on_remove` keeps holding: the FIN was lost).

use super::{EndAction, Fault, Stage};
use crate::events::{Direction, FrameInfo, Opcode, Side};

/// The fault.
pub struct LoseFin {
    /// Whose FIN is lost.
    pub from: Side,
}

struct LoseStage {
    triggered: bool,
}

impl Stage for LoseStage {
    fn observe_frame(&mut self, frame: &FrameInfo) {
        if frame.opcode == Opcode::Close {
            self.triggered = true;
        }
    }
    fn observe_fin(&mut self) {
        self.triggered = true;
    }
    fn holds(&self) -> bool {
        self.triggered
    }
    fn on_remove(&self) -> EndAction {
        // Lost is lost: what was held stays undelivered (and is logged as
        // discarded when the connection ends).
        if self.triggered {
            EndAction::KeepHolding
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
