//! Drawing the timeline: one function per layer, in paint order (grid, fault
//! windows, lanes, frames, expectation marks, legend), each writing SVG
//! elements at the places `layout.rs` computed.

use super::super::{secs3, xml_escape as esc, Report};
use super::layout::{faults_of, lanes_of, marks_of, nice_step, FaultWin, Lane, Layout, Mark};
use super::layout::{LEFT, PLOT_W};
use crate::events::{Direction, Event, EventKind, FrameInfo, Opcode, Side};
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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
/// The index of `dropped` in [`CLASSES`].
const DROPPED: usize = 5;

fn class_of(op: Opcode) -> usize {
    match op {
        Opcode::Text => 0,
        Opcode::Binary => 1,
        Opcode::Ping => 2,
        Opcode::Pong => 3,
        _ => 4,
    }
}

/// The SVG timeline of a run.
pub(super) fn timeline_svg(report: &Report, scenario: Option<&Scenario>) -> String {
    let lanes = lanes_of(report);
    let faults = faults_of(report);
    let marks = marks_of(report, scenario);
    let l = Layout::new(report, &lanes, &faults, &marks);
    let (width, height) = (l.width, l.height);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    grid(&mut s, &l);
    for (i, f) in faults.iter().enumerate() {
        fault_window(&mut s, &l, report, i, f);
    }
    for (c, lane) in &lanes {
        lane_line(&mut s, &l, *c, lane);
    }
    frames(&mut s, &l, report);
    for (i, m) in marks.iter().enumerate() {
        mark(&mut s, &l, i, m);
    }
    legend(&mut s, &l);
    s.push_str("</svg>\n");
    s
}

/// Vertical grid lines with their seconds, and the time axis.
fn grid(s: &mut String, l: &Layout) {
    let (lanes_top, axis_y, end_x) = (l.lanes_top, l.axis_y, l.end_x());
    let total_s = l.total_secs();
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
}

/// Fault window `i`: its label row on top, shading across affected lanes.
fn fault_window(s: &mut String, l: &Layout, report: &Report, i: usize, f: &FaultWin) {
    let lanes_bottom = l.lanes_bottom;
    let colour = FAULT_COLOURS[i % FAULT_COLOURS.len()];
    let x0 = l.x(f.start);
    let x1 = f.end.map(|e| l.x(e)).unwrap_or(l.end_x());
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
        let Some(y) = l.lane_y.get(c) else { continue };
        let a = l.x(*from);
        if x1 - a < 2.0 {
            continue;
        }
        let _ = writeln!(
            s,
            "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" fill-opacity=\"0.22\"/>",
            y - l.lane_h / 2.0 + 1.0,
            x1 - a,
            l.lane_h - 2.0
        );
    }
    s.push_str("</g>\n");
}

/// Connection `c`'s lane: dashed during the handshake, solid once open,
/// with its accept and close marks and why it failed, if it did.
fn lane_line(s: &mut String, l: &Layout, c: u32, lane: &Lane) {
    let y = l.lane_y[&c];
    let start = lane.accept.or(lane.first).unwrap_or_default();
    let stop = lane.closed.unwrap_or(l.total);
    let (xa, xz) = (l.x(start), l.x(stop).max(l.x(start) + 1.0));
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-weight=\"bold\">#{c}</text>",
        LEFT - 8.0,
        y + 4.0
    );
    let handshake_end = lane.open.unwrap_or(stop);
    let xo = l.x(handshake_end).clamp(xa, xz);
    let _ = writeln!(
        s,
        "<line x1=\"{xa:.1}\" y1=\"{y:.1}\" x2=\"{xo:.1}\" y2=\"{y:.1}\" stroke=\"#999\" stroke-width=\"2\" stroke-dasharray=\"4 3\"/>"
    );
    if lane.open.is_some() {
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
    if let Some(cl) = lane.closed {
        let _ = writeln!(
            s,
            "<line x1=\"{xz:.1}\" y1=\"{:.1}\" x2=\"{xz:.1}\" y2=\"{:.1}\" stroke=\"#444\" stroke-width=\"2\"><title>#{c} closed at {}</title></line>",
            y - 6.0,
            y + 6.0,
            secs3(cl)
        );
    }
    if let Some(why) = &lane.failed {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{FAIL}\" font-size=\"10\">{}</text>",
            xz + 4.0,
            y + 4.0,
            esc(why)
        );
    }
}

