//! `backoff`: connection attempts (TCP connections the relay accepted) in the
//! window (`during` a fault, `after` [+ `for`], or the whole run, cut at
//! `Stopping`) keep their gaps within `min_gap`..`max_gap`, do not exceed
//! `max_attempts`, and with `increasing` never shrink: each gap must be at
//! least 90% of the one before (the 10% allows for jitter; a capped backoff
//! with equal gaps passes). Only gaps between two attempts are judged (not
//! the wait before the first, nor after the last). With fewer than two
//! attempts there is no gap, and only `max_attempts` applies. Violations are
//! final and decided at once; a pass waits for the window's end.
//! Observed: the shortest gap.

use super::common::{outcome, plural, secs, Span};
use super::kind::{Anchor, Checks, Ctx, Invalid, Judge, Kind, Outcome, Timing};
use crate::events::EventKind;
use crate::scenario::{Dur, Reference};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How much a gap may shrink under `increasing` (relative to the one before).
const SHRINK_ALLOWED: f64 = 0.10;

/// The `backoff` expectation: gaps between connection attempts within bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// A fault name: its active window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<String>,
    /// Window start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Reference>,
    /// Window length.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<Dur>,
    /// Smallest allowed gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gap: Option<Dur>,
    /// Largest allowed gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gap: Option<Dur>,
    /// Gaps must not shrink.
    #[serde(default)]
    pub increasing: bool,
    /// Cap on attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

