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
//! when it came back) is a solid line. A run keeps frames that nothing judges
//! as folded runs (first frame, count, last time): their ticks are spread
//! evenly from a run's first frame to its last, and the page says how many
//! frames were drawn that way. Frames are aggregated per pixel, so a
//! run with tens of thousands of frames still gives a small page.
//!
//! Below the timeline: the verdicts, warnings, commands, and the full event
//! list folded in a `<details>`.
//!
//! The page is built in three parts: `layout.rs` reads the report into what
//! the timeline shows (lanes, fault windows, expectation marks) and where it
//! goes (the time scale and every row's height); `svg.rs` draws it; this file
//! puts the timeline, the tables and the CSS into one page.

mod layout;
mod svg;

use super::{secs3, xml_escape as esc, Report};
use crate::events::EventKind;
use crate::scenario::Scenario;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Events listed in the folded table at most.
const MAX_EVENT_ROWS: usize = 5_000;

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
        layout::lanes_of(report).len(),
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
    out.push_str(&svg::timeline_svg(report, scenario));
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