/// Frames as ticks, aggregated per pixel column, then the markers drawn over
/// them (close frames, FIN, RST).
fn frames(s: &mut String, l: &Layout, report: &Report) {
    // (conn, dir, class) -> px -> count.
    let mut ticks: BTreeMap<(u32, usize, usize), BTreeMap<i64, u64>> = BTreeMap::new();
    let mut markers = String::new();
    for e in &report.events {
        let Some(c) = e.conn else { continue };
        let Some(&y) = l.lane_y.get(&c) else { continue };
        let px = l.x(e.t);
        let mut count = |dir: Direction, class: usize| {
            *ticks
                .entry((c, dir.index(), class))
                .or_default()
                .entry(px.round() as i64)
                .or_insert(0) += 1;
        };
        match &e.kind {
            EventKind::Frame(f) if f.opcode != Opcode::Close => count(f.dir, class_of(f.opcode)),
            EventKind::Frames(r) => {
                // A folded run: its count spread evenly from its first frame
                // to its last, the remainder first.
                let (first, last) = (px.round() as i64, l.x(r.last).round() as i64);
                let cols = (last - first).max(0) as u64 + 1;
                let row = ticks
                    .entry((c, r.frame.dir.index(), class_of(r.frame.opcode)))
                    .or_default();
                for (i, col) in (first..first + cols as i64).enumerate() {
                    let n = r.count / cols + u64::from((i as u64) < r.count % cols);
                    if n > 0 {
                        *row.entry(col).or_insert(0) += n;
                    }
                }
            }
            EventKind::Frame(f) => close_marker(&mut markers, l, e, f, y, px),
            EventKind::Dropped { dir, .. } => count(*dir, DROPPED),
            EventKind::Fin { from } | EventKind::Rst { from } => {
                let rst = matches!(e.kind, EventKind::Rst { .. });
                tcp_marker(&mut markers, l, e, *from, rst, y, px);
            }
            _ => {}
        }
    }
    let tick = l.tick;
    for ((c, dir, class), cols) in &ticks {
        let y = l.lane_y[c];
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
}

/// A close frame: a diamond above the lane (from the client) or below it.
fn close_marker(s: &mut String, l: &Layout, e: &Event, f: &FrameInfo, y: f64, px: f64) {
    let c = e.conn.unwrap_or_default();
    let dy = if f.dir == Direction::ToServer {
        -l.tick - 4.0
    } else {
        l.tick + 4.0
    };
    let cy = y + dy;
    let _ = writeln!(
        s,
        "<path d=\"M{px:.1} {:.1} l4 4 l-4 4 l-4 -4 z\" fill=\"#fff\" stroke=\"#222\" stroke-width=\"1.5\"><title>#{c} {} close frame{} at {}</title></path>",
        cy - 4.0,
        f.dir.from_side(),
        esc(&super::super::transcript::close_desc(f.close_code, f.close_reason.as_deref())),
        secs3(e.t)
    );
}

/// A FIN (a triangle) or an RST (a cross), beyond the ticks of its sender.
fn tcp_marker(s: &mut String, l: &Layout, e: &Event, from: Side, rst: bool, y: f64, px: f64) {
    let c = e.conn.unwrap_or_default();
    let up = from == Side::Client;
    let cy = if up {
        y - l.tick - 14.0
    } else {
        y + l.tick + 14.0
    };
    if rst {
        let _ = writeln!(
            s,
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
            s,
            "<path d=\"{d}\" fill=\"#1565c0\"><title>#{c} {from} sent FIN at {}</title></path>",
            secs3(e.t)
        );
    }
}

/// Expectation `i`'s row: its reference, deadline and measured moment, and
/// its label where it fits.
fn mark(s: &mut String, l: &Layout, i: usize, m: &Mark) {
    let lanes_top = l.lanes_top;
    let colour = match m.passed {
        Some(true) => PASS,
        Some(false) => FAIL,
        None => "#777",
    };
    let row_y = l.marks_top + 18.0 * i as f64;
    let tip = esc(&format!("{}: {}", m.name, m.detail));
    let _ = writeln!(s, "<g class=\"expect\"><title>{tip}</title>");
    if let Some(r) = m.reference {
        let xr = l.x(r);
        let _ = writeln!(
            s,
            "<path d=\"M{xr:.1} {:.1} l-4 -6 h8 z\" fill=\"{colour}\" fill-opacity=\"0.5\"/>",
            row_y - 4.0
        );
    }
    let top = if m.prominent { lanes_top } else { row_y - 12.0 };
    if let Some(d) = m.deadline {
        let xd = l.x(d);
        let _ = writeln!(
            s,
            "<line x1=\"{xd:.1}\" y1=\"{top:.1}\" x2=\"{xd:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>",
            row_y + 2.0
        );
        if let Some(r) = m.reference {
            let _ = writeln!(
                s,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{xd:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-opacity=\"0.35\" stroke-width=\"3\"/>",
                l.x(r),
                row_y - 4.0,
                row_y - 4.0
            );
        }
    }
    if let Some(o) = m.observed {
        observed(s, l, m, colour, row_y, o);
    }
    mark_label(s, l, m, colour, row_y);
}

/// The measured moment of a mark: a solid line and a dot, and for the
/// prominent kinds a word at the top of the lanes.
fn observed(
    s: &mut String,
    l: &Layout,
    m: &Mark,
    colour: &str,
    row_y: f64,
    o: std::time::Duration,
) {
    let lanes_top = l.lanes_top;
    let xo = l.x(o);
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

/// The label goes right of the row's graphics if it fits, else left of them.
fn mark_label(s: &mut String, l: &Layout, m: &Mark, colour: &str, row_y: f64) {
    let width = l.width;
    let xs: Vec<f64> = [m.reference, m.deadline, m.observed]
        .iter()
        .flatten()
        .map(|t| l.x(*t))
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

/// What the colours and markers mean.
fn legend(s: &mut String, l: &Layout) {
    let legend_y = l.legend_y;
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
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
