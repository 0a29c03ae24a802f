//! `no_reconnect`: no new TCP connection is accepted in `(ref, ref + for]`.
//! Fails as soon as one is; passes once the window is over. If the run ends
//! before the window does, the observed part decides, and the detail says so.

use super::common::{outcome as out, secs};
use super::kind::{Anchor, Checks, Ctx, Invalid, Judge, Kind, Outcome, Timing};
use super::refs;
use crate::events::EventKind;
use crate::scenario::{Dur, Reference};
use serde::{Deserialize, Serialize};

/// The `no_reconnect` expectation: no new TCP connection for `for` after the
/// reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoReconnect {
    /// Reference.
    pub after: Reference,
    /// Window.
    #[serde(rename = "for")]
    pub for_: Dur,
}

impl Kind for NoReconnect {
    const NAME: &'static str = "no_reconnect";
    fn validate(&self, v: &mut dyn Checks) -> Result<(), Invalid> {
        v.reference("after", &self.after)?;
        v.positive("for", self.for_)
    }
    fn judge(&self) -> Result<Box<dyn Judge>, String> {
        Ok(Box::new(self.clone()))
    }
    fn timing(&self) -> Timing<'_> {
        Timing {
            after: Some(&self.after),
            len: Some(self.for_.0),
            deadline: false,
        }
    }
}

impl Judge for NoReconnect {
    fn anchor(&self) -> Anchor<'_> {
        Anchor::After(&self.after, "the expectation could not be judged".into())
    }

    fn judge(&self, ctx: &Ctx<'_>) -> Option<Outcome> {
        let ev = ctx.events;
        let what = refs::describe(&self.after);
        let window = self.for_;
        let at = ctx.at();
        let end = at.t + self.for_.0;
        let first = ev
            .iter()
            .enumerate()
            .skip(at.pos)
            .find(|(_, e)| e.t <= end && matches!(e.kind, EventKind::Accept { .. }));
        if let Some((_, e)) = first {
            let took = e.t.saturating_sub(at.t);
            return out(
                false,
                Some(took),
                format!(
                    "connection #{} was accepted at t={}, {} after {what} at t={}; none allowed for {window}",
                    e.conn.unwrap_or(0),
                    secs(e.t),
                    secs(took),
                    secs(at.t)
                ),
            );
        }
        if ctx.now > end {
            return out(
                true,
                None,
                format!(
                    "no connection was accepted in the {window} after {what} at t={}",
                    secs(at.t)
                ),
            );
        }
        if ctx.finished {
            let seen = ctx.now.saturating_sub(at.t);
            return out(
                true,
                None,
                format!(
                    "no connection was accepted in the {} after {what} at t={} (the run ended at t={}, before the {window} were over)",
                    secs(seen),
                    secs(at.t),
                    secs(ctx.now)
                ),
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testlog::{build, judge, Log};
    use crate::events::Side::*;

    fn closed() -> Log {
        Log::new()
            .connect(1, 0.1)
            .close_frame(1, 2.0, Client, Some(1000))
            .closed(1, 2.0)
    }

    #[test]
    fn passes_once_the_window_is_over() {
        let e = build("{kind: no_reconnect, after: close#1, for: 5s}");
        let log = closed().events();
        assert!(judge(&e, &log, 6.9, false).is_none());
        let v = judge(&e, &log, 7.1, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(
            v.detail,
            "no connection was accepted in the 5s after connection #1 closed at t=2.00 s"
        );
    }

    #[test]
    fn fails_on_the_first_accept_even_at_the_same_instant() {
        let e = build("{kind: no_reconnect, after: close#1, for: 5s}");
        let log = closed().accept(2, 2.0).events();
        let v = judge(&e, &log, 2.0, false).unwrap();
        assert!(!v.passed);
        assert!(
            v.detail
                .starts_with("connection #2 was accepted at t=2.00 s"),
            "{}",
            v.detail
        );
        // An accept after the window is fine.
        let log = closed().accept(2, 7.5).events();
        assert!(judge(&e, &log, 7.5, false).unwrap().passed);
    }

    #[test]
    fn reference_never_happens() {
        let e = build("{kind: no_reconnect, after: close#1, for: 5s}");
        let log = Log::new().connect(1, 0.1).events();
        assert!(judge(&e, &log, 20.0, false).is_none());
        let v = judge(&e, &log, 20.0, true).unwrap();
        assert!(!v.passed);
        assert!(v.detail.starts_with("connection #1 never closed"));
    }
}
