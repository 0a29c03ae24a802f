//! `detects`: every connection affected by the reference (the fault named in
//! `after`, or every open connection for other references) that is open at
//! that moment is given up by `side` within `within`: `side` sends a close
//! frame, a FIN or an RST on it. These are logged when the relay reads them,
//! even when a partition then holds them, so a client that notices a dead
//! link is credited although the server never hears of it.
//!
//! Connections already closed (or already given up by `side`) at the
//! reference are not counted; a connection the relay saw close without `side`
//! giving it up fails (someone else ended it). Observed: the slowest
//! connection's time to detection.

use super::common::{conn_list, give_up, outcome, secs};
use super::kind::{Anchor, Checks, Ctx, Invalid, Judge, Kind, Outcome, Timing};
use super::refs::{self, At};
use crate::events::{Ending, Event, EventKind, Side};
use crate::scenario::{Dur, Reference};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `detects` expectation: the side gives up every affected connection
/// within `within`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detects {
    /// Who must notice (default client).
    #[serde(default = "super::common::client")]
    pub side: Side,
    /// Reference (usually a fault name).
    pub after: Reference,
    /// Deadline.
    pub within: Dur,
}

impl Kind for Detects {
    const NAME: &'static str = "detects";
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

/// What happened to one affected connection.
enum Fate {
    /// Given up this long after the reference, this way.
    GaveUp(Duration, String),
    /// Closed at the relay at this time without `side` giving it up.
    ClosedOther(Duration, Ending),
    /// Nothing from `side` by the deadline.
    Missed,
    /// Still open, deadline not passed.
    Pending,
}

fn ending_name(e: Ending) -> &'static str {
    match e {
        Ending::Fin => "FIN",
        Ending::Reset => "reset",
        Ending::Shutdown => "shutdown",
        Ending::Failed => "failed handshake",
    }
}

impl Detects {
    /// Connections affected by the reference and open at it.
    fn affected(&self, events: &[Event], at: At) -> (Vec<u32>, bool) {
        let candidates: Vec<u32> = match self.after.fault() {
            Some(name) => {
                let mut v = Vec::new();
                for e in &events[..at.pos.min(events.len())] {
                    match &e.kind {
                        EventKind::FaultStart { fault, conns } if fault == name => {
                            v.extend_from_slice(conns)
                        }
                        EventKind::FaultJoin { fault } if fault == name => v.extend(e.conn),
                        _ => {}
                    }
                }
                v.sort_unstable();
                v.dedup();
                v
            }
            None => super::common::all_conns(&events[..at.pos.min(events.len())]),
        };
        let any = !candidates.is_empty();
        let open: Vec<u32> = candidates
            .into_iter()
            .filter(|&n| {
                let mut opened = false;
                for e in &events[..at.pos.min(events.len())] {
                    if e.conn != Some(n) {
                        continue;
                    }
                    match &e.kind {
                        EventKind::Open => opened = true,
                        EventKind::Closed { .. } => return false,
                        _ if give_up(e, self.side).is_some() => return false,
                        _ => {}
                    }
                }
                opened
            })
            .collect();
        (open, any)
    }

    fn fate(
        &self,
        events: &[Event],
        at: At,
        n: u32,
        deadline: Duration,
        now: Duration,
        finished: bool,
    ) -> Fate {
        for e in events.iter().skip(at.pos) {
            if e.conn != Some(n) {
                continue;
            }
            if let Some(how) = give_up(e, self.side) {
                return Fate::GaveUp(e.t.saturating_sub(at.t), how);
            }
            if let EventKind::Closed { how } = e.kind {
                return Fate::ClosedOther(e.t, how);
            }
        }
        if now > deadline || finished {
            Fate::Missed
        } else {
            Fate::Pending
        }
    }
}

impl Detects {
    /// Why nobody was affected when the reference happened.
    fn nothing_to_detect(&self, any_candidate: bool, what: &str, at: At) -> String {
        let side = self.side;
        let whose = match self.after.fault() {
            Some(name) if any_candidate => {
                format!("no connection affected by `{name}` was still open")
            }
            Some(name) => format!("`{name}` affected no connection"),
            None => "no connection was open".to_string(),
        };
        format!(
            "{whose} when {what} (t={}), so there was nothing for the {side} to detect",
            secs(at.t)
        )
    }

