//! `half_close` (instant): the relay sends FIN toward one side; the other
//! direction keeps working.

use super::{Action, Fault};
use crate::events::Side;

/// The fault.
pub struct HalfClose {
    /// Who gets the FIN.
    pub toward: Side,
}

impl Fault for HalfClose {
    fn actions(&self) -> Vec<Action> {
        vec![Action::Fin(self.toward)]
    }
}
