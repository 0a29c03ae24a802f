//! Building a transcript's parts from the event log: the clock (times from
//! the first accept, rounded), the timeline entries with similar events
//! counted per stretch, their order within a time step, and the fault windows.

use super::classify::{classify, count_bucket, Class};
use super::{fmt_signed, FaultWindow};
use crate::events::{Event, EventKind, Side};
use crate::report::Report;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Times as the transcript shows them: from the first accepted connection,
/// rounded to the resolution (or left out with none).
pub(super) struct Clock {
    origin: Duration,
    resolution: Option<Duration>,
}

impl Clock {
    pub fn new(events: &[Event], resolution: Option<Duration>) -> Clock {
        let origin = events
            .iter()
            .find(|e| matches!(e.kind, EventKind::Accept { .. }))
            .map(|e| e.t)
            .unwrap_or(Duration::ZERO);
        Clock { origin, resolution }
    }

    /// `t` rounded to the resolution, in units of it (0 with none).
    pub fn bucket(&self, t: Duration) -> i128 {
        match self.resolution {
            Some(r) => {
                let (n, r) = (
                    t.as_nanos() as i128 - self.origin.as_nanos() as i128,
                    r.as_nanos().max(1) as i128,
                );
                (n + r / 2).div_euclid(r)
            }
            None => 0,
        }
    }

    /// `t` as shown (empty with no resolution).
    pub fn when(&self, t: Duration) -> String {
        match self.resolution {
            Some(r) => fmt_signed(t.as_nanos() as i128 - self.origin.as_nanos() as i128, r),
            None => String::new(),
        }
    }
}

/// One timeline line before formatting.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    /// The time rounded to the resolution, in units of it (0 with none).
    pub bucket: i128,
    pub t: String,
    pub conn: Option<u32>,
    pub text: String,
    pub count: u64,
    /// A FIN line: the side whose half-close it is about (read from it, or
    /// passed on from it).
    pub fin: Option<Side>,
}

impl Entry {
    /// The text with its count bucket.
    pub fn body(&self) -> String {
        format!("{}{}", self.text, count_bucket(self.count))
    }
}

/// The timeline entries, and whether they end with the run's stop line.
pub(super) fn entries(report: &Report, clock: &Clock) -> (Vec<Entry>, bool) {
    let mut entries: Vec<Entry> = Vec::new();
    // (conn, label) -> index of the entry counting that kind of frame
    // since the connection's last state change.
    let mut open_runs: HashMap<(u32, String), usize> = HashMap::new();
    let mut seen_listening = false;
    let mut live: BTreeSet<u32> = BTreeSet::new();
    let entry = |e: &Event, text: String| Entry {
        bucket: clock.bucket(e.t),
        t: clock.when(e.t),
        conn: e.conn,
        text,
        count: 1,
        fin: match e.kind {
            EventKind::Fin { from } => Some(from),
            EventKind::FinSent { to } => Some(to.other()),
            _ => None,
        },
    };
    for e in &report.events {
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
            // No time: when the run stops depends on the verdict tick.
            entries.push(Entry {
                bucket: clock.bucket(e.t),
                t: String::new(),
                conn: None,
                text: stop_line(&live),
                count: 1,
                fin: None,
            });
            return (entries, true);
        }
        match classify(report, e, &mut seen_listening) {
            Class::Skip => {}
            Class::Run { label, count } => {
                let key = (e.conn.unwrap_or(0), label);
                match open_runs.get(&key) {
                    Some(i) => entries[*i].count += count,
                    None => {
                        let mut first = entry(e, key.1.clone());
                        first.count = count;
                        entries.push(first);
                        open_runs.insert(key, entries.len() - 1);
                    }
                }
            }
            Class::Line { text, breaks } => {
                match breaks {
                    None => open_runs.clear(),
                    Some(conns) => open_runs.retain(|(c, _), _| !conns.contains(c)),
                }
                entries.push(entry(e, text));
            }
        }
    }
    (entries, false)
}

/// What peers do while being stopped (a close frame answered or not, FIN or
/// RST as the socket is dropped) races the shutdown and says nothing about
/// the client: the transcript ends at the stop, naming what was still open.
fn stop_line(live: &BTreeSet<u32>) -> String {
    if live.is_empty() {
        "run stopping".to_string()
    } else {
        let open: Vec<String> = live.iter().map(|n| format!("#{n}")).collect();
        format!("run stopping; still open: {}", open.join(", "))
    }
}

/// Connections run concurrently: within one time step, list what happened
/// without a connection first, then connection by connection (each keeping
/// its own order), so scheduling does not show. The stop line stays last
/// whatever its time step.
pub(super) fn order_within_steps(entries: &mut Vec<Entry>, stopped: bool) {
    let last = entries.len().saturating_sub(1);
    let mut keyed: Vec<(usize, Entry)> = entries.drain(..).enumerate().collect();
    keyed.sort_by_key(|(i, e)| {
        if stopped && *i == last {
            (i128::MAX, u32::MAX)
        } else {
            (e.bucket, e.conn.unwrap_or(0))
        }
    });
    *entries = keyed.into_iter().map(|(_, e)| e).collect();
}

/// When both sides of a connection half-close in the same time step, which
/// FIN the relay read first is a race between two TCP streams (the client's
/// answer to a close frame against the server's own FIN): in a stretch of
/// consecutive FIN lines, the server's half-close (read, passed on) is
/// listed before the client's, each keeping its own order.
pub(super) fn order_fins(entries: &mut [Entry]) {
    let mut i = 0;
    while i < entries.len() {
        let same = |a: &Entry, b: &Entry| {
            a.fin.is_some() && b.fin.is_some() && a.bucket == b.bucket && a.conn == b.conn
        };
        let mut j = i + 1;
        while j < entries.len() && same(&entries[i], &entries[j]) {
            j += 1;
        }
        entries[i..j].sort_by_key(|e| e.fin != Some(Side::Server));
        i = j;
    }
}

/// Fault windows, in order of first appearance, with every connection each
/// one applied to.
pub(super) fn fault_windows(report: &Report, clock: &Clock) -> Vec<FaultWindow> {
    let mut faults: Vec<FaultWindow> = Vec::new();
    let mut conns_of: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for e in &report.events {
        match &e.kind {
            EventKind::FaultStart { fault, conns } => {
                if !faults.iter().any(|f| &f.name == fault) {
                    faults.push(FaultWindow {
                        name: fault.clone(),
                        kind: report.fault_kind(fault).unwrap_or("?").to_string(),
                        start: clock.when(e.t),
                        end: if clock.resolution.is_some() {
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
                    f.end = clock.when(e.t);
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
    faults
}
