//! The HTML report (`--html`): one self-contained file (inline CSS and SVG,
//! no scripts, nothing fetched from the network).
//!
//! Its centre is an SVG timeline: time runs left to right; each connection is
//! a lane from its accept to its close (dashed until the handshake is
//! answered, a green dot at `open`); frames are ticks above the lane when the
//! client sent them and below when the server did, coloured by kind; close
//! frames, FIN and RST have markers of their own; fault windows are shaded
//! across the lanes they affect; expectation deadlines are dashed lines with
//! the verdict beside them, and the measured moment (when the client noticed,
//! when it came back) is a solid line. Frames are aggregated per pixel, so a
//! run with tens of thousands of frames still gives a small page. A run keeps
//! frames that nothing judges as folded runs (first frame, count, last time):
//! their ticks are spread evenly from the run's first frame to its last, and
//! the page says how many frames were drawn that way.
//!
//! Below the timeline: the verdicts, warnings, commands, and the full event
//! list folded in a `<details>`.

use super::{secs3, xml_escape as esc, Report};
use crate::events::{Direction, EventKind, Opcode, Side};
use crate::expect::refs::resolve;
use crate::scenario::{ExpectKind, Scenario};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

const LEFT: f64 = 70.0;
const PLOT_W: f64 = 1100.0;
const RIGHT: f64 = 40.0;
/// Events listed in the folded table at most.
const MAX_EVENT_ROWS: usize = 5_000;

const FAULT_COLOURS: [&str; 6] = [
    "#e8a33d", "#9b6fd1", "#4aa3c7", "#d1675b", "#6bb36b", "#c7b04a",
];
const PASS: &str = "#1e8c3a";
const FAIL: &str = "#c62828";

/// Frame classes drawn as ticks, with their colours.
const CLASSES: [(&str, &str); 6] = [
    ("text", "#3f6fb5"),
    ("binary", "#7a52b3"),
    ("ping", "#e07b00"),
    ("pong", "#0f9d8a"),
    ("other", "#888888"),
    ("dropped", "#d62728"),
];

fn class_of(op: Opcode) -> usize {
    match op {
        Opcode::Text => 0,
        Opcode::Binary => 1,
        Opcode::Ping => 2,
        Opcode::Pong => 3,
        _ => 4,
    }
}

#[derive(Default)]
struct Lane {
    accept: Option<Duration>,
    open: Option<Duration>,
    closed: Option<Duration>,
    first: Option<Duration>,
    failed: Option<String>,
}

struct FaultWin {
    name: String,
    start: Duration,
    end: Option<Duration>,
    /// conn -> time it became affected
    conns: BTreeMap<u32, Duration>,
}

