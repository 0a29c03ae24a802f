//! Resolving references (`open#1 + 3s`, `outage.end`…) against the event log,
//! and the windows and connections of faults. Shared by the expectations and
//! the timeline controller.

use crate::events::{Event, EventKind};
use crate::scenario::{RefBase, Reference};
use std::time::Duration;

/// When the reference happened (its base event's time plus the offset), or
/// `None` if its base event is not in the log (yet). The time may lie after
/// the last event when the offset has not elapsed.
///
/// `start` is t = 0; `accept#N`, `open#N` and `close#N` are connection N's
/// first `Accept`, `Open` and `Closed`; `NAME`/`NAME.start` and `NAME.end` are
/// the fault's `FaultStart` and `FaultEnd`.
pub fn resolve(r: &Reference, events: &[Event]) -> Option<Duration> {
    base_event(&r.base, events).map(|(t, _)| t + r.offset)
}

/// The reference base an event establishes, if any (its first occurrence is
/// when the reference happened). The timeline controller uses the same
/// mapping, so faults and expectations agree on when `open#2` or `x.end` was.
pub fn base_of(e: &Event) -> Option<RefBase> {
    match &e.kind {
        EventKind::Accept { .. } => e.conn.map(RefBase::Accept),
        EventKind::Open => e.conn.map(RefBase::Open),
        EventKind::Closed { .. } => e.conn.map(RefBase::Close),
        EventKind::FaultStart { fault, .. } => Some(RefBase::FaultStart(fault.clone())),
        EventKind::FaultEnd { fault, .. } => Some(RefBase::FaultEnd(fault.clone())),
        _ => None,
    }
}

/// Whether `e` is an occurrence of `base` (without allocating).
pub(crate) fn is_base(base: &RefBase, e: &Event) -> bool {
    match (base, &e.kind) {
        (RefBase::Accept(n), EventKind::Accept { .. })
        | (RefBase::Open(n), EventKind::Open)
        | (RefBase::Close(n), EventKind::Closed { .. }) => e.conn == Some(*n),
        (RefBase::FaultStart(name), EventKind::FaultStart { fault, .. })
        | (RefBase::FaultEnd(name), EventKind::FaultEnd { fault, .. }) => fault == name,
        _ => false,
    }
}

/// The time and log index of the reference's base event (`start` has none).
fn base_event(base: &RefBase, events: &[Event]) -> Option<(Duration, Option<usize>)> {
    if *base == RefBase::Start {
        return Some((Duration::ZERO, None));
    }
    events
        .iter()
        .position(|e| is_base(base, e))
        .map(|i| (events[i].t, Some(i)))
}

/// A resolved reference: its time, and the first log index that lies after it.
///
/// Events at indices `>= pos` happened after the reference. With no offset
/// this is the event right after the base event (so an `Accept` logged at the
/// same millisecond as a `Closed`, but after it, is after `close#1`); with an
/// offset it is the first event later than `t`; for `start` it is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// The reference's time.
    pub t: Duration,
    /// First index after the reference (may be `events.len()`).
    pub pos: usize,
}

impl At {
    /// Whether event `i` lies after the reference.
    pub fn is_after(&self, i: usize) -> bool {
        i >= self.pos
    }
}

/// Resolve with log position; see [`At`].
pub(crate) fn locate(r: &Reference, events: &[Event]) -> Option<At> {
    let (bt, idx) = base_event(&r.base, events)?;
    let t = bt + r.offset;
    let pos = match (idx, r.offset.is_zero()) {
        (None, true) => 0,
        (Some(i), true) => i + 1,
        _ => events.iter().position(|e| e.t > t).unwrap_or(events.len()),
    };
    Some(At { t, pos })
}

/// The fault's active window: its start and, once it ended, its end.
pub fn fault_window(name: &str, events: &[Event]) -> Option<(Duration, Option<Duration>)> {
    let start = resolve(&fault_ref(name, false), events)?;
    let end = resolve(&fault_ref(name, true), events);
    Some((start, end))
}

