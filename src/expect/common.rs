//! Helpers shared by the expectation kinds: reading connections' lives out of
//! the log, judging windows, and wording verdicts.

use super::refs::{self, At};
use super::{JudgeCtx, Outcome};
use crate::events::{Event, EventKind, Opcode, Side};
use crate::scenario::{Dur, Reference};
use std::time::Duration;

/// Seconds with two decimals and the unit: `7.31 s`.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A duration as written in scenarios (`12s`, `500ms`).
pub(crate) fn dur(d: Duration) -> String {
    Dur(d).to_string()
}

/// The default side of `side:` / `from:`.
pub(crate) fn client() -> Side {
    Side::Client
}

/// A decided outcome.
pub(crate) fn outcome(passed: bool, observed: Option<Duration>, detail: String) -> Option<Outcome> {
    Some(Outcome {
        passed,
        observed,
        detail,
    })
}

/// Locate the reference an expectation counts from. When it has not happened
/// the expectation is undecided (`Err(None)`) while the run goes on, and fails
/// at the end (`Err(Some(outcome))`) saying so and what could not be judged:
/// `consequence` completes "REF never happened, so …".
pub(crate) fn locate_or_fail(
    r: &Reference,
    ctx: &JudgeCtx<'_>,
    consequence: &str,
) -> Result<At, Option<Outcome>> {
    match refs::locate(r, ctx.events) {
        Some(at) => Ok(at),
        None if ctx.finished => Err(Outcome::fail(
            None,
            format!("{}, so {consequence}", refs::never_happened(r)),
        )),
        None => Err(None),
    }
}

/// If `e` is `side` giving its connection up (a close frame it sent, or a FIN
/// or RST from it, logged at read time even when a fault holds it), how.
pub(crate) fn give_up(e: &Event, side: Side) -> Option<String> {
    match &e.kind {
        EventKind::Frame(f) if f.opcode == Opcode::Close && f.dir == side.sending() => {
            Some(match f.close_code {
                Some(c) => format!("close frame {c}"),
                None => "close frame without code".to_string(),
            })
        }
        EventKind::Fin { from } if *from == side => Some("FIN".to_string()),
        EventKind::Rst { from } if *from == side => Some("RST".to_string()),
        EventKind::KernelGaveUp { from, what, seen } if *from == side => {
            Some(format!("{what} (seen in the {seen})"))
        }
        _ => None,
    }
}

/// Whether `e` ends the connection for heartbeat purposes: a close frame or
/// FIN/RST from either side, or the relay's `Closed`.
pub(crate) fn ends_connection(e: &Event) -> bool {
    match &e.kind {
        EventKind::Frame(f) => f.opcode == Opcode::Close,
        EventKind::Fin { .. } | EventKind::Rst { .. } | EventKind::Closed { .. } => true,
        _ => false,
    }
}

/// Time and index of the `Stopping` marker, if logged.
pub(crate) fn stopping(events: &[Event]) -> Option<(usize, Duration)> {
    events
        .iter()
        .position(|e| matches!(e.kind, EventKind::Stopping))
        .map(|i| (i, events[i].t))
}

/// The context as seen up to `Stopping`: what peers do while flatline stops
/// them is not judged, and once `Stopping` is logged the verdict is due (the
/// clock is taken as the moment of `Stopping`).
pub(crate) fn before_stopping<'a>(ctx: &JudgeCtx<'a>) -> JudgeCtx<'a> {
    match stopping(ctx.events) {
        Some((i, t)) => JudgeCtx {
            events: &ctx.events[..i],
            now: t,
            finished: true,
        },
        None => *ctx,
    }
}

/// Index of the first event of connection `n` satisfying `pred`.
pub(crate) fn first_of(
    events: &[Event],
    n: u32,
    pred: impl Fn(&EventKind) -> bool,
) -> Option<usize> {
    events
        .iter()
        .position(|e| e.conn == Some(n) && pred(&e.kind))
}

