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

use super::Report;
use crate::events::{Direction, Event, EventKind, FrameInfo, Opcode};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Longest preview shown, in characters, before it is cut with `…`.
const PREVIEW_CHARS: usize = 48;

/// The normalised view of a run. Serialises (for YAML snapshots) to the same
/// content as [`Transcript::to_text`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// Scenario name.
    pub scenario: String,
    /// Whether every expectation passed.
    pub passed: bool,
    /// What the times mean (`seconds since accept#1, rounded to 100ms`).
    pub times: String,
    /// The timeline, one line per event or collapsed run of frames.
    pub timeline: Vec<String>,
    /// Fault windows.
    pub faults: Vec<FaultWindow>,
    /// Verdicts.
    pub expectations: Vec<VerdictLine>,
    /// The timeline as (time, connection, text) for aligned printing.
    #[serde(skip)]
    rows: Vec<(String, Option<u32>, String)>,
}

/// When a fault was active and on which connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    /// Fault name.
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
    /// Expectation name.
    pub name: String,
    /// Expectation kind.
    pub kind: String,
    /// Whether it passed.
    pub passed: bool,
    /// The measured value rounded to the resolution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// The time rounded to the resolution, in units of it (0 with none).
    bucket: i128,
    t: String,
    conn: Option<u32>,
    text: String,
    count: u64,
}

impl Entry {
    fn body(&self) -> String {
        format!("{}{}", self.text, count_bucket(self.count))
    }
}

/// What one event becomes in the transcript.
enum Class {
    /// Left out.
    Skip,
    /// Counted with the similar events (same label) of its connection since
    /// that connection's last state change; `count` of them (a folded run of
    /// frames stands for several).
    Run { label: String, count: u64 },
    /// A line of its own; breaks the frame runs of the listed connections
    /// (`None` = all connections).
    Line {
        text: String,
        breaks: Option<Vec<u32>>,
    },
}

impl Report {
    /// The transcript at the report's resolution (see [`Report::resolution`]).
    pub fn transcript(&self) -> Transcript {
        self.transcript_with(self.resolution())
    }