/// A self-contained HTML page for one run. `scenario` defaults to the
/// scenario recorded in the report (used for fault kinds and deadlines).
pub fn html(report: &Report, scenario: Option<&Scenario>) -> String {
    let scenario = scenario.or(report.scenario_spec.as_ref());
    let mut out = String::new();
    let title = format!("flatline: {}", report.scenario);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n",
        esc(&title),
        CSS
    );
    let (badge, cls) = if report.passed {
        ("PASS", "pass")
    } else {
        ("FAIL", "fail")
    };
    let _ = writeln!(
        out,
        "<h1>{} <span class=\"badge {cls}\">{badge}</span></h1>",
        esc(&report.scenario)
    );
    if let Some(sc) = scenario {
        let _ = writeln!(out, "<p class=\"desc\">{}</p>", esc(sc.description.trim()));
    }
    let _ = writeln!(
        out,
        "<p class=\"meta\">seed {} · ran {} · {} connection(s) · {} events</p>",
        report.seed,
        secs3(report.duration),
        lanes_of(report).len(),
        report.events.len()
    );
    let (runs, folded) = report
        .events
        .iter()
        .fold((0u64, 0u64), |(r, n), e| match &e.kind {
            EventKind::Frames(f) => (r + 1, n + f.count),
            _ => (r, n),
        });
    if runs > 0 {
        let _ = writeln!(
            out,
            "<p class=\"meta\">summarised: {folded} frames that no expectation needed one by one are kept as {runs} runs of similar frames (first frame, count, last time); their ticks are spread evenly over each run</p>"
        );
    }
    out.push_str(&timeline_svg(report, scenario));
    verdicts_section(&mut out, report);
    if !report.warnings.is_empty() {
        out.push_str("<h2>Warnings</h2>\n<ul class=\"warnings\">\n");
        for w in &report.warnings {
            let _ = writeln!(out, "<li>{}</li>", esc(w));
        }
        out.push_str("</ul>\n");
    }
    if !report.commands.is_empty() {
        out.push_str("<h2>Commands</h2>\n");
        for c in &report.commands {
            let end = match (c.exit, c.signal) {
                (Some(code), _) => format!("exited with {code}"),
                (None, Some(sig)) => format!("ended by signal {sig}"),
                (None, None) => "still running or not started".into(),
            };
            let _ = writeln!(
                out,
                "<details><summary>{}: <code>{}</code> ({})</summary><pre>{}</pre></details>",
                esc(&c.role),
                esc(&c.command),
                esc(&end),
                esc(&c.output_tail)
            );
        }
    }
    events_section(&mut out, report);
    out.push_str("</body>\n</html>\n");
    out
}