impl Kind for Backoff {
    const NAME: &'static str = "backoff";
    fn validate(&self, v: &mut dyn Checks) -> Result<(), Invalid> {
        v.window(&self.during, &self.after, &self.for_, false)?;
        if let (Some(lo), Some(hi)) = (self.min_gap, self.max_gap) {
            if lo > hi {
                let message = format!("{}.min_gap {lo} is larger than max_gap {hi}", v.path());
                return Err(v.fail(
                    "min_gap",
                    message,
                    Some("expected min_gap ≤ max_gap".into()),
                ));
            }
        }
        Ok(())
    }
    fn judge(&self) -> Result<Box<dyn Judge>, String> {
        Ok(Box::new(Judging {
            span: Span::new(&self.during, &self.after, &self.for_),
            min_gap: self.min_gap.map(|d| d.0),
            max_gap: self.max_gap.map(|d| d.0),
            increasing: self.increasing,
            max_attempts: self.max_attempts,
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
    span: Span,
    min_gap: Option<Duration>,
    max_gap: Option<Duration>,
    increasing: bool,
    max_attempts: Option<u32>,
}

impl Judge for Judging {
    fn anchor(&self) -> Anchor<'_> {
        Anchor::Span(&self.span)
    }

    fn judge(&self, ctx: &Ctx<'_>) -> Option<Outcome> {
        let ev = ctx.events;
        let w = ctx.window?;
        let (end, over) = w.end_now(ev, ctx.now, ctx.finished);
        let attempts: Vec<(u32, Duration)> = ev
            .iter()
            .enumerate()
            .filter(|(i, e)| w.contains(*i, e.t, end) && matches!(e.kind, EventKind::Accept { .. }))
            .map(|(_, e)| (e.conn.unwrap_or(0), e.t))
            .collect();
        let gaps: Vec<(u32, u32, Duration)> = attempts
            .windows(2)
            .map(|p| (p[0].0, p[1].0, p[1].1.saturating_sub(p[0].1)))
            .collect();
        let shortest = gaps.iter().map(|g| g.2).min();
        let fail = |detail: String| outcome(false, shortest, detail);
        if let Some(cap) = self.max_attempts {
            if attempts.len() > cap as usize {
                return fail(format!(
                    "{} {} (t={} to t={}); at most {cap} allowed",
                    plural(attempts.len(), "connection attempt"),
                    w.label,
                    secs(attempts[0].1),
                    secs(attempts[attempts.len() - 1].1)
                ));
            }
        }
        let mut prev: Option<Duration> = None;
        for &(a, b, gap) in &gaps {
            let between = format!("between connection #{a} and #{b}");
            if let Some(min) = self.min_gap {
                if gap < min {
                    return fail(format!(
                        "the gap {between} was {}, shorter than the minimum {}",
                        secs(gap),
                        Dur(min)
                    ));
                }
            }
            if let Some(max) = self.max_gap {
                if gap > max {
                    return fail(format!(
                        "the gap {between} was {}, longer than the maximum {}",
                        secs(gap),
                        Dur(max)
                    ));
                }
            }
            if let Some(p) = prev {
                if self.increasing && gap.as_secs_f64() < p.as_secs_f64() * (1.0 - SHRINK_ALLOWED) {
                    return fail(format!(
                        "the gap {between} shrank to {} from {} before it; backoff must not decrease",
                        secs(gap),
                        secs(p)
                    ));
                }
            }
            prev = Some(gap);
        }
        if !over {
            return None;
        }
        let detail = match gaps.len() {
            0 => format!(
                "{} {} (t={} to t={}): no gap to judge",
                plural(attempts.len(), "connection attempt"),
                w.label,
                secs(w.start.t),
                secs(end)
            ),
            _ => {
                let list: Vec<String> = gaps.iter().map(|g| secs(g.2)).collect();
                format!(
                    "{} {} with gaps {}; within bounds",
                    plural(attempts.len(), "connection attempt"),
                    w.label,
                    list.join(", ")
                )
            }
        };
        outcome(true, shortest, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testlog::{build, judge, Log};

    fn refused(times: &[f64]) -> Log {
        let mut log = Log::new()
            .connect(1, 0.1)
            .fault_start("down", &[1], 2.0)
            .closed(1, 2.0);
        for (i, t) in times.iter().enumerate() {
            let n = i as u32 + 2;
            log = log.accept(n, *t).join("down", n, *t).closed(n, *t);
        }
        log
    }

    #[test]
    fn growing_gaps_pass_when_the_window_ends() {
        let e = build("{kind: backoff, during: down, min_gap: 500ms, max_gap: 10s, increasing: true, max_attempts: 6}");
        let log = refused(&[3.0, 4.0, 6.0, 10.0, 17.9]);
        assert!(judge(&e, &log.events(), 18.0, false).is_none());
        let log = refused(&[3.0, 4.0, 6.0, 10.0, 17.9])
            .fault_end("down", &[], 20.0)
            .events();
        assert!(judge(&e, &log, 20.0, false).is_none());
        let v = judge(&e, &log, 20.1, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(
            v.detail,
            "5 connection attempts while `down` was active with gaps 1.00 s, 2.00 s, 4.00 s, 7.90 s; within bounds"
        );
        assert_eq!(v.observed, Some(std::time::Duration::from_secs(1)));
    }

    #[test]
    fn storm_fails_early() {
        let e = build("{kind: backoff, during: down, min_gap: 500ms}");
        let v = judge(&e, &refused(&[3.0, 3.1]).events(), 3.1, false).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "the gap between connection #2 and #3 was 0.10 s, shorter than the minimum 500ms"
        );
        let e = build("{kind: backoff, during: down, max_attempts: 2}");
        let v = judge(&e, &refused(&[3.0, 4.0, 5.0]).events(), 5.0, false).unwrap();
        assert!(!v.passed);
        assert!(
            v.detail
                .starts_with("3 connection attempts while `down` was active"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn increasing_allows_a_little_jitter_but_not_shrinking() {
        let e = build("{kind: backoff, during: down, increasing: true}");
        let log = refused(&[3.0, 5.0, 6.9, 8.8])
            .fault_end("down", &[], 9.0)
            .events();
        assert!(judge(&e, &log, 9.1, false).unwrap().passed);
        let log = refused(&[3.0, 5.0, 6.0]).events();
        let v = judge(&e, &log, 6.0, false).unwrap();
        assert!(!v.passed);
        assert!(
            v.detail.contains("shrank to 1.00 s from 2.00 s"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn max_gap_and_after_for_window() {
        let e = build("{kind: backoff, after: 2s, for: 20s, max_gap: 5s}");
        let v = judge(&e, &refused(&[3.0, 9.0]).events(), 9.0, false).unwrap();
        assert!(!v.passed);
        assert!(v.detail.contains("longer than the maximum 5s"));
    }
}
