//! `closes_with`: the close frames `side` sent before `Stopping` (close
//! frames sent while flatline ends the client do not count) carry `code`, on
//! the selected connections (`all`, `open` and `new` mean every connection;
//! a list selects those). Fails early on a wrong code; fails when the side
//! sent no close frame at all; passes once `Stopping` is logged or the run is
//! over.

use super::common::{outcome, secs};
use super::kind::{Checks, Ctx, Invalid, Judge, Kind, Outcome};
use crate::events::{EventKind, Opcode, Side};
use crate::scenario::Connections;
use serde::{Deserialize, Serialize};

/// The `closes_with` expectation: the side's close frames carry `code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosesWith {
    /// Whose close frames (default client).
    #[serde(default = "super::common::client")]
    pub side: Side,
    /// Expected code.
    pub code: u16,
    /// Which connections.
    #[serde(default)]
    pub connections: Connections,
}

impl Kind for ClosesWith {
    const NAME: &'static str = "closes_with";
    fn validate(&self, v: &mut dyn Checks) -> Result<(), Invalid> {
        v.close_code("code", self.code)?;
        v.connections("connections", &self.connections)
    }
    fn judge(&self) -> Result<Box<dyn Judge>, String> {
        Ok(Box::new(self.clone()))
    }
}

impl Judge for ClosesWith {
    fn judge(&self, ctx: &Ctx<'_>) -> Option<Outcome> {
        let ev = ctx.events;
        let side = self.side;
        let code = self.code;
        let conns = match &self.connections {
            Connections::List(v) => Some(v),
            Connections::Which(_) => None,
        };
        let out = |passed, detail| outcome(passed, None, detail);
        let mut good: Vec<u32> = Vec::new();
        let mut stopped = false;
        for e in ev {
            if matches!(e.kind, EventKind::Stopping) {
                stopped = true;
                break;
            }
            let EventKind::Frame(f) = &e.kind else {
                continue;
            };
            if f.opcode != Opcode::Close || f.dir != side.sending() {
                continue;
            }
            let Some(n) = e.conn else { continue };
            if conns.is_some_and(|l| !l.contains(&n)) {
                continue;
            }
            if f.close_code == Some(code) {
                good.push(n);
                continue;
            }
            let got = match f.close_code {
                Some(c) => format!("code {c}"),
                None => "no status code".to_string(),
            };
            return out(
                false,
                format!(
                    "the {side} closed connection #{n} at t={} with {got}; expected {code}",
                    secs(e.t)
                ),
            );
        }
        if !(stopped || ctx.finished) {
            return None;
        }
        if good.is_empty() {
            let on = match conns {
                Some(l) => format!(" on connection {}", super::common::conn_list(l)),
                None => String::new(),
            };
            return out(
                false,
                format!(
                    "the {side} sent no close frame{on} before the run ended; expected code {code}"
                ),
            );
        }
        out(
            true,
            format!(
                "the {side} closed connection {} with code {code}",
                super::common::conn_list(&good)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testlog::{build, judge, Log};
    use crate::events::Side::*;

    #[test]
    fn passes_when_every_close_carries_the_code() {
        let e = build("{kind: closes_with, code: 1000}");
        let log = Log::new()
            .connect(1, 0.1)
            .close_frame(1, 2.0, Client, Some(1000))
            .connect(2, 3.0)
            .close_frame(2, 4.0, Server, Some(1011))
            .close_frame(2, 4.1, Client, Some(1000));
        assert!(
            judge(&e, &log.events(), 5.0, false).is_none(),
            "undecided before Stopping"
        );
        let log = Log::new()
            .connect(1, 0.1)
            .close_frame(1, 2.0, Client, Some(1000))
            .stopping(9.0)
            .close_frame(2, 9.1, Client, Some(1001))
            .events();
        let v = judge(&e, &log, 9.1, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.detail, "the client closed connection #1 with code 1000");
    }

    #[test]
    fn wrong_or_missing_code_fails_early() {
        let e = build("{kind: closes_with, code: 1000}");
        let log = Log::new()
            .connect(1, 0.1)
            .close_frame(1, 2.0, Client, None)
            .events();
        let v = judge(&e, &log, 2.0, false).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "the client closed connection #1 at t=2.00 s with no status code; expected 1000"
        );
    }

    #[test]
    fn no_close_frame_at_all_fails() {
        let e = build("{kind: closes_with, code: 1000, connections: [2]}");
        let log = Log::new()
            .connect(1, 0.1)
            .close_frame(1, 1.0, Client, Some(1000))
            .connect(2, 2.0)
            .fin(2, 3.0, Client)
            .events();
        let v = judge(&e, &log, 10.0, true).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "the client sent no close frame on connection #2 before the run ended; expected code 1000"
        );
    }
}
