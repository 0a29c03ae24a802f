//! `stays_connected`: `side` gives up no connection in the window (a fault's
//! active time with `during`, `after` [+ `for`], or the whole run): no close
//! frame, FIN or RST from it. Fails as soon as one is seen; passes once the
//! window is over. The window is cut at `Stopping`: closing while flatline
//! stops the client is no false alarm; neither is answering the other side's
//! close frame, FIN or RST on a connection.

use super::common::{give_up, secs, verdict, Span};
use super::{Expectation, JudgeCtx, Verdict};
use crate::events::Side;

const KIND: &str = "stays_connected";

/// The `stays_connected` expectation.
#[derive(Debug, Clone)]
pub struct StaysConnected {
    name: String,
    side: Side,
    span: Span,
}

impl StaysConnected {
    /// From the scenario parameters.
    pub(crate) fn new(name: &str, side: Side, span: Span) -> StaysConnected {
        StaysConnected {
            name: name.to_string(),
            side,
            span,
        }
    }
}

impl Expectation for StaysConnected {
    fn judge(&self, ctx: &JudgeCtx<'_>) -> Option<Verdict> {
        let ev = ctx.events;
        let side = self.side;
        let out = |passed, detail| Some(verdict(&self.name, KIND, passed, None, detail));
        let w = match self.span.locate_or_fail(ctx, &self.name, KIND) {
            Ok(w) => w,
            Err(v) => return v,
        };
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
        assert!(judge(&*e, &slow().events(), 5.0, false).is_none());
        let log = slow().fault_end("slow", &[1], 12.0).events();
        assert!(judge(&*e, &log, 12.0, false).is_none());
        let v = judge(&*e, &log, 12.1, false).unwrap();
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
        let v = judge(&*e, &log, 6.0, false).unwrap();
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
        assert!(judge(&*e, &log, 9.0, false).unwrap().passed);
    }

    #[test]
    fn after_for_window_and_stopping() {
        let e = build("{kind: stays_connected, after: open#1, for: 10s}");
        let log = Log::new().connect(1, 1.0).fin(1, 12.0, Client).events();
        assert!(judge(&*e, &log, 12.0, false).unwrap().passed);
        // Whole-run window: closing after Stopping does not count.
        let e = build("{kind: stays_connected}");
        let log = Log::new()
            .connect(1, 1.0)
            .stopping(20.0)
            .fin(1, 20.1, Client)
            .events();
        assert!(judge(&*e, &log, 20.1, false).unwrap().passed);
    }

    #[test]
    fn fault_never_started() {
        let e = build("{kind: stays_connected, during: slow}");
        let log = Log::new().connect(1, 1.0).events();
        assert!(judge(&*e, &log, 5.0, false).is_none());
        let v = judge(&*e, &log, 5.0, true).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "fault `slow` never started, so the window to judge never began"
        );
    }
}
