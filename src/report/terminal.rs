//! The terminal view: a live timeline printed while the run goes on, and the
//! final verdict table.
//!
//! The live timeline prints one line per thing a person cares about
//! (connections accepted, opened and closed, faults starting and ending,
//! handshake rejections, protocol errors, held and released data) and never
//! one line per frame: frames are counted per connection and summarised when
//! the connection closes.

use super::transcript::close_desc;
use super::{secs3, Report};
use crate::events::{Direction, Event, EventKind, FrameInfo, Opcode, Side};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

#[derive(Debug, Default)]
struct ConnStats {
    /// Frames per direction (index = `Direction::index`), by opcode name.
    frames: [BTreeMap<String, u64>; 2],
    /// Frames removed or corrupted by faults: (fault, what) -> count.
    touched: BTreeMap<(String, String), u64>,
    /// Who ended first, and how (`client FIN`).
    first_end: Option<String>,
    accepted_at: Option<Duration>,
    write_failed: bool,
    summarised: bool,
}

/// Prints a readable live timeline from events given one at a time.
pub struct LivePrinter<W: Write> {
    out: W,
    conns: BTreeMap<u32, ConnStats>,
    progress: Option<ProgressBar>,
}

impl<W: Write> std::fmt::Debug for LivePrinter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LivePrinter")
            .field("conns", &self.conns.len())
            .finish()
    }
}

impl LivePrinter<std::io::Stderr> {
    /// A printer on stderr, with a progress bar against `duration` when
    /// stderr is a terminal.
    pub fn stderr(scenario: &str, duration: Duration) -> Self {
        let p = LivePrinter::new(std::io::stderr());
        if std::io::stderr().is_terminal() {
            p.with_progress(scenario, duration)
        } else {
            p
        }
    }
}

impl<W: Write> LivePrinter<W> {
    /// A printer writing plain lines to `out`.
    pub fn new(out: W) -> Self {
        LivePrinter {
            out,
            conns: BTreeMap::new(),
            progress: None,
        }
    }

