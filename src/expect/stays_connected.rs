//! `stays_connected`: `side` gives up no connection in the window (a fault's
//! active time with `during`, `after` [+ `for`], or the whole run): no close
//! frame, FIN or RST from it. Fails as soon as one is seen; passes once the
//! window is over. The window is cut at `Stopping`: closing while flatline
//! stops the client is no false alarm; neither is answering the other side's
//! close frame, FIN or RST on a connection.

use super::common::{give_up, outcome, secs, Span};
use super::kind::{Anchor, Checks, Ctx, Invalid, Judge, Kind, Outcome, Timing};
use crate::events::Side;
use crate::scenario::{Dur, Reference};
use serde::{Deserialize, Serialize};

/// The `stays_connected` expectation: `side` gives up no connection in the
/// window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaysConnected {
    /// Who must not give up (default client).
    #[serde(default = "super::common::client")]
    pub side: Side,
    /// A fault name: its active window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<String>,
    /// Window start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Reference>,
    /// Window length.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<Dur>,
}

impl Kind for StaysConnected {
    const NAME: &'static str = "stays_connected";
    fn validate(&self, v: &mut dyn Checks) -> Result<(), Invalid> {
        v.window(&self.during, &self.after, &self.for_, true)
    }
    fn judge(&self) -> Result<Box<dyn Judge>, String> {
        Ok(Box::new(Judging {
            side: self.side,
            span: Span::new(&self.during, &self.after, &self.for_),
        }))
    }
    fn timing(&self) -> Timing<'_> {
        Timing {
            after: self.after.as_ref(),
            len: self.for_.map(|d| d.0),
            deadline: false,
        }
    }
}

struct Judging {
    side: Side,
    span: Span,
}

impl Judge for Judging {
    fn anchor(&self) -> Anchor<'_> {
        Anchor::Span(&self.span)
    }

    fn judge(&self, ctx: &Ctx<'_>) -> Option<Outcome> {
        let ev = ctx.events;
        let side = self.side;
        let out = |passed, detail| outcome(passed, None, detail);
        let w = ctx.window?;
        let (end, over) = w.end_now(ev, ctx.now, ctx.finished);
        // Connections the other side ended first: answering that is no false alarm.
        let mut answered: Vec<u32> = Vec::new();
        for (i, e) in ev.iter().enumerate() {
            if e.t > end {
                break;
            }
            if give_up(e, side.other()).is_some() {
                answered.extend(e.conn);
                continue;
            }
            if !w.contains(i, e.t, end) || e.conn.is_some_and(|c| answered.contains(&c)) {
                continue;
            }
            if let Some(how) = give_up(e, side) {
                return out(
                    false,
                    format!(
                        "the {side} gave up connection #{} at t={} ({how}) {} (from t={})",
                        e.conn.unwrap_or(0),
                        secs(e.t),
                        w.label,
                        secs(w.start.t)
                    ),
                );
            }
        }
        if !over {
            return None;
        }
        out(
            true,
            format!(
                "the {side} gave up no connection {} (t={} to t={})",
                w.label,
                secs(w.start.t),
                secs(end)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testlog::{build, judge, Log};
    use crate::events::Side::*;

    fn slow() -> Log {
        Log::new()
            .connect(1, 0.1)
            .fault_start("slow", &[1], 2.0)
            .ping(1, 3.0, Client)
    }

    #[test]
    fn passes_when_the_fault_window_ends_quietly() {
        let e = build("{kind: stays_connected, during: slow}");
        assert!(judge(&e, &slow().events(), 5.0, false).is_none());
        let log = slow().fault_end("slow", &[1], 12.0).events();
        assert!(judge(&e, &log, 12.0, false).is_none());
        let v = judge(&e, &log, 12.1, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(
            v.detail,
            "the client gave up no connection while `slow` was active (t=2.00 s to t=12.00 s)"
        );
    }

    #[test]
    fn fails_early_on_a_false_alarm() {
        let e = build("{kind: stays_connected, during: slow}");
        let log = slow().close_frame(1, 6.0, Client, Some(4000)).events();
        let v = judge(&e, &log, 6.0, false).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "the client gave up connection #1 at t=6.00 s (close frame 4000) while `slow` was active (from t=2.00 s)"
        );
        // The server closing is not the client's doing.
        let log = slow()
            .close_frame(1, 6.0, Server, Some(1001))
            .close_frame(1, 6.1, Client, Some(1001))
            .fault_end("slow", &[1], 8.0)
            .events();
        assert!(judge(&e, &log, 9.0, false).unwrap().passed);
    }

    #[test]
    fn after_for_window_and_stopping() {
        let e = build("{kind: stays_connected, after: open#1, for: 10s}");
        let log = Log::new().connect(1, 1.0).fin(1, 12.0, Client).events();
        assert!(judge(&e, &log, 12.0, false).unwrap().passed);
        // Whole-run window: closing after Stopping does not count.
        let e = build("{kind: stays_connected}");
        let log = Log::new()
            .connect(1, 1.0)
            .stopping(20.0)
            .fin(1, 20.1, Client)
            .events();
        assert!(judge(&e, &log, 20.1, false).unwrap().passed);
    }

    #[test]
    fn fault_never_started() {
        let e = build("{kind: stays_connected, during: slow}");
        let log = Log::new().connect(1, 1.0).events();
        assert!(judge(&e, &log, 5.0, false).is_none());
        let v = judge(&e, &log, 5.0, true).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "fault `slow` never started, so the window to judge never began"
        );
    }
}
