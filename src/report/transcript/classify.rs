//! What each event becomes in the transcript (a line of its own, a counted
//! run of similar events, or nothing), and the wording of those lines.

use super::PREVIEW_CHARS;
use crate::events::{Direction, Event, EventKind, FrameInfo, Opcode};
use crate::report::Report;

/// What one event becomes in the transcript.
pub(super) enum Class {
    /// Left out (notes, the first `listening`).
    Skip,
    /// Counted with the similar events (same label) of its connection since
    /// that connection's last state change.
    Run {
        /// What is counted.
        label: String,
        /// How many (a folded run of frames stands for several).
        count: u64,
    },
    /// A line of its own; breaks the frame runs of the listed connections
    /// (`None` = all connections).
    Line {
        text: String,
        breaks: Option<Vec<u32>>,
    },
}

/// What `e` becomes; `seen_listening` tells a relay that listens again
/// (after `refuse: refused`) from the first `listening`.
pub(super) fn classify(report: &Report, e: &Event, seen_listening: &mut bool) -> Class {
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
        // A run folds frames only between two events of its connection, so
        // it never spans a line that would have split it.
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
        EventKind::FaultStart { .. }
        | EventKind::FaultEnd { .. }
        | EventKind::FaultJoin { .. }
        | EventKind::Held { .. }
        | EventKind::Released { .. }
        | EventKind::Discarded { .. }
        | EventKind::Dropped { .. }
        | EventKind::Corrupted { .. }
        | EventKind::Injected { .. }
        | EventKind::Refused { .. } => fault_class(report, e),
        EventKind::Stopping => Class::Line {
            text: "run stopping".into(),
            breaks: None,
        },
        EventKind::Note { .. } | EventKind::Kernel { .. } => Class::Skip,
        EventKind::KernelGaveUp { from, .. } => {
            line(format!("{from} gave up (seen in its namespace)"))
        }
    }
}

/// What an event about a fault becomes.
fn fault_class(report: &Report, e: &Event) -> Class {
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
        EventKind::FaultStart { fault, conns } => Class::Line {
            text: format!(
                "fault {fault} starts{} on {}",
                report
                    .fault_kind(fault)
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
        _ => Class::Skip,
    }
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

pub(super) fn conn_list(conns: &[u32]) -> String {
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
    let mut s = String::new();
    frame_label_into(f, &mut s);
    s
}

/// [`frame_label`] written into `s` (cleared first): the event log labels
/// every folded frame, into one buffer per connection.
pub(crate) fn frame_label_into(f: &FrameInfo, s: &mut String) {
    s.clear();
    s.push_str(f.dir.from_side().as_str());
    s.push('→');
    s.push_str(f.dir.to_side().as_str());
    s.push(' ');
    match f.opcode.known_name() {
        Some(n) => s.push_str(n),
        None => s.push_str(&f.opcode.name()),
    }
    if matches!(f.opcode, Opcode::Text | Opcode::Ping | Opcode::Pong) && f.len > 0 {
        s.push(' ');
        normalise_preview_into(&f.preview, f.len, s);
    }
    if !f.fin {
        s.push_str(" (fragment)");
    }
}

/// Digits become `#`; non-printable payloads are shown as `<binary>`; long
/// previews are cut. Quoted with `"`; inner quotes are left as they are
/// (JSON payloads stay readable), line breaks and tabs are escaped.
#[cfg(test)]
pub(super) fn normalise_preview(p: &str, len: u64) -> String {
    let mut out = String::new();
    normalise_preview_into(p, len, &mut out);
    out
}

/// [`normalise_preview`], appended to `out`.
fn normalise_preview_into(p: &str, len: u64, out: &mut String) {
    if p.chars()
        .any(|c| c == '\u{fffd}' || (c.is_control() && !matches!(c, '\n' | '\r' | '\t')))
    {
        out.push_str("<binary>");
        return;
    }
    out.push('"');
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
}

/// `""` for one, else the power-of-two bucket holding `n`: `×2..3`, `×4..7`…
pub(super) fn count_bucket(n: u64) -> String {
    if n <= 1 {
        return String::new();
    }
    let lo = 1u64 << (63 - n.leading_zeros());
    format!(" ×{}..{}", lo, lo.saturating_mul(2) - 1)
}
