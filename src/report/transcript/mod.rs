//! The transcript: a normalised, deterministic view of a run for snapshot
//! tests (`--snapshot DIR`, `insta::assert_yaml_snapshot!`).
//!
//! Two runs of the same scenario against the same client should give the same
//! transcript, so everything that varies between runs is left out or coarsened:
//!
//! - ports and addresses never appear (`Accept.peer`, `Listening.addr`);
//!   connections are `#N` in accept order; masks, byte counts and OS error
//!   texts are left out; digits in frame previews become `#` (timestamps,
//!   sequence numbers).
//! - times are measured from the first accepted connection (so that a client
//!   command's start-up time does not shift everything) and rounded to the
//!   resolution (default 100 ms); with no resolution only the order is shown.
//! - similar frames (same direction, opcode and normalised preview) on one
//!   connection collapse into one line carrying the time of the first and a
//!   count *bucket*: `×2..3`, `×4..7`, `×8..15`… (powers of two), so one
//!   heartbeat more or less rarely changes the line. Frames are grouped per
//!   *stretch*: the time between two events that change that connection's
//!   state (open, close frames, FIN/RST, faults starting, joining or ending
//!   on it, the run stopping). Within a stretch, interleaved kinds (pings,
//!   pongs and data pushes) each get one line, at their first occurrence, so
//!   jitter in how they interleave does not show. What happens on other
//!   connections never splits a stretch. Drops, corruptions and failed
//!   writes are counted the same way.
//! - verdicts show name, kind, pass/fail and the measured value rounded to the
//!   resolution; the detail sentence (exact milliseconds) is left out.
//! - within one time step, events are listed global ones first, then by
//!   connection: connections run concurrently, their interleaving varies.
//! - the timeline ends at the run's `Stopping` mark, with the connections
//!   still open then: how peers react to being stopped races the shutdown.

mod build;
mod classify;

use super::Report;
use build::Clock;
pub(crate) use classify::close_desc;
use classify::conn_list;
/// A frame's preview class (direction, opcode, normalised preview): what
/// the transcript counts frames by, and the log folds frames by.
pub(crate) use classify::frame_label_into;
use serde::Serialize;
use std::time::Duration;

/// Longest preview shown, in characters, before it is cut with `…`.
const PREVIEW_CHARS: usize = 48;

/// The normalised view of a run. Serialises (for YAML snapshots) to the same
/// content as [`Transcript::to_text`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// The scenario's `name`.
    pub scenario: String,
    /// Whether every expectation passed.
    pub passed: bool,
    /// What the times mean (`seconds since accept#1, rounded to 100ms`).
    pub times: String,
    /// The timeline, one line per event or collapsed run of frames.
    pub timeline: Vec<String>,
    /// When each fault was active, in order of first start.
    pub faults: Vec<FaultWindow>,
    /// One line per expectation, in scenario order.
    pub expectations: Vec<VerdictLine>,
    /// The timeline as (time, connection, text) for aligned printing.
    #[serde(skip)]
    rows: Vec<(String, Option<u32>, String)>,
}

/// When a fault was active and on which connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    /// The fault's effective name (given, or `<kind>-<index>`).
    pub name: String,
    /// Fault kind (from the scenario; `?` when unknown).
    pub kind: String,
    /// Start time, rounded (empty in ordering-only mode).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub start: String,
    /// End time, rounded; `run end` if it never ended (empty in ordering-only mode).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub end: String,
    /// Connections it applied to, including those that joined while active.
    pub conns: Vec<u32>,
}

/// One verdict, normalised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictLine {
    /// The expectation's effective name (given, or `<kind>-<index>`).
    pub name: String,
    /// Its `kind` (`detects`, `reconnects`, ...).
    pub kind: String,
    /// Whether it passed.
    pub passed: bool,
    /// The measured value rounded to the resolution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

impl Report {
    /// The transcript at the report's resolution (see [`Report::resolution`]).
    pub fn transcript(&self) -> Transcript {
        self.transcript_with(self.resolution())
    }

    /// The transcript at `resolution`; `None` shows ordering only.
    pub fn transcript_with(&self, resolution: Option<Duration>) -> Transcript {
        let resolution = resolution.filter(|r| !r.is_zero());
        let clock = Clock::new(&self.events, resolution);
        let (mut entries, stopped) = build::entries(self, &clock);
        let faults = build::fault_windows(self, &clock);
        let expectations = self
            .expectations
            .iter()
            .map(|v| VerdictLine {
                name: v.name.clone(),
                kind: v.kind.clone(),
                passed: v.passed,
                observed: match (v.observed, resolution) {
                    (Some(d), Some(r)) => Some(fmt_signed(d.as_nanos() as i128, r)),
                    _ => None,
                },
            })
            .collect();
        let times = match resolution {
            Some(r) => format!(
                "seconds since accept#1, rounded to {}",
                crate::scenario::Dur(r)
            ),
            None => "ordering only".to_string(),
        };
        if resolution.is_some() {
            build::order_within_steps(&mut entries, stopped);
        }
        build::order_fins(&mut entries);
        let rows: Vec<(String, Option<u32>, String)> = entries
            .iter()
            .map(|en| (en.t.clone(), en.conn, en.body()))
            .collect();
        let timeline = entries
            .iter()
            .map(|en| {
                let mut s = String::new();
                if !en.t.is_empty() {
                    s.push_str(&en.t);
                    s.push(' ');
                }
                if let Some(c) = en.conn {
                    s.push_str(&format!("#{c} "));
                }
                s.push_str(&en.body());
                s
            })
            .collect();
        Transcript {
            scenario: self.scenario.clone(),
            passed: self.passed,
            times,
            timeline,
            faults,
            expectations,
            rows,
        }
    }
}

