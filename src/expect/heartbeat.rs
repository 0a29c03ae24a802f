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

use super::common::{all_conns, dur, ends_connection, open_idx, outcome, secs, Span};
use super::kind::{Anchor, Checks, Ctx, Invalid, Judge, Kind, Outcome, Timing};
use super::refs;
use crate::events::{Event, EventKind, Side};
use crate::matcher::Matcher;
use crate::scenario::{Dur, Match, Reference};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The `heartbeat` expectation: frames from `from` matching `match` at
/// least every `every + tolerance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Who sends heartbeats (default client).
    #[serde(default = "super::common::client")]
    pub from: Side,
    /// Which frames count.
    #[serde(rename = "match")]
    pub matches: Match,
    /// Interval.
    pub every: Dur,
    /// Slack.
    #[serde(default)]
    pub tolerance: Dur,
    /// Window start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Reference>,
    /// Window length.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<Dur>,
}

impl Kind for Heartbeat {
    const NAME: &'static str = "heartbeat";
    fn validate(&self, v: &mut dyn Checks) -> Result<(), Invalid> {
        v.positive("every", self.every)?;
        v.matcher("match", &self.matches)?;
        v.window(&None, &self.after, &self.for_, false)
    }
    fn judge(&self) -> Result<Box<dyn Judge>, String> {
        Ok(Box::new(Judging {
            from: self.from,
            matcher: Matcher::new(&self.matches)?,
            every: self.every.0,
            tolerance: self.tolerance.0,
            span: Span::new(&None, &self.after, &self.for_),
            beats: Beats::default(),
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

/// The judging: what [`Judge::observe`] keeps is per connection, a few
/// numbers each (never the frames).
struct Judging {
    from: Side,
    matcher: Matcher,
    every: Duration,
    tolerance: Duration,
    span: Span,
    beats: Beats,
}

/// Heartbeats seen so far, per connection.
#[derive(Default)]
struct Beats {
    /// When the window began, as far as the events seen so far say.
    started: Option<Duration>,
    /// The window ended (its fault ended, or `Stopping`).
    over: bool,
    conns: BTreeMap<u32, ConnBeats>,
}

/// One connection's heartbeats: first and last (with the fault time up to
/// it) and the worst gap between two of them.
#[derive(Default)]
struct ConnBeats {
    open: Option<Duration>,
    ended: bool,
    /// Faults active on it now.
    active: Vec<String>,
    /// Fault-covered time up to `since`.
    covered: Duration,
    since: Duration,
    first: Option<Duration>,
    last: Option<(Duration, Duration)>,
    worst: Option<Gap>,
}

impl ConnBeats {
    /// Account for fault time up to `t`; the covered total at `t`.
    fn advance(&mut self, t: Duration) -> Duration {
        if !self.active.is_empty() {
            self.covered += t.saturating_sub(self.since);
        }
        self.since = self.since.max(t);
        self.covered
    }
}

impl Judging {
    /// Track where the window begins and ends, from the events seen.
    fn track_window(&mut self, e: &Event) {
        let b = &mut self.beats;
        match &self.span {
            Span::Whole => b.started = Some(Duration::ZERO),
            Span::During(name) => match &e.kind {
                EventKind::FaultStart { fault, .. } if fault == name && b.started.is_none() => {
                    b.started = Some(e.t)
                }
                EventKind::FaultEnd { fault, .. } if fault == name => b.over = true,
                _ => {}
            },
            Span::After(r, len) => {
                if b.started.is_none() && refs::is_base(&r.base, e) {
                    b.started = Some(e.t + r.offset);
                }
                if r.base == crate::scenario::RefBase::Start {
                    b.started = Some(r.offset);
                }
                if let (Some(s), Some(l)) = (b.started, len) {
                    if e.t > s + *l {
                        b.over = true;
                    }
                }
            }
        }
        if matches!(e.kind, EventKind::Stopping) {
            b.over = true;
        }
    }

    /// Faults starting and ending on connections.
    fn track_faults(&mut self, e: &Event) {
        let conns = &mut self.beats.conns;
        match &e.kind {
            EventKind::FaultStart { fault, conns: on } => {
                for n in on {
                    let c = conns.entry(*n).or_default();
                    c.advance(e.t);
                    c.active.push(fault.clone());
                }
            }
            EventKind::FaultJoin { fault } => {
                if let Some(n) = e.conn {
                    let c = conns.entry(n).or_default();
                    c.advance(e.t);
                    c.active.push(fault.clone());
                }
            }
            EventKind::FaultEnd { fault, .. } => {
                for c in conns.values_mut().filter(|c| c.active.contains(fault)) {
                    c.advance(e.t);
                    c.active.retain(|f| f != fault);
                }
            }
            _ => {}
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

impl Judging {
    /// The connections judged in the window (those open some time in
    /// `[start, end]`), and the longest gap between matching frames on any of
    /// them, time under a fault not counted.
    fn worst_gap(&self, ev: &[Event], start: Duration, end: Duration) -> (Vec<u32>, Option<Gap>) {
        let mut judged: Vec<u32> = Vec::new();
        let mut worst: Option<Gap> = None;
        let mut consider = |gap: Gap| {
            if worst.is_none_or(|w| gap.counted() > w.counted()) {
                worst = Some(gap);
            }
        };
        for n in all_conns(ev) {
            let Some(oi) = open_idx(ev, n) else { continue };
            let open_t = ev[oi].t;
            let conn_end = ev
                .iter()
                .skip(oi + 1)
                .find(|e| e.conn == Some(n) && ends_connection(e))
                .map(|e| e.t);
            let a = open_t.max(start);
            let b = conn_end.unwrap_or(end).min(end);
            if open_t > end || conn_end.is_some_and(|c| c < start) || b < a {
                continue;
            }
            judged.push(n);
            let faults = fault_intervals(ev, n);
            let gap = |from: Duration, to: Duration| Gap {
                conn: n,
                from,
                to,
                excused: covered(&faults, from, to),
            };
            let seen = self.beats.conns.get(&n);
            // Beats in (a, b]: the first and last, and the worst gap between.
            let first = seen.and_then(|c| c.first).filter(|&t| t > a && t <= b);
            let last = seen
                .and_then(|c| c.last)
                .map(|l| l.0)
                .filter(|&t| t > a && t <= b);
            match (first, last) {
                (Some(f), Some(l)) => {
                    consider(gap(a, f));
                    if let Some(g) = seen.and_then(|c| c.worst) {
                        consider(g);
                    }
                    consider(gap(l, b));
                }
                _ => consider(gap(a, b)),
            }
        }
        (judged, worst)
    }

    /// The failing detail for a gap over the limit.
    fn gap_failure(&self, g: Gap, limit_s: &str) -> String {
        let from = self.from;
        let excused = if g.excused.is_zero() {
            String::new()
        } else {
            format!(
                ", not counting {} while a fault was active",
                secs(g.excused)
            )
        };
        format!(
            "connection #{} went {} without a matching frame from the {from} (t={} to t={}{excused}); {limit_s}",
            g.conn,
            secs(g.counted()),
            secs(g.from),
            secs(g.to)
        )
    }
}

impl Judge for Judging {
    fn anchor(&self) -> Anchor<'_> {
        Anchor::Span(&self.span)
    }

    fn observe(&mut self, e: &Event) {
        self.track_window(e);
        self.track_faults(e);
        let Some(n) = e.conn else { return };
        let b = &mut self.beats;
        match &e.kind {
            EventKind::Open => {
                b.conns.entry(n).or_default().open.get_or_insert(e.t);
                return;
            }
            _ if ends_connection(e) => {
                if let Some(c) = b.conns.get_mut(&n) {
                    c.ended = c.open.is_some();
                }
                return;
            }
            _ => {}
        }
        let (EventKind::Frame(f), Some(start), false) = (&e.kind, b.started, b.over) else {
            return;
        };
        if f.dir != self.from.sending() || !self.matcher.matches(f) {
            return;
        }
        let Some(c) = b.conns.get_mut(&n) else { return };
        match c.open {
            Some(open) if !c.ended && e.t > open.max(start) => {}
            _ => return,
        }
        let covered = c.advance(e.t);
        match c.last {
            Some((lt, lc)) => {
                let gap = Gap {
                    conn: n,
                    from: lt,
                    to: e.t,
                    excused: covered.saturating_sub(lc),
                };
                if c.worst.is_none_or(|w| gap.counted() > w.counted()) {
                    c.worst = Some(gap);
                }
            }
            None => c.first = Some(e.t),
        }
        c.last = Some((e.t, covered));
    }

    fn judge(&self, ctx: &Ctx<'_>) -> Option<Outcome> {
        let ev = ctx.events;
        let from = self.from;
        let w = ctx.window?;
        let (end, over) = w.end_now(ev, ctx.now, ctx.finished);
        let limit = self.every + self.tolerance;
        let (judged, worst) = self.worst_gap(ev, w.start.t, end);
        let observed = worst.map(|g| g.counted());
        let limit_s = format!(
            "limit {} (every {} + tolerance {})",
            secs(limit),
            dur(self.every),
            dur(self.tolerance)
        );
        if let Some(g) = worst.filter(|g| g.counted() > limit) {
            return outcome(false, observed, self.gap_failure(g, &limit_s));
        }
        if !over {
            return None;
        }
        let Some(g) = worst else {
            return outcome(
                false,
                None,
                format!(
                    "no connection was open {} (t={} to t={}), so no heartbeat could be judged",
                    w.label,
                    secs(w.start.t),
                    secs(end)
                ),
            );
        };
        outcome(
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
        )
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
            judge(&e, &log.events(), 18.0, false).is_none(),
            "open-ended window waits"
        );
        let log = Log::new()
            .connect(1, 0.0)
            .ping(1, 5.0, Client)
            .text(1, 10.0, Client, "ping")
            .ping(1, 15.5, Client)
            .stopping(20.0)
            .events();
        let v = judge(&e, &log, 20.0, false).unwrap();
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
        assert!(judge(&e, &log, 10.9, false).is_none());
        let v = judge(&e, &log, 11.5, false).unwrap();
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
        let v = judge(&e, &log, 30.0, false).unwrap();
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
        let v = judge(&e, &log, 19.0, false).unwrap();
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
        assert!(judge(&e, &log, 30.0, false).is_none());
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
        let v = judge(&e, &log.events(), 4.1, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        let e = build("{kind: heartbeat, match: {opcode: ping}, every: 1s, after: 1s, for: 3s}");
        let log = Log::new().connect(1, 5.0).events();
        let v = judge(&e, &log, 5.0, false).unwrap();
        assert!(!v.passed);
        assert!(
            v.detail.starts_with("no connection was open"),
            "{}",
            v.detail
        );
    }
}