    /// Add a progress bar (drawn on stderr) against the scenario's duration.
    /// Lines are printed above it.
    pub fn with_progress(mut self, scenario: &str, duration: Duration) -> Self {
        let pb = ProgressBar::with_draw_target(
            Some(duration.as_millis() as u64),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {elapsed}/{msg}")
            .map(|s| s.progress_chars("=> "))
        {
            pb.set_style(style);
        }
        pb.set_prefix(scenario.to_string());
        pb.set_message(format!("{}", crate::scenario::Dur(duration)));
        self.progress = Some(pb);
        self
    }

    /// The writer back (for tests).
    pub fn into_inner(mut self) -> W {
        if let Some(pb) = self.progress.take() {
            pb.finish_and_clear();
        }
        self.out
    }

    fn line(&mut self, t: Duration, conn: Option<u32>, text: &str) {
        let conn = conn.map(|c| format!("#{c}")).unwrap_or_default();
        let s = format!("{:>9}  {conn:<4} {text}", secs3(t));
        let s = s.trim_end();
        let out = &mut self.out;
        // A failed write to the terminal must not stop the run.
        match &self.progress {
            Some(pb) => pb.suspend(|| {
                let _ = writeln!(out, "{s}");
            }),
            None => {
                let _ = writeln!(out, "{s}");
            }
        }
    }

    /// Takes one event: prints a line if a person cares about it, and
    /// counts frames for the summary printed when the connection closes.
    pub fn on_event(&mut self, e: &Event) {
        if let Some(pb) = &self.progress {
            pb.set_position(e.t.as_millis() as u64);
        }
        let t = e.t;
        let c = e.conn;
        fn stats<W: Write>(s: &mut LivePrinter<W>, c: Option<u32>) -> &mut ConnStats {
            s.conns.entry(c.unwrap_or(0)).or_default()
        }
        match &e.kind {
            EventKind::Listening { addr } => self.line(t, c, &format!("listening on {addr}")),
            EventKind::StoppedListening { fault } => {
                self.line(t, c, &format!("stopped listening ({fault})"))
            }
            EventKind::Accept { peer } => {
                stats(self, c).accepted_at = Some(t);
                self.line(t, c, &format!("accepted from {peer}"))
            }
            EventKind::Request {
                path,
                extensions_removed,
            } => {
                let ext = if *extensions_removed {
                    " (Sec-WebSocket-Extensions removed)"
                } else {
                    ""
                };
                self.line(t, c, &format!("upgrade request {path}{ext}"))
            }
            EventKind::BadRequest { reason } => {
                self.line(t, c, &format!("bad request, answered 400: {reason}"))
            }
            EventKind::UpstreamConnected => {}
            EventKind::UpstreamFailed { error } => self.line(
                t,
                c,
                &format!("upstream unreachable, answered 502: {error}"),
            ),
            EventKind::Open => self.line(t, c, "open (101 Switching Protocols)"),
            EventKind::Rejected { status } => self.line(
                t,
                c,
                &format!("handshake rejected by server: HTTP {status}"),
            ),
            // A run folded in a log read afterwards (live, frames come one by one).
            EventKind::Frames(r) => {
                *self.conns.entry(c.unwrap_or(0)).or_default().frames[r.frame.dir.index()]
                    .entry(frame_kind(&r.frame))
                    .or_insert(0) += r.count;
            }
            EventKind::Frame(f) => self.on_frame(t, c, f),
            EventKind::ProtocolError { dir, reason } => self.line(
                t,
                c,
                &format!("protocol error from {}: {reason}", dir.from_side()),
            ),
            EventKind::Fin { from } => {
                note_end(stats(self, c), *from, "FIN");
                self.line(t, c, &format!("{from} sent FIN"))
            }
            EventKind::Rst { from } => {
                note_end(stats(self, c), *from, "RST");
                self.line(t, c, &format!("{from} reset the connection (RST)"))
            }
            EventKind::FinSent { .. } => {}
            EventKind::RstSent { to } => self.line(t, c, &format!("relay sent RST to {to}")),
            EventKind::WriteFailed { to, bytes, error } => {
                if !std::mem::replace(&mut stats(self, c).write_failed, true) {
                    let text =
                        format!("writing to {to} failed ({bytes} bytes not delivered): {error}");
                    self.line(t, c, &text)
                }
            }
            EventKind::Closed { how } => self.on_closed(t, c, *how),
            EventKind::FaultStart { .. }
            | EventKind::FaultEnd { .. }
            | EventKind::FaultJoin { .. }
            | EventKind::Held { .. }
            | EventKind::Released { .. }
            | EventKind::Discarded { .. }
            | EventKind::Dropped { .. }
            | EventKind::Corrupted { .. }
            | EventKind::Injected { .. }
            | EventKind::Refused { .. } => self.on_fault_event(e),
            EventKind::Stopping => self.line(t, c, "run over: stopping commands and connections"),
            EventKind::Note { text } => self.line(t, c, text),
            EventKind::Kernel { fault, what } => {
                self.line(t, c, &format!("{fault} in the kernel: {what}"))
            }
            EventKind::KernelGaveUp { from, what, seen } => {
                note_end(stats(self, c), *from, "gave up (seen in its namespace)");
                self.line(
                    t,
                    c,
                    &format!("{from} gave up: {what} (seen in the {seen})"),
                )
            }
        }
    }

    /// A frame: counted for the summary; a close frame gets a line.
    fn on_frame(&mut self, t: Duration, c: Option<u32>, f: &FrameInfo) {
        self.conns.entry(c.unwrap_or(0)).or_default().frames[f.dir.index()]
            .entry(frame_kind(f))
            .and_modify(|n| *n += 1)
            .or_insert(1);
        if f.opcode == Opcode::Close {
            let text = format!(
                "{} sent close frame{}",
                f.dir.from_side(),
                close_desc(f.close_code, f.close_reason.as_deref())
            );
            self.line(t, c, &text)
        }
    }

    /// A connection closed: one line with who ended first and how long it
    /// lived, then its frame summary.
    fn on_closed(&mut self, t: Duration, c: Option<u32>, how: crate::events::Ending) {
        let s = self.conns.entry(c.unwrap_or(0)).or_default();
        let who = s
            .first_end
            .as_ref()
            .map(|w| format!(", {w} first"))
            .unwrap_or_default();
        let after = s
            .accepted_at
            .map(|a| format!(" after {}", secs3(t.saturating_sub(a))))
            .unwrap_or_default();
        let how = format!("{how:?}").to_lowercase();
        self.line(t, c, &format!("closed ({how}{who}){after}"));
        if let Some(n) = c {
            self.summarise(t, n);
        }
    }

    /// Faults starting, ending and acting.
    fn on_fault_event(&mut self, e: &Event) {
        let (t, c) = (e.t, e.conn);
        match &e.kind {
            EventKind::FaultStart { fault, conns } => self.line(
                t,
                c,
                &format!("fault {fault} started on {}", conn_list(conns)),
            ),
            EventKind::FaultEnd { fault, conns } => self.line(
                t,
                c,
                &format!("fault {fault} ended on {}", conn_list(conns)),
            ),
            EventKind::FaultJoin { fault } => {
                self.line(t, c, &format!("now affected by fault {fault}"))
            }
            EventKind::Held { fault, dir, what } => self.line(
                t,
                c,
                &format!("{fault} holding {} ({what})", dir_words(*dir)),
            ),
            EventKind::Released {
                fault,
                dir,
                bytes,
                fin,
            } => {
                let fin = if *fin { " and FIN" } else { "" };
                self.line(
                    t,
                    c,
                    &format!("{fault} released {bytes} bytes{fin} {}", dir_words(*dir)),
                )
            }
            EventKind::Discarded { fault, dir, bytes } => self.line(
                t,
                c,
                &format!("{fault} discarded {bytes} held bytes {}", dir_words(*dir)),
            ),
            EventKind::Dropped {
                fault, dir, opcode, ..
            } => self.touched(t, c, fault, "dropped", *dir, *opcode),
            EventKind::Corrupted { fault, dir, opcode } => {
                self.touched(t, c, fault, "corrupted", *dir, *opcode)
            }
            EventKind::Injected { fault, to, what } => {
                self.line(t, c, &format!("{fault} injected {what} toward {to}"))
            }
            EventKind::Refused { fault, how } => {
                self.line(t, c, &format!("refused by {fault} ({how})"))
            }
            _ => {}
        }
    }

    fn touched(
        &mut self,
        t: Duration,
        c: Option<u32>,
        fault: &str,
        verb: &str,
        dir: Direction,
        opcode: Opcode,
    ) {
        let key = (fault.to_string(), format!("{verb} {}", opcode.name()));
        let s = self.conns.entry(c.unwrap_or(0)).or_default();
        let n = s.touched.entry(key).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.line(
                t,
                c,
                &format!(
                    "{fault} {verb} a {} frame {}",
                    opcode.name(),
                    dir_words(dir)
                ),
            );
        }
    }

