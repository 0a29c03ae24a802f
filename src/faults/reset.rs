//! `reset` (instant): TCP RST (close with SO_LINGER 0) toward one side or both.

use super::{Action, Fault, KernelEffect, Kind};
use crate::events::Side;
use crate::scenario::Toward;
use serde::{Deserialize, Serialize};

/// `kind: reset`: RST now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

impl Kind for Reset {
    const INSTANT: bool = true;
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_the_sides_it_names() {
        let both = Reset {
            toward: Toward::Both,
        };
        assert_eq!(
            both.actions(),
            vec![Action::Reset(Side::Client), Action::Reset(Side::Server)]
        );
        let one = Reset {
            toward: Toward::Client,
        };
        assert_eq!(one.actions(), vec![Action::Reset(Side::Client)]);
    }
}