    /// One failure message per failing connection, in connection order; the
    /// connections that stayed open come first, as one message.
    fn failures(
        &self,
        ev: &[Event],
        at: At,
        what: &str,
        fates: &[(u32, Fate)],
    ) -> Vec<(u32, String)> {
        let side = self.side;
        let limit = self.within;
        // Failures, in connection order.
        let mut failures: Vec<(u32, String)> = Vec::new();
        let mut missed: Vec<u32> = Vec::new();
        for (n, f) in fates {
            match f {
                Fate::GaveUp(d, how) if *d > self.within.0 => failures.push((
                    *n,
                    format!(
                        "the {side} gave up connection #{n} only {} after {what} at t={} ({how}); limit {limit}",
                        secs(*d),
                        secs(at.t)
                    ),
                )),
                Fate::ClosedOther(t, how) => failures.push((
                    *n,
                    format!(
                        "connection #{n} was closed at t={} ({}) without a close frame, FIN or RST from the {side}, {} after {what} at t={}",
                        secs(*t),
                        ending_name(*how),
                        secs(t.saturating_sub(at.t)),
                        secs(at.t)
                    ),
                )),
                Fate::Missed => missed.push(*n),
                _ => {}
            }
        }
        if !missed.is_empty() {
            let sent = ev
                .iter()
                .skip(at.pos)
                .filter(|e| {
                    e.conn.is_some_and(|c| missed.contains(&c))
                        && matches!(&e.kind, EventKind::Frame(f) if f.dir == side.sending())
                })
                .count();
            let noun = if missed.len() == 1 {
                "connection"
            } else {
                "connections"
            };
            let on = if missed.len() == 1 {
                "on it"
            } else {
                "on them"
            };
            failures.insert(
                0,
                (
                    missed[0],
                    format!(
                        "{noun} {} stayed open: no close frame, FIN or RST from the {side} within {limit} after {what} (t={}); the {side} sent {} {on} after t={}",
                        conn_list(&missed),
                        secs(at.t),
                        super::common::plural(sent, "frame"),
                        secs(at.t)
                    ),
                ),
            );
        }
        failures
    }

    /// The passing detail: how long each connection took to be given up.
    fn passed_detail(&self, fates: &[(u32, Fate)], what: &str, at: At) -> String {
        let side = self.side;
        let limit = self.within;
        if let [(n, Fate::GaveUp(d, how))] = fates {
            format!(
                "the {side} gave up connection #{n} {} after {what} at t={} ({how}); limit {limit}",
                secs(*d),
                secs(at.t)
            )
        } else {
            let parts: Vec<String> = fates
                .iter()
                .filter_map(|(n, f)| match f {
                    Fate::GaveUp(d, how) => Some(format!("#{n} after {} ({how})", secs(*d))),
                    _ => None,
                })
                .collect();
            format!(
                "the {side} gave up connections {} once {what} at t={}; limit {limit}",
                parts.join(", "),
                secs(at.t)
            )
        }
    }
}

