//! What the timeline shows and where: a report read into lanes, fault
//! windows and expectation marks, and the geometry (time scale, lane height,
//! the y of every row) that the drawing in `svg.rs` uses.

use super::super::{secs3, Report};
use crate::events::EventKind;
use crate::expect::refs::resolve;
use crate::scenario::{ExpectKind, Scenario};
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the plot starts, left of it the lane labels.
pub(super) const LEFT: f64 = 70.0;
/// Width of the plot (the run's duration).
pub(super) const PLOT_W: f64 = 1100.0;
/// Room right of the plot.
const RIGHT: f64 = 40.0;

/// One connection's life, as far as the lane shows it.
#[derive(Default)]
pub(super) struct Lane {
    pub accept: Option<Duration>,
    pub open: Option<Duration>,
    pub closed: Option<Duration>,
    /// Its first event (for a lane with no accept in the log).
    pub first: Option<Duration>,
    /// Why the handshake failed, if it did.
    pub failed: Option<String>,
}

/// One activation of a fault.
pub(super) struct FaultWin {
    pub name: String,
    pub start: Duration,
    pub end: Option<Duration>,
    /// conn -> time it became affected
    pub conns: BTreeMap<u32, Duration>,
}

pub(super) fn lanes_of(report: &Report) -> BTreeMap<u32, Lane> {
    let mut lanes: BTreeMap<u32, Lane> = BTreeMap::new();
    for e in &report.events {
        let Some(c) = e.conn else { continue };
        let l = lanes.entry(c).or_default();
        l.first.get_or_insert(e.t);
        match &e.kind {
            EventKind::Accept { .. } => {
                l.accept.get_or_insert(e.t);
            }
            EventKind::Open => {
                l.open.get_or_insert(e.t);
            }
            EventKind::Closed { .. } => {
                l.closed.get_or_insert(e.t);
            }
            EventKind::Rejected { status } => l.failed = Some(format!("HTTP {status}")),
            EventKind::UpstreamFailed { .. } => l.failed = Some("upstream failed".into()),
            EventKind::BadRequest { .. } => l.failed = Some("bad request".into()),
            EventKind::Refused { fault, how } => {
                l.failed = Some(format!("refused by {fault} ({how})"))
            }
            _ => {}
        }
    }
    lanes
}

pub(super) fn faults_of(report: &Report) -> Vec<FaultWin> {
    let mut v: Vec<FaultWin> = Vec::new();
    for e in &report.events {
        match &e.kind {
            EventKind::FaultStart { fault, conns } => {
                let mut w = FaultWin {
                    name: fault.clone(),
                    start: e.t,
                    end: None,
                    conns: BTreeMap::new(),
                };
                for c in conns {
                    w.conns.insert(*c, e.t);
                }
                v.push(w);
            }
            EventKind::FaultEnd { fault, conns } => {
                if let Some(w) = v
                    .iter_mut()
                    .rev()
                    .find(|w| &w.name == fault && w.end.is_none())
                {
                    w.end = Some(e.t);
                    for c in conns {
                        w.conns.entry(*c).or_insert(w.start);
                    }
                }
            }
            EventKind::FaultJoin { fault } => {
                if let (Some(c), Some(w)) = (e.conn, v.iter_mut().rev().find(|w| &w.name == fault))
                {
                    w.conns.entry(c).or_insert(e.t);
                }
            }
            _ => {}
        }
    }
    v
}

/// A deadline or window end to draw for an expectation.
pub(super) struct Mark {
    pub name: String,
    pub passed: Option<bool>,
    /// The resolved `after` reference.
    pub reference: Option<Duration>,
    /// The reference plus `within` or `for`.
    pub deadline: Option<Duration>,
    /// The measured moment (detects, reconnects, sends).
    pub observed: Option<Duration>,
    pub label: String,
    pub detail: String,
    /// Drawn through the lanes (detects, reconnects): the moments a person
    /// looks for first.
    pub prominent: bool,
    pub kind: &'static str,
}