fn lanes_of(report: &Report) -> BTreeMap<u32, Lane> {
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

fn faults_of(report: &Report) -> Vec<FaultWin> {
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
struct Mark {
    name: String,
    passed: Option<bool>,
    reference: Option<Duration>,
    deadline: Option<Duration>,
    observed: Option<Duration>,
    label: String,
    detail: String,
    /// Drawn through the lanes (detects, reconnects): the moments a person
    /// looks for first.
    prominent: bool,
    kind: &'static str,
}

fn marks_of(report: &Report, scenario: Option<&Scenario>) -> Vec<Mark> {
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

fn nice_step(total_secs: f64) -> f64 {
    let raw = total_secs / 12.0;
    let mag = 10f64.powf(raw.max(1e-3).log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn timeline_svg(report: &Report, scenario: Option<&Scenario>) -> String {
    let lanes = lanes_of(report);
    let faults = faults_of(report);
    let marks = marks_of(report, scenario);
    let last = report.events.iter().map(|e| e.t).max().unwrap_or_default();
    let mut total = report.duration.max(last);
    for m in &marks {
        if let Some(d) = m.deadline {
            total = total.max(d);
        }
    }
    let total_s = total.as_secs_f64().max(0.001);
    let x = |t: Duration| LEFT + t.as_secs_f64() / total_s * PLOT_W;
    let end_x = x(total);

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

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    // Grid and axis.
    let step = nice_step(total_s);
    let mut gx = 0.0;
    while gx <= total_s + 1e-9 {
        let px = LEFT + gx / total_s * PLOT_W;
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{lanes_top:.1}\" x2=\"{px:.1}\" y2=\"{axis_y:.1}\" stroke=\"#eee\"/><text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}s</text>",
            axis_y + 14.0,
            trim_num(gx)
        );
        gx += step;
    }
    let _ = writeln!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{axis_y:.1}\" x2=\"{end_x:.1}\" y2=\"{axis_y:.1}\" stroke=\"#999\"/>"
    );

    // Fault windows: label row on top, shading across affected lanes.
    for (i, f) in faults.iter().enumerate() {
        let colour = FAULT_COLOURS[i % FAULT_COLOURS.len()];
        let x0 = x(f.start);
        let x1 = f.end.map(x).unwrap_or(end_x);
        let row_y = 14.0 + 18.0 * i as f64;
        let kind = report
            .fault_kind(&f.name)
            .map(|k| format!(" ({k})"))
            .unwrap_or_default();
        let span = match f.end {
            Some(e) if e == f.start => format!("at {}", secs3(f.start)),
            Some(e) => format!("{} – {}", secs3(f.start), secs3(e)),
            None => format!("from {}", secs3(f.start)),
        };
        let _ = writeln!(
            s,
            "<g class=\"fault\"><title>{}</title>",
            esc(&format!("fault {}{kind}: {span}", f.name))
        );
        if x1 - x0 < 2.0 {
            let _ = writeln!(
                s,
                "<line x1=\"{x0:.1}\" y1=\"{:.1}\" x2=\"{x0:.1}\" y2=\"{lanes_bottom:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                row_y - 10.0
            );
        } else {
            let _ = writeln!(
                s,
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"4\" fill=\"{colour}\"/>",
                row_y - 2.0,
                x1 - x0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#333\" font-weight=\"bold\">{}{}</text>",
            x0 + 3.0,
            row_y - 4.0,
            esc(&f.name),
            esc(&kind)
        );
        for (c, from) in &f.conns {
            let Some(y) = lane_y.get(c) else { continue };
            let a = x(*from);
            if x1 - a < 2.0 {
                continue;
            }
            let _ = writeln!(
                s,
                "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" fill-opacity=\"0.22\"/>",
                y - lane_h / 2.0 + 1.0,
                x1 - a,
                lane_h - 2.0
            );
        }
        s.push_str("</g>\n");
    }

    // Lanes.
    for (c, l) in &lanes {
        let y = lane_y[c];
        let start = l.accept.or(l.first).unwrap_or_default();
        let stop = l.closed.unwrap_or(total);
        let (xa, xz) = (x(start), x(stop).max(x(start) + 1.0));
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-weight=\"bold\">#{c}</text>",
            LEFT - 8.0,
            y + 4.0
        );
        let handshake_end = l.open.unwrap_or(stop);
        let xo = x(handshake_end).clamp(xa, xz);
        let _ = writeln!(
            s,
            "<line x1=\"{xa:.1}\" y1=\"{y:.1}\" x2=\"{xo:.1}\" y2=\"{y:.1}\" stroke=\"#999\" stroke-width=\"2\" stroke-dasharray=\"4 3\"/>"
        );
        if l.open.is_some() {
            let _ = writeln!(
                s,
                "<line x1=\"{xo:.1}\" y1=\"{y:.1}\" x2=\"{xz:.1}\" y2=\"{y:.1}\" stroke=\"#444\" stroke-width=\"2\"/>"
            );
            let _ = writeln!(
                s,
                "<circle cx=\"{xo:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{PASS}\"><title>#{c} open at {}</title></circle>",
                secs3(handshake_end)
            );
        }
        let _ = writeln!(
            s,
            "<line x1=\"{xa:.1}\" y1=\"{:.1}\" x2=\"{xa:.1}\" y2=\"{:.1}\" stroke=\"#444\"><title>#{c} accepted at {}</title></line>",
            y - 5.0,
            y + 5.0,
            secs3(start)
        );
        if let Some(cl) = l.closed {
            let _ = writeln!(
                s,
                "<line x1=\"{xz:.1}\" y1=\"{:.1}\" x2=\"{xz:.1}\" y2=\"{:.1}\" stroke=\"#444\" stroke-width=\"2\"><title>#{c} closed at {}</title></line>",
                y - 6.0,
                y + 6.0,
                secs3(cl)
            );
        }
        if let Some(why) = &l.failed {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{FAIL}\" font-size=\"10\">{}</text>",
                xz + 4.0,
                y + 4.0,
                esc(why)
            );
        }
    }

    // Frames, aggregated per pixel column: (conn, dir, class) -> px -> count.
    let mut ticks: BTreeMap<(u32, usize, usize), BTreeMap<i64, u64>> = BTreeMap::new();
    let mut markers = String::new();
    for e in &report.events {
        let Some(c) = e.conn else { continue };
        let Some(&y) = lane_y.get(&c) else { continue };
        let px = x(e.t);
        match &e.kind {
            EventKind::Frame(f) if f.opcode != Opcode::Close => {
                *ticks
                    .entry((c, f.dir.index(), class_of(f.opcode)))
                    .or_default()
                    .entry(px.round() as i64)
                    .or_insert(0) += 1;
            }
            EventKind::Frames(r) => {
                let (first, last) = (px.round() as i64, x(r.last).round() as i64);
                let cols = (last - first).max(0) as u64 + 1;
                let row = ticks
                    .entry((c, r.frame.dir.index(), class_of(r.frame.opcode)))
                    .or_default();
                for (i, col) in (first..=first + cols as i64 - 1).enumerate() {
                    // `count` spread over the columns, the remainder first.
                    let n = r.count / cols + u64::from((i as u64) < r.count % cols);
                    if n > 0 {
                        *row.entry(col).or_insert(0) += n;
                    }
                }
            }
            EventKind::Frame(f) => {
                let dy = if f.dir == Direction::ToServer {
                    -tick - 4.0
                } else {
                    tick + 4.0
                };
                let cy = y + dy;
                let _ = writeln!(
                        markers,
                        "<path d=\"M{px:.1} {:.1} l4 4 l-4 4 l-4 -4 z\" fill=\"#fff\" stroke=\"#222\" stroke-width=\"1.5\"><title>#{c} {} close frame{} at {}</title></path>",
                        cy - 4.0,
                        f.dir.from_side(),
                        esc(&super::transcript::close_desc(f.close_code, f.close_reason.as_deref())),
                        secs3(e.t)
                    );
            }
            EventKind::Dropped { dir, .. } => {
                *ticks
                    .entry((c, dir.index(), 5))
                    .or_default()
                    .entry(px.round() as i64)
                    .or_insert(0) += 1;
            }
            EventKind::Fin { from } | EventKind::Rst { from } => {
                let rst = matches!(e.kind, EventKind::Rst { .. });
                let up = *from == Side::Client;
                let cy = if up { y - tick - 14.0 } else { y + tick + 14.0 };
                let what = if rst { "RST" } else { "FIN" };
                if rst {
                    let _ = writeln!(
                        markers,
                        "<path d=\"M{:.1} {:.1} l8 8 m0 -8 l-8 8\" stroke=\"{FAIL}\" stroke-width=\"2.5\"><title>#{c} {from} sent RST at {}</title></path>",
                        px - 4.0,
                        cy - 4.0,
                        secs3(e.t)
                    );
                } else {
                    let d = if up {
                        format!("M{:.1} {:.1} l4 -7 l4 7 z", px - 4.0, cy + 3.0)
                    } else {
                        format!("M{:.1} {:.1} l4 7 l4 -7 z", px - 4.0, cy - 3.0)
                    };
                    let _ = writeln!(
                        markers,
                        "<path d=\"{d}\" fill=\"#1565c0\"><title>#{c} {from} sent {what} at {}</title></path>",
                        secs3(e.t)
                    );
                }
            }
            _ => {}
        }
    }
    for ((c, dir, class), cols) in &ticks {
        let y = lane_y[c];
        let sign = if *dir == 0 { -1.0 } else { 1.0 };
        let mut d = String::new();
        for (px, count) in cols {
            // Longer ticks where several frames share a pixel.
            let h = (tick * (0.6 + 0.2 * (*count as f64).log2().min(2.0))).min(tick);
            let _ = write!(d, "M{px} {:.1}v{:.1}", y + sign * 1.5, sign * h);
        }
        let (name, colour) = CLASSES[*class];
        let _ = writeln!(
            s,
            "<path d=\"{d}\" stroke=\"{colour}\" stroke-width=\"1\" fill=\"none\"><title>#{c} {name} frames {}</title></path>",
            if *dir == 0 { "from the client" } else { "from the server" }
        );
    }
    s.push_str(&markers);

    // Expectation deadlines and measured moments.
    for (i, m) in marks.iter().enumerate() {
        let colour = match m.passed {
            Some(true) => PASS,
            Some(false) => FAIL,
            None => "#777",
        };
        let row_y = marks_top + 18.0 * i as f64;
        let tip = esc(&format!("{}: {}", m.name, m.detail));
        let _ = writeln!(s, "<g class=\"expect\"><title>{tip}</title>");
        if let Some(r) = m.reference {
            let xr = x(r);
            let _ = writeln!(
                s,
                "<path d=\"M{xr:.1} {:.1} l-4 -6 h8 z\" fill=\"{colour}\" fill-opacity=\"0.5\"/>",
                row_y - 4.0
            );
        }
        let top = if m.prominent { lanes_top } else { row_y - 12.0 };
        if let Some(d) = m.deadline {
            let xd = x(d);
            let _ = writeln!(
                s,
                "<line x1=\"{xd:.1}\" y1=\"{top:.1}\" x2=\"{xd:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>",
                row_y + 2.0
            );
            if let Some(r) = m.reference {
                let _ = writeln!(
                    s,
                    "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{xd:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-opacity=\"0.35\" stroke-width=\"3\"/>",
                    x(r),
                    row_y - 4.0,
                    row_y - 4.0
                );
            }
        }
        if let Some(o) = m.observed {
            let xo = x(o);
            let top = if m.prominent { lanes_top } else { row_y - 10.0 };
            let _ = writeln!(
                s,
                "<line x1=\"{xo:.1}\" y1=\"{top:.1}\" x2=\"{xo:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                row_y - 4.0
            );
            let _ = writeln!(
                s,
                "<circle cx=\"{xo:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\"/>",
                row_y - 4.0
            );
            if m.prominent {
                let word = if m.kind == "detects" {
                    "noticed"
                } else {
                    "back"
                };
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\" font-size=\"10\" font-style=\"italic\">{word}</text>",
                    xo + 3.0,
                    lanes_top - 2.0
                );
            }
        }
        // The label goes right of the row's graphics if it fits, else left of them.
        let xs: Vec<f64> = [m.reference, m.deadline, m.observed]
            .iter()
            .flatten()
            .map(|t| x(*t))
            .collect();
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let text_w = m.label.chars().count() as f64 * 6.6;
        let (anchor, lx) = if hi + 8.0 + text_w <= width - 4.0 {
            ("start", hi + 8.0)
        } else if lo - 8.0 - text_w >= 4.0 {
            ("end", lo - 8.0)
        } else {
            ("start", 4.0)
        };
        let _ = writeln!(
            s,
            "<text x=\"{lx:.1}\" y=\"{row_y:.1}\" text-anchor=\"{anchor}\" fill=\"{colour}\" font-weight=\"bold\">{}</text></g>",
            esc(&m.label)
        );
    }

    // Legend.
    let mut lx = LEFT;
    for (name, colour) in CLASSES {
        let _ = writeln!(
            s,
            "<line x1=\"{lx:.1}\" y1=\"{:.1}\" x2=\"{lx:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\">{name}</text>",
            legend_y - 10.0,
            legend_y + 2.0,
            lx + 5.0
        );
        lx += 70.0;
    }
    let _ = writeln!(
        s,
        "<path d=\"M{:.1} {:.1} l4 4 l-4 4 l-4 -4 z\" fill=\"#fff\" stroke=\"#222\" stroke-width=\"1.5\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\">close frame</text>",
        lx + 4.0,
        legend_y - 8.0,
        lx + 12.0
    );
    lx += 90.0;
    let _ = writeln!(
        s,
        "<path d=\"M{:.1} {:.1} l4 -7 l4 7 z\" fill=\"#1565c0\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\">FIN</text>",
        lx,
        legend_y + 1.0,
        lx + 12.0
    );
    lx += 45.0;
    let _ = writeln!(
        s,
        "<path d=\"M{:.1} {:.1} l8 8 m0 -8 l-8 8\" stroke=\"{FAIL}\" stroke-width=\"2.5\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\">RST</text>",
        lx,
        legend_y - 7.0,
        lx + 12.0
    );
    lx += 45.0;
    let _ = writeln!(
        s,
        "<text x=\"{lx:.1}\" y=\"{legend_y:.1}\" fill=\"#555\">ticks above a lane: sent by the client · below: by the server · dashed: deadline · solid: measured</text>"
    );
    s.push_str("</svg>\n");
    s
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn verdicts_section(out: &mut String, report: &Report) {
    out.push_str("<h2>Expectations</h2>\n<table class=\"verdicts\">\n<tr><th>expectation</th><th>kind</th><th>result</th><th>observed</th><th>detail</th></tr>\n");
    if report.expectations.is_empty() {
        out.push_str("<tr><td colspan=\"5\">no expectations</td></tr>\n");
    }
    for v in &report.expectations {
        let (cls, word) = if v.passed {
            ("pass", "PASS")
        } else {
            ("fail", "FAIL")
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"{cls}\">{word}</td><td>{}</td><td>{}</td></tr>",
            esc(&v.name),
            esc(&v.kind),
            v.observed.map(secs3).unwrap_or_else(|| "–".into()),
            esc(&v.detail)
        );
    }
    out.push_str("</table>\n");
}

fn events_section(out: &mut String, report: &Report) {
    let conns: BTreeSet<u32> = report.events.iter().filter_map(|e| e.conn).collect();
    let _ = writeln!(
        out,
        "<details class=\"events\"><summary>Event log ({} events, {} connections)</summary>",
        report.events.len(),
        conns.len()
    );
    out.push_str("<table>\n<tr><th>t</th><th>conn</th><th>kind</th><th>details</th></tr>\n");
    for e in report.events.iter().take(MAX_EVENT_ROWS) {
        let v = serde_json::to_value(e).unwrap_or(serde_json::Value::Null);
        let kind = v
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("?")
            .to_string();
        let mut rest = serde_json::Map::new();
        if let serde_json::Value::Object(m) = v {
            for (k, val) in m {
                if !matches!(k.as_str(), "t_ms" | "conn" | "kind") {
                    rest.insert(k, val);
                }
            }
        }
        let details = if rest.is_empty() {
            String::new()
        } else {
            serde_json::Value::Object(rest).to_string()
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            secs3(e.t),
            e.conn.map(|c| format!("#{c}")).unwrap_or_default(),
            esc(&kind),
            esc(&details)
        );
    }
    if report.events.len() > MAX_EVENT_ROWS {
        let _ = writeln!(
            out,
            "<tr><td colspan=\"4\">… {} more events in the JSON report</td></tr>",
            report.events.len() - MAX_EVENT_ROWS
        );
    }
    out.push_str("</table>\n</details>\n");
}

const CSS: &str = "
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.badge { font-size: 13px; padding: 2px 8px; border-radius: 4px; color: #fff; vertical-align: middle; }
.badge.pass { background: #1e8c3a; } .badge.fail { background: #c62828; }
.desc { max-width: 1000px; margin: 4px 0; }
.meta { color: #666; font-size: 13px; margin: 4px 0 12px; }
svg.timeline { border: 1px solid #ddd; background: #fff; max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 4px 10px; text-align: left; vertical-align: top; }
td.pass { color: #1e8c3a; font-weight: bold; } td.fail { color: #c62828; font-weight: bold; }
.warnings li { color: #8a5a00; }
pre { background: #f6f6f6; padding: 8px; max-height: 300px; overflow: auto; }
details.events table td:first-child { font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-size: 12px; }
";