impl Transcript {
    /// The readable, line-based form (what `--snapshot DIR` stores).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("scenario: {}\n", self.scenario));
        out.push_str(&format!(
            "result: {}\n",
            if self.passed { "PASS" } else { "FAIL" }
        ));
        out.push_str(&format!("times: {}\n", self.times));
        out.push_str("\ntimeline:\n");
        let tw = self.rows.iter().map(|e| e.0.len()).max().unwrap_or(0);
        let cw = self
            .rows
            .iter()
            .filter_map(|e| e.1)
            .map(|c| c.to_string().len() + 1)
            .max()
            .unwrap_or(0);
        for (t, conn, body) in &self.rows {
            let conn = conn.map(|c| format!("#{c}")).unwrap_or_default();
            let mut line = String::from("  ");
            if tw > 0 {
                line.push_str(&format!("{t:>tw$}  "));
            }
            if cw > 0 {
                line.push_str(&format!("{conn:<cw$}  "));
            }
            line.push_str(body);
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if !self.faults.is_empty() {
            out.push_str("\nfaults:\n");
            for f in &self.faults {
                let window = if f.start.is_empty() {
                    String::new()
                } else {
                    format!(" {} .. {}", f.start, f.end)
                };
                out.push_str(&format!(
                    "  {} ({}){window} on {}\n",
                    f.name,
                    f.kind,
                    conn_list(&f.conns)
                ));
            }
        }
        if !self.expectations.is_empty() {
            out.push_str("\nexpectations:\n");
            for v in &self.expectations {
                out.push_str(&format!(
                    "  {}  {} ({}){}\n",
                    if v.passed { "PASS" } else { "FAIL" },
                    v.name,
                    v.kind,
                    v.observed
                        .as_ref()
                        .map(|o| format!(" observed {o}"))
                        .unwrap_or_default()
                ));
            }
        }
        out
    }
}

/// A readable unified diff between two transcripts (`-` old, `+` new).
pub fn diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("recorded", "new")
        .to_string()
}

/// Round `nanos` to the nearest multiple of `res` and format it in seconds
/// with as many decimals as the resolution needs.
pub(crate) fn fmt_signed(nanos: i128, res: Duration) -> String {
    let r = res.as_nanos().max(1) as i128;
    let half = r / 2;
    let q = if nanos >= 0 {
        (nanos + half) / r
    } else {
        -((-nanos + half) / r)
    };
    let rounded = q * r;
    let decimals = if r % 1_000_000_000 == 0 {
        0
    } else if r % 100_000_000 == 0 {
        1
    } else if r % 10_000_000 == 0 {
        2
    } else {
        3
    };
    let secs = rounded as f64 / 1e9;
    let s = format!("{secs:.decimals$}s");
    if s.starts_with("-0") && rounded == 0 {
        s[1..].to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::classify::{count_bucket, normalise_preview};
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(count_bucket(1), "");
        assert_eq!(count_bucket(2), " ×2..3");
        assert_eq!(count_bucket(3), " ×2..3");
        assert_eq!(count_bucket(4), " ×4..7");
        assert_eq!(count_bucket(12), " ×8..15");
    }

    #[test]
    fn rounding() {
        let r = Duration::from_millis(100);
        assert_eq!(fmt_signed(2_970_000_000, r), "3.0s");
        assert_eq!(fmt_signed(3_030_000_000, r), "3.0s");
        assert_eq!(fmt_signed(-20_000_000, r), "0.0s");
        assert_eq!(fmt_signed(-520_000_000, r), "-0.5s");
        assert_eq!(fmt_signed(2_400_000_000, Duration::from_secs(1)), "2s");
        assert_eq!(
            fmt_signed(1_234_000_000, Duration::from_millis(5)),
            "1.235s"
        );
    }

    #[test]
    fn fins_of_both_sides_in_one_step_list_the_server_first() {
        use crate::events::Side;
        let e = |bucket: i128, text: &str, fin: Option<Side>| build::Entry {
            bucket,
            t: String::new(),
            conn: Some(1),
            text: text.into(),
            count: 1,
            fin,
        };
        let texts = |v: &[build::Entry]| v.iter().map(|e| e.text.clone()).collect::<Vec<_>>();
        let (c, s) = (Some(Side::Client), Some(Side::Server));
        let mut v = vec![
            e(1, "close", None),
            e(1, "client sent FIN", c),
            e(1, "FIN passed to server", c),
            e(1, "server sent FIN", s),
            e(1, "FIN passed to client", s),
            e(1, "closed", None),
        ];
        build::order_fins(&mut v);
        assert_eq!(
            texts(&v),
            [
                "close",
                "server sent FIN",
                "FIN passed to client",
                "client sent FIN",
                "FIN passed to server",
                "closed"
            ]
        );
        // Not across another line, nor across time steps.
        let mut v = vec![
            e(1, "client sent FIN", c),
            e(1, "text", None),
            e(1, "server sent FIN", s),
            e(2, "client sent FIN", c),
            e(3, "server sent FIN", s),
        ];
        let before = texts(&v);
        build::order_fins(&mut v);
        assert_eq!(texts(&v), before);
    }

    #[test]
    fn previews() {
        assert_eq!(normalise_preview("ping", 4), "\"ping\"");
        assert_eq!(
            normalise_preview("{\"ts\":1712345,\"n\":7}", 20),
            "\"{\"ts\":#,\"n\":#}\""
        );
        assert_eq!(normalise_preview("a\nb", 3), "\"a\\nb\"");
        assert_eq!(normalise_preview("a\u{fffd}b", 3), "<binary>");
        assert_eq!(normalise_preview("abc", 300), "\"abc\"…");
    }
}