/// Every connection number that appears in the log, ascending.
pub(crate) fn all_conns(events: &[Event]) -> Vec<u32> {
    let mut v: Vec<u32> = events.iter().filter_map(|e| e.conn).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Index of connection `n`'s `Open`.
pub(crate) fn open_idx(events: &[Event], n: u32) -> Option<usize> {
    first_of(events, n, |k| matches!(k, EventKind::Open))
}

/// "#1", "#1 and #2", "#1, #2 and #3".
pub(crate) fn conn_list(conns: &[u32]) -> String {
    let v: Vec<String> = conns.iter().map(|c| format!("#{c}")).collect();
    match v.len() {
        0 => String::new(),
        1 => v[0].clone(),
        n => format!("{} and {}", v[..n - 1].join(", "), v[n - 1]),
    }
}

/// "1 attempt", "2 attempts".
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// "1 connection was", "2 connections were".
pub(crate) fn were(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word} was")
    } else {
        format!("{n} {word}s were")
    }
}

/// The window of `stays_connected`, `heartbeat` and `backoff`: a fault's
/// active time (`during`), `after` [+ `for`], or the whole run.
#[derive(Debug, Clone)]
pub enum Span {
    /// While the fault is active (until the run ends if it never ends).
    During(String),
    /// From the reference, for the given time (or until the run ends).
    After(Reference, Option<Duration>),
    /// The whole run.
    Whole,
}

impl Span {
    /// From the scenario parameters (`during` wins over `after`).
    pub fn new(during: &Option<String>, after: &Option<Reference>, for_: &Option<Dur>) -> Span {
        match (during, after) {
            (Some(d), _) => Span::During(d.clone()),
            (None, Some(a)) => Span::After(a.clone(), for_.map(|d| d.0)),
            (None, None) => match for_ {
                Some(d) => Span::After(Reference::start(), Some(d.0)),
                None => Span::Whole,
            },
        }
    }

    /// The window as far as the log knows it; `Err` with the reason when its
    /// start is not in the log.
    /// [`Span::locate`] for a judge: undecided (`Err(None)`) while the window
    /// has not begun, failing at the end of the run (`Err(Some(outcome))`).
    pub(crate) fn locate_or_fail(&self, ctx: &JudgeCtx<'_>) -> Result<Window, Option<Outcome>> {
        match self.locate(ctx.events) {
            Ok(w) => Ok(w),
            Err(why) if ctx.finished => Err(Outcome::fail(
                None,
                format!("{why}, so the window to judge never began"),
            )),
            Err(_) => Err(None),
        }
    }

    /// The window as far as `events` know it; `Err` says why it has not begun.
    pub fn locate(&self, events: &[Event]) -> Result<Window, String> {
        match self {
            Span::During(name) => {
                let start = refs::locate(&refs::fault_ref(name, false), events)
                    .ok_or_else(|| format!("fault `{name}` never started"))?;
                let end = refs::fault_window(name, events).and_then(|(_, e)| e);
                Ok(Window {
                    start,
                    end,
                    label: format!("while `{name}` was active"),
                })
            }
            Span::After(r, len) => {
                let start = refs::locate(r, events).ok_or_else(|| refs::never_happened(r))?;
                Ok(Window {
                    start,
                    end: len.map(|l| start.t + l),
                    label: match len {
                        Some(l) => format!("in the {} after {}", dur(*l), refs::describe(r)),
                        None => format!("after {}", refs::describe(r)),
                    },
                })
            }
            Span::Whole => Ok(Window {
                start: At {
                    t: Duration::ZERO,
                    pos: 0,
                },
                end: None,
                label: "during the run".to_string(),
            }),
        }
    }
}

/// A located window.
#[derive(Debug, Clone)]
pub struct Window {
    /// Its start.
    pub start: At,
    /// Its end when known (a fault's end, or `after + for`).
    pub end: Option<Duration>,
    /// In words: "while `outage` was active", "in the 10s after `x` ended".
    pub label: String,
}

impl Window {
    /// Where judging stops now, and whether the window is over (no later
    /// event can fall in it). The window is cut at `Stopping`: what peers do
    /// while being stopped is not judged.
    pub fn end_now(&self, events: &[Event], now: Duration, finished: bool) -> (Duration, bool) {
        let stop = stopping(events).map(|(_, t)| t);
        let end = match (self.end, stop) {
            (Some(e), Some(s)) => Some(e.min(s)),
            (e, s) => e.or(s),
        };
        match end {
            Some(e) if now > e || Some(e) == stop => (e, true),
            Some(_) if finished => (now, true),
            Some(_) => (now, false),
            None => (now, finished),
        }
    }

    /// Whether event `i` (at `t`) lies in the window ending at `end`.
    pub fn contains(&self, i: usize, t: Duration, end: Duration) -> bool {
        self.start.is_after(i) && t <= end
    }
}
