//! `half_close` (instant): the relay sends FIN toward one side; the other
//! direction keeps working.

use super::{Action, Fault, Kind};
use crate::events::Side;
use serde::{Deserialize, Serialize};

/// `kind: half_close`: FIN toward one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HalfClose {
    /// Who gets the FIN.
    pub toward: Side,
}

impl Fault for HalfClose {
    fn actions(&self) -> Vec<Action> {
        vec![Action::Fin(self.toward)]
    }
}

impl Kind for HalfClose {
    const INSTANT: bool = true;
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fin_toward_its_side() {
        let h = HalfClose {
            toward: Side::Server,
        };
        assert_eq!(h.actions(), vec![Action::Fin(Side::Server)]);
    }
}
