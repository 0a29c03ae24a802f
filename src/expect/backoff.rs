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

use super::common::{plural, secs, verdict, Span};
use super::{Expectation, JudgeCtx, Verdict};
use crate::events::EventKind;
use crate::scenario::Dur;
use std::time::Duration;

const KIND: &str = "backoff";

/// How much a gap may shrink under `increasing` (relative to the one before).
const SHRINK_ALLOWED: f64 = 0.10;

/// The `backoff` expectation.
#[derive(Debug, Clone)]
pub struct Backoff {
    name: String,
    span: Span,
    min_gap: Option<Duration>,
    max_gap: Option<Duration>,
    increasing: bool,
    max_attempts: Option<u32>,
}

impl Backoff {
    /// From the scenario parameters.
    pub(crate) fn new(
        name: &str,
        span: Span,
        min_gap: Option<Dur>,
        max_gap: Option<Dur>,
        increasing: bool,
        max_attempts: Option<u32>,
    ) -> Backoff {
        Backoff {
            name: name.to_string(),
            span,
            min_gap: min_gap.map(|d| d.0),
            max_gap: max_gap.map(|d| d.0),
            increasing,
            max_attempts,
        }
    }
}

impl Expectation for Backoff {
    fn judge(&self, ctx: &JudgeCtx<'_>) -> Option<Verdict> {
        let ev = ctx.events;
        let w = match self.span.locate_or_fail(ctx, &self.name, KIND) {
            Ok(w) => w,
            Err(v) => return v,
        };
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
        let fail = |detail: String| Some(verdict(&self.name, KIND, false, shortest, detail));
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
        Some(verdict(&self.name, KIND, true, shortest, detail))
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
        assert!(judge(&*e, &log.events(), 18.0, false).is_none());
        let log = refused(&[3.0, 4.0, 6.0, 10.0, 17.9])
            .fault_end("down", &[], 20.0)
            .events();
        assert!(judge(&*e, &log, 20.0, false).is_none());
        let v = judge(&*e, &log, 20.1, false).unwrap();
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
        let v = judge(&*e, &refused(&[3.0, 3.1]).events(), 3.1, false).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "the gap between connection #2 and #3 was 0.10 s, shorter than the minimum 500ms"
        );
        let e = build("{kind: backoff, during: down, max_attempts: 2}");
        let v = judge(&*e, &refused(&[3.0, 4.0, 5.0]).events(), 5.0, false).unwrap();
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
        assert!(judge(&*e, &log, 9.1, false).unwrap().passed);
        let log = refused(&[3.0, 5.0, 6.0]).events();
        let v = judge(&*e, &log, 6.0, false).unwrap();
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
        let v = judge(&*e, &refused(&[3.0, 9.0]).events(), 9.0, false).unwrap();
        assert!(!v.passed);
        assert!(v.detail.contains("longer than the maximum 5s"));
    }
}