    fn summarise(&mut self, t: Duration, conn: u32) {
        let Some(s) = self.conns.get_mut(&conn) else {
            return;
        };
        if std::mem::replace(&mut s.summarised, true) {
            return;
        }
        let part = |m: &BTreeMap<String, u64>| {
            let total: u64 = m.values().sum();
            let mut kinds: Vec<(&String, &u64)> = m.iter().collect();
            // Most frequent first: the heartbeat usually leads.
            kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
            match total {
                0 => "no frames".to_string(),
                1 => format!("1 frame ({})", kinds.join(", ")),
                _ => format!("{total} frames ({})", kinds.join(", ")),
            }
        };
        let client = part(&s.frames[Direction::ToServer.index()]);
        let server = part(&s.frames[Direction::ToClient.index()]);
        let mut text = format!("client sent {client}; server sent {server}");
        for ((fault, what), n) in &s.touched {
            text.push_str(&format!("; {fault} {what} ×{n}"));
        }
        self.line(t, Some(conn), &text);
    }

    /// Print the frame summaries of connections still open at the end.
    pub fn finish(&mut self, t: Duration) {
        let open: Vec<u32> = self
            .conns
            .iter()
            .filter(|(n, s)| **n != 0 && !s.summarised)
            .map(|(n, _)| *n)
            .collect();
        for n in open {
            self.summarise(t, n);
        }
        if let Some(pb) = &self.progress {
            pb.finish_and_clear();
        }
        let _ = self.out.flush();
    }
}

