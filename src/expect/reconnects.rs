//! `reconnects`: a connection that was not open at the reference reaches
//! `open` within `within` after it. A connection accepted earlier (say during
//! a partition, which answers no handshake) counts when its `Open` falls in
//! the window. `attempts` caps the connections accepted in the window up to
//! and including the successful one (the successful one always counts).
//! Decided early once a connection opened, or once the cap is exceeded.

use super::common::{outcome as out, plural, secs, were};
use super::kind::{Anchor, Checks, Ctx, Invalid, Judge, Kind, Outcome, Timing};
use super::refs;
use crate::events::EventKind;
use crate::scenario::{Dur, Reference};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `reconnects` expectation: a new connection opens within `within`
/// after the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconnects {
    /// Reference.
    pub after: Reference,
    /// Deadline.
    pub within: Dur,
    /// Maximum attempts allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

impl Kind for Reconnects {
    const NAME: &'static str = "reconnects";
    fn validate(&self, v: &mut dyn Checks) -> Result<(), Invalid> {
        v.reference("after", &self.after)?;
        v.positive("within", self.within)
    }
    fn judge(&self) -> Result<Box<dyn Judge>, String> {
        Ok(Box::new(self.clone()))
    }
    fn timing(&self) -> Timing<'_> {
        Timing {
            after: Some(&self.after),
            len: Some(self.within.0),
            deadline: true,
        }
    }
}

impl Judge for Reconnects {
    fn anchor(&self) -> Anchor<'_> {
        Anchor::After(&self.after, "no reconnect could be judged".into())
    }

    fn judge(&self, ctx: &Ctx<'_>) -> Option<Outcome> {
        let ev = ctx.events;
        let what = refs::describe(&self.after);
        let limit = self.within;
        let at = ctx.at();
        let deadline = at.t + self.within.0;
        // Accepts after the reference, in order, and the first Open after it.
        let mut accepted: Vec<(u32, Duration)> = Vec::new();
        let mut opened_early: Option<(u32, Duration)> = None;
        for (i, e) in ev.iter().enumerate() {
            let Some(n) = e.conn else { continue };
            match e.kind {
                EventKind::Accept { .. } if at.is_after(i) && e.t <= deadline => {
                    accepted.push((n, e.t))
                }
                EventKind::Open if !at.is_after(i) => {
                    // Opened before the reference; remember the latest for the failure hint.
                    opened_early = Some((n, e.t));
                }
                EventKind::Open if e.t <= deadline => {
                    let took = e.t.saturating_sub(at.t);
                    // Attempts: accepted in the window up to this one, plus this one if earlier.
                    let mut tries = accepted.iter().filter(|(_, t)| *t <= e.t).count();
                    if !accepted.iter().any(|(c, _)| *c == n) {
                        tries += 1;
                    }
                    let tries_s = plural(tries, "attempt");
                    if let Some(cap) = self.attempts {
                        if tries > cap as usize {
                            return out(
                                false,
                                Some(took),
                                format!(
                                    "connection #{n} opened {} after {what} at t={}, but only after {tries_s}; at most {cap} allowed",
                                    secs(took),
                                    secs(at.t)
                                ),
                            );
                        }
                    }
                    return out(
                        true,
                        Some(took),
                        format!(
                            "connection #{n} opened {} after {what} at t={} ({tries_s}); limit {limit}",
                            secs(took),
                            secs(at.t)
                        ),
                    );
                }
                _ => {}
            }
        }
        if let Some(cap) = self.attempts {
            if accepted.len() > cap as usize {
                return out(
                    false,
                    None,
                    format!(
                        "{} accepted after {what} at t={} without one opening; at most {cap} allowed",
                        were(accepted.len(), "connection"),
                        secs(at.t)
                    ),
                );
            }
        }
        if !(ctx.finished || ctx.now > deadline) {
            return None;
        }
        let ended = if ctx.now < deadline {
            format!(" (the run ended at t={})", secs(ctx.now))
        } else {
            String::new()
        };
        let mut detail = format!(
            "no new connection opened within {limit} after {what} (t={}){ended}; {} accepted in that time",
            secs(at.t),
            were(accepted.len(), "connection")
        );
        if let Some((n, t)) = opened_early {
            if accepted.is_empty() {
                detail.push_str(&format!(
                    "; connection #{n} had opened before it, at t={}",
                    secs(t)
                ));
            }
        }
        out(false, None, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testlog::{build, judge, Log};
    use crate::events::Side::*;
    use std::time::Duration;

    fn outage() -> Log {
        Log::new()
            .connect(1, 0.1)
            .fault_start("outage", &[1], 3.0)
            .fin(1, 8.0, Client)
            .closed(1, 8.0)
    }

    #[test]
    fn passes_early_on_open() {
        let e = build("{kind: reconnects, after: outage.end, within: 10s}");
        let log = outage()
            .fault_end("outage", &[1], 18.0)
            .connect(2, 19.5)
            .events();
        let v = judge(&e, &log, 19.5, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.observed, Some(Duration::from_millis(1500)));
        assert_eq!(
            v.detail,
            "connection #2 opened 1.50 s after `outage` ended at t=18.00 s (1 attempt); limit 10s"
        );
    }

    #[test]
    fn accepted_during_partition_opened_after_heal_counts() {
        let e = build("{kind: reconnects, after: outage.end, within: 10s, attempts: 1}");
        let log = outage()
            .accept(2, 9.0)
            .join("outage", 2, 9.0)
            .fault_end("outage", &[1, 2], 18.0)
            .open(2, 18.0)
            .events();
        let v = judge(&e, &log, 18.0, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.observed, Some(Duration::ZERO));
    }

    #[test]
    fn reconnect_before_the_fault_ends_does_not_count_after_end() {
        // The fault is a drop of pongs; the client reconnected during it.
        let after_end = build("{kind: reconnects, after: outage.end, within: 5s}");
        let log = outage()
            .connect(2, 9.0)
            .fault_end("outage", &[1, 2], 18.0)
            .events();
        assert!(judge(&after_end, &log, 22.0, false).is_none());
        let v = judge(&after_end, &log, 23.5, false).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "no new connection opened within 5s after `outage` ended (t=18.00 s); 0 connections were accepted in that time; connection #2 had opened before it, at t=9.00 s"
        );
        // Judged from the fault's start it passes.
        let after_start = build("{kind: reconnects, after: outage, within: 10s}");
        assert!(judge(&after_start, &log, 9.0, false).unwrap().passed);
    }

    #[test]
    fn attempts_cap() {
        let e = build("{kind: reconnects, after: close#1, within: 20s, attempts: 2}");
        let log = outage()
            .accept(2, 9.0)
            .closed(2, 9.0)
            .accept(3, 10.0)
            .closed(3, 10.0);
        assert!(judge(&e, &log.events(), 10.0, false).is_none());
        let log = outage()
            .accept(2, 9.0)
            .closed(2, 9.0)
            .accept(3, 10.0)
            .closed(3, 10.0)
            .accept(4, 11.0)
            .events();
        let v = judge(&e, &log, 11.0, false).expect("cap exceeded is final");
        assert!(!v.passed);
        assert!(
            v.detail
                .starts_with("3 connections were accepted after connection #1 closed"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn reference_never_happens() {
        let e = build("{kind: reconnects, after: outage.end, within: 10s}");
        let log = outage().events();
        assert!(judge(&e, &log, 40.0, false).is_none());
        let v = judge(&e, &log, 40.0, true).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "fault `outage` never ended, so no reconnect could be judged"
        );
    }
}