impl Judge for Detects {
    fn anchor(&self) -> Anchor<'_> {
        Anchor::After(
            &self.after,
            format!("there was nothing for the {} to detect", self.side).into(),
        )
    }

    fn judge(&self, ctx: &Ctx<'_>) -> Option<Outcome> {
        let ev = ctx.events;
        let what = refs::describe(&self.after);
        let fail = |detail: String, observed| outcome(false, observed, detail);
        let at = ctx.at();
        if ctx.now < at.t {
            return if ctx.finished {
                fail(
                    format!(
                        "the run ended at t={} before {what} (t={})",
                        secs(ctx.now),
                        secs(at.t)
                    ),
                    None,
                )
            } else {
                None
            };
        }
        let (conns, any_candidate) = self.affected(ev, at);
        if conns.is_empty() {
            return fail(self.nothing_to_detect(any_candidate, &what, at), None);
        }
        let deadline = at.t + self.within.0;
        let fates: Vec<(u32, Fate)> = conns
            .iter()
            .map(|&n| (n, self.fate(ev, at, n, deadline, ctx.now, ctx.finished)))
            .collect();
        let slowest = fates
            .iter()
            .filter_map(|(_, f)| match f {
                Fate::GaveUp(d, _) => Some(*d),
                _ => None,
            })
            .max();
        let failures = self.failures(ev, at, &what, &fates);
        if let Some((_, first)) = failures.first() {
            let mut detail = first.clone();
            if failures.len() > 1 {
                let others: Vec<u32> = failures[1..].iter().map(|(n, _)| *n).collect();
                detail.push_str(&format!("; also failed on {}", conn_list(&others)));
            }
            return fail(detail, slowest);
        }
        if fates.iter().any(|(_, f)| matches!(f, Fate::Pending)) {
            return None;
        }
        outcome(true, slowest, self.passed_detail(&fates, &what, at))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testlog::{build, judge, Log};
    use crate::events::{Direction, Side::*};
    use std::time::Duration;

    const YAML: &str = "{kind: detects, after: outage, within: 12s}";

    fn base() -> Log {
        Log::new()
            .connect(1, 0.1)
            .ping(1, 1.0, Client)
            .fault_start("outage", &[1], 3.0)
    }

    #[test]
    fn close_frame_within_limit_passes_with_time() {
        let e = build(YAML);
        let log = base()
            .ping(1, 4.0, Client)
            .close_frame(1, 10.31, Client, Some(1000))
            .events();
        let v = judge(&e, &log, 10.4, false).expect("decided once every connection was given up");
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.observed, Some(Duration::from_millis(7310)));
        assert_eq!(
            v.detail,
            "the client gave up connection #1 7.31 s after `outage` started at t=3.00 s (close frame 1000); limit 12s"
        );
    }

    #[test]
    fn waits_until_the_deadline_then_fails() {
        let e = build(YAML);
        let log = base().ping(1, 4.0, Client).events();
        assert!(judge(&e, &log, 14.9, false).is_none());
        // Judged by the clock, not by the last event's time.
        let v = judge(&e, &log, 15.1, false).expect("deadline passed");
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "connection #1 stayed open: no close frame, FIN or RST from the client within 12s after `outage` started (t=3.00 s); the client sent 1 frame on it after t=3.00 s"
        );
    }

    #[test]
    fn late_detection_fails() {
        let e = build(YAML);
        let log = base().fin(1, 16.0, Client).events();
        let v = judge(&e, &log, 16.0, false).unwrap();
        assert!(!v.passed);
        assert!(v.detail.contains("only 13.00 s"), "{}", v.detail);
        assert_eq!(v.observed, Some(Duration::from_secs(13)));
    }

    #[test]
    fn fin_held_by_a_partition_still_counts() {
        let e = build(YAML);
        let log = base()
            .fin(1, 9.0, Client)
            .held(1, 9.0, "outage", Direction::ToServer)
            .events();
        let v = judge(&e, &log, 9.0, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert!(v.detail.contains("(FIN)"));
    }

    #[test]
    fn server_side_is_judged_separately() {
        let e = build("{kind: detects, side: server, after: outage, within: 2s}");
        let log = base().rst(1, 4.0, Client).rst(1, 4.5, Server).events();
        let v = judge(&e, &log, 4.5, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert!(v.detail.starts_with("the server gave up"));
    }

    #[test]
    fn every_affected_connection_must_be_given_up() {
        let e = build(YAML);
        let log = Log::new()
            .connect(1, 0.1)
            .connect(2, 0.2)
            .connect(3, 0.3)
            .fault_start("outage", &[1, 2], 3.0)
            .fin(1, 5.0, Client);
        // #2 still pending: undecided. #3 is not affected.
        assert!(judge(&e, &log.events(), 6.0, false).is_none());
        let log = Log::new()
            .connect(1, 0.1)
            .connect(2, 0.2)
            .fault_start("outage", &[1, 2], 3.0)
            .fin(1, 5.0, Client)
            .close_frame(2, 8.0, Client, Some(4000))
            .events();
        let v = judge(&e, &log, 8.0, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.observed, Some(Duration::from_secs(5)));
        assert!(
            v.detail
                .contains("#1 after 2.00 s (FIN), #2 after 5.00 s (close frame 4000)"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn connection_closed_before_the_fault_is_not_counted() {
        let e = build(YAML);
        let log = Log::new()
            .connect(1, 0.1)
            .close_frame(1, 1.0, Client, Some(1000))
            .closed(1, 1.1)
            .connect(2, 2.0)
            .fault_start("outage", &[1, 2], 3.0)
            .fin(2, 4.0, Client)
            .events();
        let v = judge(&e, &log, 4.0, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert!(v.detail.contains("connection #2"));
        // Only a closed connection: nothing to detect, a clear failure.
        let log = Log::new()
            .connect(1, 0.1)
            .closed(1, 1.1)
            .fault_start("outage", &[1], 3.0)
            .events();
        let v = judge(&e, &log, 3.0, false).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "no connection affected by `outage` was still open when `outage` started (t=3.00 s), so there was nothing for the client to detect"
        );
    }

    #[test]
    fn closed_by_someone_else_fails_early() {
        let e = build(YAML);
        let log = base().rst(1, 5.0, Server).closed(1, 5.0).events();
        let v = judge(&e, &log, 5.0, false).unwrap();
        assert!(!v.passed);
        assert!(
            v.detail.starts_with("connection #1 was closed at t=5.00 s"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn closing_while_being_stopped_is_not_detection() {
        let e = build(YAML);
        let log = base()
            .stopping(6.0)
            .close_frame(1, 6.1, Client, Some(1001))
            .events();
        let v = judge(&e, &log, 6.1, false).expect("decided at Stopping");
        assert!(!v.passed);
        assert!(
            v.detail.starts_with("connection #1 stayed open"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn reference_never_happens() {
        let e = build(YAML);
        let log = Log::new().connect(1, 0.1).events();
        assert!(judge(&e, &log, 30.0, false).is_none());
        let v = judge(&e, &log, 40.0, true).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "fault `outage` never started, so there was nothing for the client to detect"
        );
    }

    #[test]
    fn non_fault_reference_uses_open_connections() {
        let e = build("{kind: detects, after: open#1 + 2s, within: 5s}");
        let log = Log::new().connect(1, 1.0).fin(1, 4.5, Client).events();
        assert!(judge(&e, &log, 2.5, false).is_none());
        let v = judge(&e, &log, 4.5, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.observed, Some(Duration::from_millis(1500)));
    }
}