pub(super) fn marks_of(report: &Report, scenario: Option<&Scenario>) -> Vec<Mark> {
    let mut marks = Vec::new();
    let Some(sc) = scenario else {
        return marks;
    };
    for (i, spec) in sc.expect.iter().enumerate() {
        let name = sc.expect_name(i);
        let verdict = report.expectations.iter().find(|v| v.name == name);
        // A deadline (`within`) is also where the measured moment is drawn.
        let timing = spec.kind.timing();
        let (after, span, measured) = (timing.after, timing.len, timing.deadline);
        let reference = after.and_then(|a| resolve(a, &report.events));
        let deadline = reference.zip(span).map(|(r, s)| r + s);
        let observed = if measured {
            reference
                .zip(verdict.and_then(|v| v.observed))
                .map(|(r, o)| r + o)
        } else {
            None
        };
        if deadline.is_none() && observed.is_none() {
            continue;
        }
        let kind = spec.kind.name();
        let result = match verdict.map(|v| v.passed) {
            Some(true) => "✔",
            Some(false) => "✘",
            None => "?",
        };
        let obs = verdict
            .and_then(|v| v.observed)
            .map(|o| format!(" · {}", secs3(o)))
            .unwrap_or_default();
        marks.push(Mark {
            label: format!("{result} {name} ({kind}){obs}"),
            name,
            passed: verdict.map(|v| v.passed),
            reference,
            deadline,
            observed,
            detail: verdict.map(|v| v.detail.clone()).unwrap_or_default(),
            kind,
            prominent: matches!(
                spec.kind,
                ExpectKind::Detects(_) | ExpectKind::Reconnects(_)
            ),
        });
    }
    marks
}

pub(super) fn nice_step(total_secs: f64) -> f64 {
    let raw = total_secs / 12.0;
    let mag = 10f64.powf(raw.max(1e-3).log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// The geometry of the timeline: the time scale and where each row goes.
pub(super) struct Layout {
    /// The time at the right end of the plot.
    pub total: Duration,
    total_s: f64,
    pub lane_h: f64,
    /// Length of a frame tick.
    pub tick: f64,
    pub lanes_top: f64,
    pub lanes_bottom: f64,
    pub axis_y: f64,
    pub marks_top: f64,
    pub legend_y: f64,
    pub height: f64,
    pub width: f64,
    /// The y of each connection's lane.
    pub lane_y: BTreeMap<u32, f64>,
}

impl Layout {
    /// Lays out `lanes`, one row per fault window and one per mark, over the
    /// run (or the latest deadline, if later).
    pub fn new(
        report: &Report,
        lanes: &BTreeMap<u32, Lane>,
        faults: &[FaultWin],
        marks: &[Mark],
    ) -> Layout {
        let last = report.events.iter().map(|e| e.t).max().unwrap_or_default();
        let mut total = report.duration.max(last);
        for m in marks {
            if let Some(d) = m.deadline {
                total = total.max(d);
            }
        }
        let total_s = total.as_secs_f64().max(0.001);
        let n = lanes.len();
        let lane_h: f64 = if n <= 12 {
            56.0
        } else if n <= 40 {
            30.0
        } else {
            14.0
        };
        let tick = (lane_h / 4.0).min(14.0);
        let fault_band = 18.0 * faults.len() as f64;
        let lanes_top = 14.0 + fault_band + 6.0;
        let lanes_bottom = lanes_top + lane_h * n.max(1) as f64;
        let axis_y = lanes_bottom + 8.0;
        let marks_top = axis_y + 30.0;
        let legend_y = marks_top + 18.0 * marks.len() as f64 + 16.0;
        let height = legend_y + 14.0;
        let width = LEFT + PLOT_W + RIGHT;
        let lane_y: BTreeMap<u32, f64> = lanes
            .keys()
            .enumerate()
            .map(|(i, c)| (*c, lanes_top + lane_h * (i as f64 + 0.5)))
            .collect();
        Layout {
            total,
            total_s,
            lane_h,
            tick,
            lanes_top,
            lanes_bottom,
            axis_y,
            marks_top,
            legend_y,
            height,
            width,
            lane_y,
        }
    }

    /// The x of time `t`.
    pub fn x(&self, t: Duration) -> f64 {
        LEFT + t.as_secs_f64() / self.total_s * PLOT_W
    }

    /// The x of the plot's right end.
    pub fn end_x(&self) -> f64 {
        self.x(self.total)
    }

    /// The plot's length in seconds (never zero).
    pub fn total_secs(&self) -> f64 {
        self.total_s
    }
}
