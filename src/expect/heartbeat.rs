//! `heartbeat`: on every connection open in the window (`after` [+ `for`],
//! or the whole run, cut at `Stopping`), the gaps from `open` to the first
//! frame from `from` matching `match`, between consecutive ones, and from the
//! last one to the connection's end (its first close frame, FIN or RST from
//! either side, or the relay's `Closed`) or the window's end never exceed
//! `every + tolerance`. Gaps are clipped to the window.
//!
//! Faults excuse silence: from each gap we subtract the time in which any
//! fault was active on that connection (listed in its `FaultStart`, or from
//! its `FaultJoin`, until the fault's `FaultEnd` or, while it lasts, now).
//! Subtracting, rather than restarting the gap at the fault's end, keeps the
//! silence before the fault counted: a client that was already late when the
//! fault began is still late.
//!
//! A gap that exceeds the limit is final, even while still growing, so a
//! failure is decided at once; a pass waits for the window's end. No
//! connection open in the window is a failure (nothing was judged).
//! Observed: the longest gap after excuses.

use super::common::{all_conns, dur, ends_connection, open_idx, secs, verdict, Span};
use super::{Expectation, JudgeCtx, Verdict};
use crate::events::{Event, EventKind, Side};
use crate::matcher::Matcher;
use crate::scenario::Dur;
use std::time::Duration;

const KIND: &str = "heartbeat";

/// The `heartbeat` expectation.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    name: String,
    from: Side,
    matcher: Matcher,
    every: Duration,
    tolerance: Duration,
    span: Span,
}

impl Heartbeat {
    /// From the scenario parameters.
    pub(crate) fn new(
        name: &str,
        from: Side,
        matcher: Matcher,
        every: Dur,
        tolerance: Dur,
        span: Span,
    ) -> Heartbeat {
        Heartbeat {
            name: name.to_string(),
            from,
            matcher,
            every: every.0,
            tolerance: tolerance.0,
            span,
        }
    }
}