    /// The transcript at `resolution`; `None` shows ordering only.
    pub fn transcript_with(&self, resolution: Option<Duration>) -> Transcript {
        let resolution = resolution.filter(|r| !r.is_zero());
        let origin = self
            .events
            .iter()
            .find(|e| matches!(e.kind, EventKind::Accept { .. }))
            .map(|e| e.t)
            .unwrap_or(Duration::ZERO);
        let bucket = |t: Duration| -> i128 {
            match resolution {
                Some(r) => {
                    let (n, r) = (
                        t.as_nanos() as i128 - origin.as_nanos() as i128,
                        r.as_nanos().max(1) as i128,
                    );
                    (n + r / 2).div_euclid(r)
                }
                None => 0,
            }
        };
        let when = |t: Duration| -> String {
            match resolution {
                Some(r) => fmt_signed(t.as_nanos() as i128 - origin.as_nanos() as i128, r),
                None => String::new(),
            }
        };

        let mut entries: Vec<Entry> = Vec::new();
        // (conn, label) -> index of the entry counting that kind of frame
        // since the connection's last state change.
        let mut open_runs: HashMap<(u32, String), usize> = HashMap::new();
        let mut seen_listening = false;
        let mut live: BTreeSet<u32> = BTreeSet::new();
        let mut stopped = false;
        for e in &self.events {
            match (&e.kind, e.conn) {
                (EventKind::Accept { .. }, Some(n)) => {
                    live.insert(n);
                }
                (EventKind::Closed { .. }, Some(n)) => {
                    live.remove(&n);
                }
                _ => {}
            }
            if matches!(e.kind, EventKind::Stopping) {
                // What peers do while being stopped (a close frame answered
                // or not, FIN or RST as the socket is dropped) races the
                // shutdown and says nothing about the client: the transcript
                // ends here, naming what was still open.
                let text = if live.is_empty() {
                    "run stopping".to_string()
                } else {
                    let open: Vec<String> = live.iter().map(|n| format!("#{n}")).collect();
                    format!("run stopping; still open: {}", open.join(", "))
                };
                // No time: when the run stops depends on the verdict tick.
                entries.push(Entry {
                    bucket: bucket(e.t),
                    t: String::new(),
                    conn: None,
                    text,
                    count: 1,
                });
                stopped = true;
                break;
            }
            match self.classify(e, &mut seen_listening) {
                Class::Skip => {}
                Class::Run { label, count } => {
                    let key = (e.conn.unwrap_or(0), label);
                    match open_runs.get(&key) {
                        Some(i) => entries[*i].count += count,
                        None => {
                            entries.push(Entry {
                                bucket: bucket(e.t),
                                t: when(e.t),
                                conn: e.conn,
                                text: key.1.clone(),
                                count,
                            });
                            open_runs.insert(key, entries.len() - 1);
                        }
                    }
                }
                Class::Line { text, breaks } => {
                    match breaks {
                        None => open_runs.clear(),
                        Some(conns) => open_runs.retain(|(c, _), _| !conns.contains(c)),
                    }
                    entries.push(Entry {
                        bucket: bucket(e.t),
                        t: when(e.t),
                        conn: e.conn,
                        text,
                        count: 1,
                    });
                }
            }
        }

        // Fault windows, in order of first appearance.
        let mut faults: Vec<FaultWindow> = Vec::new();
        let mut conns_of: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for e in &self.events {
            match &e.kind {
                EventKind::FaultStart { fault, conns } => {
                    if !faults.iter().any(|f| &f.name == fault) {
                        faults.push(FaultWindow {
                            name: fault.clone(),
                            kind: self.fault_kind(fault).unwrap_or("?").to_string(),
                            start: when(e.t),
                            end: if resolution.is_some() {
                                "run end".into()
                            } else {
                                String::new()
                            },
                            conns: Vec::new(),
                        });
                    }
                    conns_of.entry(fault.clone()).or_default().extend(conns);
                }
                EventKind::FaultEnd { fault, conns } => {
                    if let Some(f) = faults.iter_mut().find(|f| &f.name == fault) {
                        f.end = when(e.t);
                    }
                    conns_of.entry(fault.clone()).or_default().extend(conns);
                }
                EventKind::FaultJoin { fault } => {
                    if let Some(c) = e.conn {
                        conns_of.entry(fault.clone()).or_default().insert(c);
                    }
                }
                _ => {}
            }
        }
        for f in &mut faults {
            f.conns = conns_of
                .get(&f.name)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
        }

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
        // Connections run concurrently: within one time step, list what
        // happened without a connection first, then connection by connection
        // (each keeping its own order), so scheduling does not show.
        if resolution.is_some() {
            let last = entries.len().saturating_sub(1);
            let stop_last = stopped;
            let mut keyed: Vec<(usize, Entry)> = entries.drain(..).enumerate().collect();
            // The stop line stays last whatever its time step.
            keyed.sort_by_key(|(i, e)| {
                if stop_last && *i == last {
                    (i128::MAX, u32::MAX)
                } else {
                    (e.bucket, e.conn.unwrap_or(0))
                }
            });
            entries = keyed.into_iter().map(|(_, e)| e).collect();
        }
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

    fn classify(&self, e: &Event, seen_listening: &mut bool) -> Class {
        let own = || Some(e.conn.into_iter().collect::<Vec<u32>>());
        let line = |text: String| Class::Line {
            text,
            breaks: Some(e.conn.into_iter().collect()),
        };
        let quiet = |text: String| Class::Line {
            text,
            breaks: Some(Vec::new()),
        };
        match &e.kind {
            EventKind::Listening { .. } => {
                if std::mem::replace(seen_listening, true) {
                    quiet("listening again".into())
                } else {
                    Class::Skip
                }
            }
            EventKind::StoppedListening { fault } => quiet(format!("stopped listening ({fault})")),
            EventKind::Accept { .. } => line("accepted".into()),
            EventKind::Request {
                path,
                extensions_removed,
            } => line(format!(
                "request {path}{}",
                if *extensions_removed {
                    " (extensions removed)"
                } else {
                    ""
                }
            )),
            EventKind::BadRequest { reason } => line(format!("bad request: {reason}")),
            EventKind::UpstreamConnected => line("upstream connected".into()),
            EventKind::UpstreamFailed { error } => line(format!("upstream failed: {error}")),
            EventKind::Open => line("open".into()),
            EventKind::Rejected { status } => line(format!("rejected: HTTP {status}")),
            EventKind::Frame(f) if f.opcode == Opcode::Close => line(format!(
                "{} close{}",
                arrow(f.dir),
                close_desc(f.close_code, f.close_reason.as_deref())
            )),
            EventKind::Frame(f) => Class::Run {
                label: frame_label(f),
                count: 1,
            },
            // A run folds frames only between two events of its connection,
            // so it never spans a line that would have split it.
            EventKind::Frames(r) => Class::Run {
                label: frame_label(&r.frame),
                count: r.count,
            },
            EventKind::ProtocolError { dir, reason } => {
                line(format!("protocol error {}: {reason}", arrow(*dir)))
            }
            EventKind::Fin { from } => line(format!("{from} sent FIN")),
            EventKind::Rst { from } => line(format!("{from} sent RST")),
            EventKind::FinSent { to } => line(format!("FIN passed to {to}")),
            EventKind::RstSent { to } => line(format!("RST sent to {to}")),
            EventKind::WriteFailed { to, .. } => Class::Run {
                label: format!("write to {to} failed"),
                count: 1,
            },
            EventKind::Closed { how } => line(format!("closed ({})", ending(*how))),
            EventKind::FaultStart { fault, conns } => Class::Line {
                text: format!(
                    "fault {fault} starts{} on {}",
                    self.fault_kind(fault)
                        .map(|k| format!(" ({k})"))
                        .unwrap_or_default(),
                    conn_list(conns)
                ),
                breaks: Some(conns.clone()),
            },
            EventKind::FaultEnd { fault, conns } => Class::Line {
                text: format!("fault {fault} ends on {}", conn_list(conns)),
                breaks: Some(conns.clone()),
            },
            EventKind::FaultJoin { fault } => Class::Line {
                text: format!("joins fault {fault}"),
                breaks: own(),
            },
            EventKind::Held { fault, dir, .. } => quiet(format!("{fault} holds {}", arrow(*dir))),
            EventKind::Released {
                fault, dir, fin, ..
            } => quiet(format!(
                "{fault} releases held {}{}",
                arrow(*dir),
                if *fin { " (with FIN)" } else { "" }
            )),
            EventKind::Discarded { fault, dir, .. } => {
                quiet(format!("{fault} discards held {}", arrow(*dir)))
            }
            EventKind::Dropped {
                fault, dir, opcode, ..
            } => Class::Run {
                label: format!("{fault} drops {} {}", arrow(*dir), opcode.name()),
                count: 1,
            },
            EventKind::Corrupted { fault, dir, opcode } => Class::Run {
                label: format!("{fault} corrupts {} {}", arrow(*dir), opcode.name()),
                count: 1,
            },
            EventKind::Injected { fault, to, what } => {
                line(format!("{fault} injects {what} toward {to}"))
            }
            EventKind::Refused { fault, how } => line(format!("refused by {fault} ({how})")),
            EventKind::Stopping => Class::Line {
                text: "run stopping".into(),
                breaks: None,
            },
            EventKind::Note { .. } => Class::Skip,
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

fn arrow(dir: Direction) -> String {
    format!("{}→{}", dir.from_side(), dir.to_side())
}

fn ending(how: crate::events::Ending) -> &'static str {
    use crate::events::Ending;
    match how {
        Ending::Fin => "fin",
        Ending::Reset => "reset",
        Ending::Shutdown => "shutdown",
        Ending::Failed => "failed",
    }
}

pub(crate) fn close_desc(code: Option<u16>, reason: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(c) = code {
        s.push_str(&format!(" {c}"));
    }
    if let Some(r) = reason.filter(|r| !r.is_empty()) {
        s.push_str(&format!(" {:?}", r));
    }
    s
}

fn conn_list(conns: &[u32]) -> String {
    if conns.is_empty() {
        return "no connection".into();
    }
    conns
        .iter()
        .map(|c| format!("#{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `client→server text "ping"`: direction, opcode and normalised preview.
pub(crate) fn frame_label(f: &FrameInfo) -> String {
    let mut s = format!("{} {}", arrow(f.dir), f.opcode.name());
    if matches!(f.opcode, Opcode::Text | Opcode::Ping | Opcode::Pong) && f.len > 0 {
        s.push(' ');
        s.push_str(&normalise_preview(&f.preview, f.len));
    }
    if !f.fin {
        s.push_str(" (fragment)");
    }
    s
}

/// Digits become `#`; non-printable payloads are shown as `<binary>`; long
/// previews are cut. Quoted with `"`; inner quotes are left as they are
/// (JSON payloads stay readable), line breaks and tabs are escaped.
fn normalise_preview(p: &str, len: u64) -> String {
    if p.chars()
        .any(|c| c == '\u{fffd}' || (c.is_control() && !matches!(c, '\n' | '\r' | '\t')))
    {
        return "<binary>".into();
    }
    let mut out = String::from("\"");
    let mut last_digit = false;
    let mut n = 0;
    let mut cut = (p.len() as u64) < len;
    for c in p.chars() {
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('#');
                n += 1;
            }
            last_digit = true;
            continue;
        }
        last_digit = false;
        if n >= PREVIEW_CHARS {
            cut = true;
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
        n += 1;
    }
    out.push('"');
    if cut {
        out.push('…');
    }
    out
}

/// `""` for one, else the power-of-two bucket holding `n`: `×2..3`, `×4..7`…
fn count_bucket(n: u64) -> String {
    if n <= 1 {
        return String::new();
    }
    let lo = 1u64 << (63 - n.leading_zeros());
    format!(" ×{}..{}", lo, lo.saturating_mul(2) - 1)
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