/// The connections a fault applied to: those listed at its start plus those
/// that joined while it was active; sorted, without repeats.
pub fn fault_conns(name: &str, events: &[Event]) -> Vec<u32> {
    let mut out = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::FaultStart { fault, conns } if fault == name => out.extend_from_slice(conns),
            EventKind::FaultJoin { fault } if fault == name => out.extend(e.conn),
            _ => {}
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `NAME` or `NAME.end` as a reference.
pub(crate) fn fault_ref(name: &str, end: bool) -> Reference {
    Reference {
        base: if end {
            RefBase::FaultEnd(name.to_string())
        } else {
            RefBase::FaultStart(name.to_string())
        },
        offset: Duration::ZERO,
    }
}

/// The reference in words for a verdict: "`outage` started", "connection #1
/// opened", or the reference as written (`` `outage.end + 2s` ``).
pub(crate) fn describe(r: &Reference) -> String {
    if !r.offset.is_zero() {
        return format!("`{r}`");
    }
    match &r.base {
        RefBase::Start => "the start".to_string(),
        RefBase::Accept(n) => format!("connection #{n} was accepted"),
        RefBase::Open(n) => format!("connection #{n} opened"),
        RefBase::Close(n) => format!("connection #{n} closed"),
        RefBase::FaultStart(n) => format!("`{n}` started"),
        RefBase::FaultEnd(n) => format!("`{n}` ended"),
    }
}

/// Why a reference is not in the log, in words ("fault `outage` never started").
pub(crate) fn never_happened(r: &Reference) -> String {
    match &r.base {
        RefBase::Start => "the run never started".to_string(),
        RefBase::Accept(n) => format!("connection #{n} was never accepted"),
        RefBase::Open(n) => format!("connection #{n} never opened"),
        RefBase::Close(n) => format!("connection #{n} never closed"),
        RefBase::FaultStart(n) => format!("fault `{n}` never started"),
        RefBase::FaultEnd(n) => format!("fault `{n}` never ended"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::testlog::Log;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn resolves_each_base() {
        let log = Log::new()
            .accept(1, 0.1)
            .open(1, 0.2)
            .fault_start("outage", &[1], 3.0)
            .fault_end("outage", &[1], 5.0)
            .closed(1, 6.0)
            .events();
        let s = Duration::from_secs_f64;
        assert_eq!(resolve(&r("start"), &log), Some(s(0.0)));
        assert_eq!(resolve(&r("2s"), &log), Some(s(2.0)));
        assert_eq!(resolve(&r("accept#1"), &log), Some(s(0.1)));
        assert_eq!(resolve(&r("open#1 + 3s"), &log), Some(s(3.2)));
        assert_eq!(resolve(&r("close#1"), &log), Some(s(6.0)));
        assert_eq!(resolve(&r("outage"), &log), Some(s(3.0)));
        assert_eq!(resolve(&r("outage.start"), &log), Some(s(3.0)));
        assert_eq!(resolve(&r("outage.end"), &log), Some(s(5.0)));
        assert_eq!(resolve(&r("open#2"), &log), None);
        assert_eq!(resolve(&r("other.end"), &log), None);
        assert_eq!(fault_window("outage", &log), Some((s(3.0), Some(s(5.0)))));
        assert_eq!(fault_window("other", &log), None);
    }

    #[test]
    fn position_after_reference() {
        let log = Log::new()
            .accept(1, 0.1)
            .open(1, 0.2)
            .closed(1, 1.0)
            .accept(2, 1.0)
            .events();
        let at = locate(&r("close#1"), &log).unwrap();
        assert!(!at.is_after(2));
        assert!(at.is_after(3));
        let at = locate(&r("close#1 + 1s"), &log).unwrap();
        assert_eq!(at.pos, 4);
        assert_eq!(locate(&r("start"), &log).unwrap().pos, 0);
    }

    #[test]
    fn fault_conns_include_joins() {
        let log = Log::new()
            .accept(1, 0.1)
            .open(1, 0.2)
            .fault_start("outage", &[1], 3.0)
            .accept(2, 4.0)
            .join("outage", 2, 4.0)
            .fault_end("outage", &[1, 2], 5.0)
            .events();
        assert_eq!(fault_conns("outage", &log), vec![1, 2]);
        assert!(fault_conns("nothing", &log).is_empty());
    }
}