/// The time intervals in which some fault was active on connection `n`,
/// merged and sorted; an interval still open ends at `Duration::MAX`.
pub(crate) fn fault_intervals(events: &[Event], n: u32) -> Vec<(Duration, Duration)> {
    let mut open: Vec<(String, Duration)> = Vec::new();
    let mut out: Vec<(Duration, Duration)> = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::FaultStart { fault, conns } if conns.contains(&n) => {
                open.push((fault.clone(), e.t))
            }
            EventKind::FaultJoin { fault } if e.conn == Some(n) => open.push((fault.clone(), e.t)),
            EventKind::FaultEnd { fault, .. } => {
                open.retain(|(f, s)| {
                    if f == fault {
                        out.push((*s, e.t));
                        false
                    } else {
                        true
                    }
                });
            }
            _ => {}
        }
    }
    out.extend(open.into_iter().map(|(_, s)| (s, Duration::MAX)));
    out.sort();
    let mut merged: Vec<(Duration, Duration)> = Vec::new();
    for (s, e) in out {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Time within `[a, b]` covered by the (merged) intervals.
fn covered(intervals: &[(Duration, Duration)], a: Duration, b: Duration) -> Duration {
    intervals
        .iter()
        .map(|&(s, e)| e.min(b).saturating_sub(s.max(a)))
        .sum()
}

/// One gap on one connection.
#[derive(Debug, Clone, Copy)]
struct Gap {
    conn: u32,
    from: Duration,
    to: Duration,
    excused: Duration,
}

impl Gap {
    fn counted(&self) -> Duration {
        self.to
            .saturating_sub(self.from)
            .saturating_sub(self.excused)
    }
}

impl Expectation for Heartbeat {
    fn judge(&self, ctx: &JudgeCtx<'_>) -> Option<Verdict> {
        let ev = ctx.events;
        let from = self.from;
        let w = match self.span.locate_or_fail(ctx, &self.name, KIND) {
            Ok(w) => w,
            Err(v) => return v,
        };
        let (end, over) = w.end_now(ev, ctx.now, ctx.finished);
        let limit = self.every + self.tolerance;
        let mut judged: Vec<u32> = Vec::new();
        let mut worst: Option<Gap> = None;
        for n in all_conns(ev) {
            let Some(oi) = open_idx(ev, n) else { continue };
            let open_t = ev[oi].t;
            let conn_end = ev
                .iter()
                .skip(oi + 1)
                .find(|e| e.conn == Some(n) && ends_connection(e))
                .map(|e| e.t);
            let a = open_t.max(w.start.t);
            let b = conn_end.unwrap_or(end).min(end);
            if open_t > end || conn_end.is_some_and(|c| c < w.start.t) || b < a {
                continue;
            }
            judged.push(n);
            let faults = fault_intervals(ev, n);
            let mut points: Vec<Duration> = vec![a];
            points.extend(ev.iter().skip(oi + 1).filter_map(|e| match &e.kind {
                EventKind::Frame(f)
                    if e.conn == Some(n)
                        && f.dir == from.sending()
                        && e.t > a
                        && e.t <= b
                        && self.matcher.matches(f) =>
                {
                    Some(e.t)
                }
                _ => None,
            }));
            points.push(b);
            for p in points.windows(2) {
                let gap = Gap {
                    conn: n,
                    from: p[0],
                    to: p[1],
                    excused: covered(&faults, p[0], p[1]),
                };
                if worst.is_none_or(|w| gap.counted() > w.counted()) {
                    worst = Some(gap);
                }
            }
        }
        let observed = worst.map(|g| g.counted());
        let limit_s = format!(
            "limit {} (every {} + tolerance {})",
            secs(limit),
            dur(self.every),
            dur(self.tolerance)
        );
        if let Some(g) = worst.filter(|g| g.counted() > limit) {
            let excused = if g.excused.is_zero() {
                String::new()
            } else {
                format!(
                    ", not counting {} while a fault was active",
                    secs(g.excused)
                )
            };
            return Some(verdict(
                &self.name,
                KIND,
                false,
                observed,
                format!(
                    "connection #{} went {} without a matching frame from the {from} (t={} to t={}{excused}); {limit_s}",
                    g.conn,
                    secs(g.counted()),
                    secs(g.from),
                    secs(g.to)
                ),
            ));
        }
        if !over {
            return None;
        }
        let Some(g) = worst else {
            return Some(verdict(
                &self.name,
                KIND,
                false,
                None,
                format!(
                    "no connection was open {} (t={} to t={}), so no heartbeat could be judged",
                    w.label,
                    secs(w.start.t),
                    secs(end)
                ),
            ));
        };
        Some(verdict(
            &self.name,
            KIND,
            true,
            observed,
            format!(
                "the longest gap without a matching frame from the {from} was {} (connection #{}, t={} to t={}) on connection {}; {limit_s}",
                secs(g.counted()),
                g.conn,
                secs(g.from),
                secs(g.to),
                super::common::conn_list(&judged)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testlog::{build, judge, Log};
    use crate::events::Side::*;
    use std::time::Duration;

    const YAML: &str =
        "{kind: heartbeat, match: {any: [{opcode: ping}, {opcode: text, regex: '^ping$'}]}, every: 5s, tolerance: 1s}";

    #[test]
    fn regular_pings_pass_at_the_end() {
        let e = build(YAML);
        let log = Log::new()
            .connect(1, 0.0)
            .ping(1, 5.0, Client)
            .text(1, 10.0, Client, "ping")
            .ping(1, 15.5, Client)
            .text(1, 16.0, Client, "ping!")
            .ping(1, 16.0, Server);
        assert!(
            judge(&*e, &log.events(), 18.0, false).is_none(),
            "open-ended window waits"
        );
        let log = Log::new()
            .connect(1, 0.0)
            .ping(1, 5.0, Client)
            .text(1, 10.0, Client, "ping")
            .ping(1, 15.5, Client)
            .stopping(20.0)
            .events();
        let v = judge(&*e, &log, 20.0, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.observed, Some(Duration::from_millis(5500)));
        assert_eq!(
            v.detail,
            "the longest gap without a matching frame from the client was 5.50 s (connection #1, t=10.00 s to t=15.50 s) on connection #1; limit 6.00 s (every 5s + tolerance 1s)"
        );
    }

    #[test]
    fn a_growing_gap_fails_early_by_the_clock() {
        let e = build(YAML);
        let log = Log::new().connect(1, 0.0).ping(1, 5.0, Client).events();
        assert!(judge(&*e, &log, 10.9, false).is_none());
        let v = judge(&*e, &log, 11.5, false).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "connection #1 went 6.50 s without a matching frame from the client (t=5.00 s to t=11.50 s); limit 6.00 s (every 5s + tolerance 1s)"
        );
    }

    #[test]
    fn gap_excused_by_a_fault_on_that_connection() {
        let e = build(YAML);
        // 3 s to 19 s is 16 s, of which 10 s a partition on #1: 6 s counted
        // (exactly the limit, which passes).
        let log = Log::new()
            .connect(1, 0.0)
            .connect(2, 0.0)
            .ping(1, 3.0, Client)
            .fault_start("outage", &[1], 7.0)
            .fault_end("outage", &[1], 17.0)
            .ping(1, 19.0, Client)
            .ping(2, 4.0, Client)
            .close_frame(1, 22.0, Client, Some(1000))
            .close_frame(2, 8.0, Client, Some(1000))
            .stopping(30.0)
            .events();
        let v = judge(&*e, &log, 30.0, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.observed, Some(Duration::from_secs(6)));
        // The same silence on a connection the fault did not touch fails.
        let log = Log::new()
            .connect(1, 0.0)
            .connect(2, 0.0)
            .ping(1, 5.0, Client)
            .ping(2, 5.0, Client)
            .fault_start("outage", &[1], 7.0)
            .fault_end("outage", &[1], 17.0)
            .ping(1, 19.0, Client)
            .ping(2, 19.0, Client)
            .events();
        let v = judge(&*e, &log, 19.0, false).unwrap();
        assert!(!v.passed);
        assert!(
            v.detail.starts_with("connection #2 went 14.00 s"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn joined_fault_and_still_active_fault_excuse() {
        let e = build(YAML);
        let log = Log::new()
            .fault_start("outage", &[], 1.0)
            .connect(1, 2.0)
            .join("outage", 1, 2.0)
            .events();
        // Fault active on #1 since it opened: nothing is counted yet.
        assert!(judge(&*e, &log, 30.0, false).is_none());
    }

    #[test]
    fn window_with_after_for_and_no_connection() {
        let e =
            build("{kind: heartbeat, match: {opcode: ping}, every: 1s, after: open#1, for: 3s}");
        let log = Log::new()
            .connect(1, 1.0)
            .ping(1, 2.0, Client)
            .ping(1, 3.0, Client)
            .ping(1, 4.0, Client);
        let v = judge(&*e, &log.events(), 4.1, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        let e = build("{kind: heartbeat, match: {opcode: ping}, every: 1s, after: 1s, for: 3s}");
        let log = Log::new().connect(1, 5.0).events();
        let v = judge(&*e, &log, 5.0, false).unwrap();
        assert!(!v.passed);
        assert!(
            v.detail.starts_with("no connection was open"),
            "{}",
            v.detail
        );
    }
}