/// How a frame is counted: short texts by content (`"ping"`), others by opcode.
fn frame_kind(f: &crate::events::FrameInfo) -> String {
    let short = f.preview.chars().count() <= 12
        && f.len as usize == f.preview.len()
        && !f.preview.is_empty()
        && !f.preview.chars().any(|c| c.is_control() || c == '\u{fffd}');
    if short && matches!(f.opcode, Opcode::Text | Opcode::Ping | Opcode::Pong) {
        if f.opcode == Opcode::Text {
            format!("{:?}", f.preview)
        } else {
            format!("{} {:?}", f.opcode.name(), f.preview)
        }
    } else {
        f.opcode.name()
    }
}

fn note_end(s: &mut ConnStats, from: Side, what: &str) {
    if s.first_end.is_none() {
        s.first_end = Some(format!("{from} {what}"));
    }
}

fn dir_words(dir: Direction) -> String {
    format!("{}→{}", dir.from_side(), dir.to_side())
}

fn conn_list(conns: &[u32]) -> String {
    if conns.is_empty() {
        return "no connection yet".into();
    }
    conns
        .iter()
        .map(|c| format!("#{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// The final table: scenario, expectation, PASS/FAIL, observed, detail; ANSI
/// colours when `color`.
pub fn verdict_table(reports: &[Report], color: bool) -> String {
    let head = ["SCENARIO", "EXPECTATION", "RESULT", "OBSERVED", "DETAIL"];
    let mut rows: Vec<([String; 5], Option<bool>)> = Vec::new();
    for r in reports {
        if r.expectations.is_empty() {
            rows.push((
                [
                    r.scenario.clone(),
                    "-".into(),
                    if r.passed { "PASS" } else { "FAIL" }.into(),
                    "-".into(),
                    "no expectations".into(),
                ],
                Some(r.passed),
            ));
        }
        for v in &r.expectations {
            rows.push((
                [
                    r.scenario.clone(),
                    v.name.clone(),
                    if v.passed { "PASS" } else { "FAIL" }.into(),
                    v.observed.map(secs3).unwrap_or_else(|| "-".into()),
                    v.detail.clone(),
                ],
                Some(v.passed),
            ));
        }
    }
    let mut w = head.map(|h| h.chars().count());
    for (r, _) in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let pad = |s: &str, n: usize| {
        let k = s.chars().count();
        format!("{s}{}", " ".repeat(n.saturating_sub(k)))
    };
    let mut out = String::new();
    let header = format!(
        "{}  {}  {}  {}  {}",
        pad(head[0], w[0]),
        pad(head[1], w[1]),
        pad(head[2], w[2]),
        pad(head[3], w[3]),
        head[4]
    );
    if color {
        out.push_str(&format!("{BOLD}{header}{RESET}\n"));
    } else {
        out.push_str(&header);
        out.push('\n');
    }
    for (r, passed) in &rows {
        let result = pad(&r[2], w[2]);
        let result = match (color, passed) {
            (true, Some(true)) => format!("{GREEN}{result}{RESET}"),
            (true, Some(false)) => format!("{RED}{result}{RESET}"),
            _ => result,
        };
        let line = format!(
            "{}  {}  {result}  {}  {}",
            pad(&r[0], w[0]),
            pad(&r[1], w[1]),
            pad(&r[3], w[3]),
            r[4]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let total = reports.iter().map(|r| r.expectations.len()).sum::<usize>();
    let passed = reports
        .iter()
        .flat_map(|r| &r.expectations)
        .filter(|v| v.passed)
        .count();
    let scen = reports.len();
    let summary = format!(
        "{passed} of {total} expectations passed in {scen} scenario{}",
        if scen == 1 { "" } else { "s" }
    );
    let all = reports.iter().all(|r| r.passed);
    match (color, all) {
        (true, true) => out.push_str(&format!("{GREEN}{summary}{RESET}\n")),
        (true, false) => out.push_str(&format!("{RED}{summary}{RESET}\n")),
        _ => {
            out.push_str(&summary);
            out.push('\n');
        }
    }
    out
}
