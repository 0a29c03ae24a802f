//! `close` (instant): a valid WebSocket close frame is injected toward a side
//! (masked toward the server, unmasked toward the client), at a frame
//! boundary, then the TCP action: FIN both ways (the other side gets no close
//! frame: the middlebox just went away), RST both ways, or nothing.

use super::{Action, Fault};
use crate::events::Side;
use crate::frame::{close_payload, encode_frame};
use crate::scenario::{Then, Toward};

/// The fault.
pub struct Close {
    toward: Toward,
    code: u16,
    reason: String,
    then: Then,
}

impl Close {
    /// From scenario parameters.
    pub fn new(toward: Toward, code: u16, reason: &str, then: Then) -> Self {
        Close {
            toward,
            code,
            reason: reason.to_string(),
            then,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_toward_server_only() {
        let c = Close::new(Toward::Both, 1001, "going away", Then::None);
        let acts = c.actions();
        assert_eq!(acts.len(), 2);
        for a in acts {
            let Action::Inject { to, bytes, .. } = a else {
                panic!()
            };
            assert_eq!(bytes[1] & 0x80 != 0, to == Side::Server);
        }
    }
}
