//! `reset` (instant): TCP RST (close with SO_LINGER 0) toward one side or both.

use super::{Action, Fault, KernelEffect};
use crate::events::Side;
use crate::scenario::Toward;

/// The fault.
pub struct Reset {
    /// Who gets the RST.
    pub toward: Toward,
}

impl Fault for Reset {
    fn kernel(&self) -> Option<KernelEffect> {
        Some(KernelEffect::Reset {
            toward: self.toward,
        })
    }
    fn actions(&self) -> Vec<Action> {
        [Side::Client, Side::Server]
            .into_iter()
            .filter(|s| self.toward.covers(*s))
            .map(Action::Reset)
            .collect()
    }
}
