//! `close` (instant): a valid WebSocket close frame is injected toward a side
//! (masked toward the server, unmasked toward the client), at a frame
//! boundary, then the TCP action: FIN both ways (the other side gets no close
//! frame: the middlebox just went away), RST both ways, or nothing.

use super::{Action, Fault, Kind};
use crate::events::Side;
use crate::frame::{close_payload, encode_frame};
use crate::scenario::{FaultCheck, ScenarioError, Toward};
use serde::{Deserialize, Serialize};

/// `kind: close`: a close frame from the middle, then a TCP action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Close {
    /// Who gets the close frame.
    pub toward: Toward,
    /// Close code (default 1000).
    #[serde(default = "default_close_code")]
    pub code: u16,
    /// Reason text.
    #[serde(default)]
    pub reason: String,
    /// TCP action after.
    #[serde(default)]
    pub then: Then,
}

fn default_close_code() -> u16 {
    1000
}

/// The TCP action after an injected close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Then {
    /// FIN both ways.
    #[default]
    Fin,
    /// RST both ways.
    Reset,
    /// Leave the connection open.
    None,
}

impl Fault for Close {
    fn actions(&self) -> Vec<Action> {
        let mut out = Vec::new();
        for side in [Side::Client, Side::Server] {
            if !self.toward.covers(side) {
                continue;
            }
            // A fixed mask keeps runs deterministic; any mask is valid.
            let mask = (side == Side::Server).then_some([0x5a, 0x1e, 0x9c, 0x33]);
            out.push(Action::Inject {
                to: side,
                bytes: encode_frame(0x8, true, &close_payload(self.code, &self.reason), mask),
                what: format!("close frame {} {:?}", self.code, self.reason),
            });
        }
        for side in [Side::Client, Side::Server] {
            match self.then {
                Then::Fin => out.push(Action::Fin(side)),
                Then::Reset => out.push(Action::Reset(side)),
                Then::None => {}
            }
        }
        out
    }
}

impl Kind for Close {
    const INSTANT: bool = true;
    fn check(&self, c: &mut FaultCheck<'_>) -> Result<(), ScenarioError> {
        c.close_code("code", self.code)?;
        if self.reason.len() > 123 {
            let msg = format!(
                "{}.reason: the close reason is {} bytes, more than fits in a close frame",
                c.label(),
                self.reason.len()
            );
            return Err(c.error(
                &["reason"],
                false,
                msg,
                Some("expected at most 123 bytes of UTF-8".into()),
            ));
        }
        Ok(())
    }
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_toward_server_only_then_acts() {
        let c = Close {
            toward: Toward::Both,
            code: 1001,
            reason: "going away".into(),
            then: Then::Reset,
        };
        let acts = c.actions();
        assert_eq!(acts.len(), 4);
        for a in &acts[..2] {
            let Action::Inject { to, bytes, .. } = a else {
                panic!()
            };
            assert_eq!(bytes[1] & 0x80 != 0, *to == Side::Server);
        }
        assert_eq!(
            acts[2..],
            [Action::Reset(Side::Client), Action::Reset(Side::Server)]
        );
    }
}
