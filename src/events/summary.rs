//! Per-connection frame summaries: what a run reports about the frames it
//! did not keep one by one (counts by opcode and preview class, payload
//! bytes, first and last times), updated by the connection's own task.

use super::{Direction, FrameInfo, Opcode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Distinct preview classes counted per direction; later ones count as `other`.
const MAX_CLASSES: usize = 32;

/// The frames of one connection, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnSummary {
    /// Connection number.
    pub conn: u32,
    /// Frames from the client.
    pub to_server: DirSummary,
    /// Frames from the server.
    pub to_client: DirSummary,
}

/// The frames that travelled one way on one connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirSummary {
    /// Frames seen.
    pub frames: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// Frames by opcode name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub opcodes: BTreeMap<String, u64>,
    /// Frames by preview class (as the transcript labels them), when the run
    /// computed them; at most 32 classes, the rest under `other`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub classes: BTreeMap<String, u64>,
    /// The first frame's time.
    #[serde(
        rename = "first_ms",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::expect::opt_millis"
    )]
    pub first: Option<Duration>,
    /// The last frame's time.
    #[serde(
        rename = "last_ms",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::expect::opt_millis"
    )]
    pub last: Option<Duration>,
}

/// The running counters behind a [`DirSummary`]: fixed-size, no allocation
/// per frame except a new preview class.
#[derive(Debug, Default)]
pub(crate) struct DirCounters {
    frames: u64,
    payload_bytes: u64,
    by_opcode: [u64; 16],
    classes: HashMap<String, u64>,
    other: u64,
    /// Instants, not times of the run: turning each frame's clock reading
    /// into a duration cost more than the rest of counting it.
    first: Option<Instant>,
    last: Option<Instant>,
}

/// What counting a frame needs of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    dir: Direction,
    opcode: Opcode,
    len: u64,
}

impl Counted {
    pub(crate) fn of(dir: Direction, opcode: Opcode, len: u64) -> Counted {
        Counted { dir, opcode, len }
    }

    pub(crate) fn of_info(f: &FrameInfo) -> Counted {
        Counted::of(f.dir, f.opcode, f.len)
    }
}

impl DirCounters {
    /// Count one frame; `class` is its preview class when known.
    pub(crate) fn count(&mut self, at: Instant, f: Counted, class: Option<&str>) {
        self.frames += 1;
        self.payload_bytes += f.len;
        self.by_opcode[opcode_nibble(f.opcode) as usize] += 1;
        self.first.get_or_insert(at);
        self.last = Some(at);
        if let Some(c) = class {
            let full = self.classes.len() >= MAX_CLASSES;
            match self.classes.get_mut(c) {
                Some(n) => *n += 1,
                None if !full => {
                    self.classes.insert(c.to_string(), 1);
                }
                None => self.other += 1,
            }
        }
    }

    /// The summary, times counted from `start`.
    fn summary(&self, start: Instant) -> DirSummary {
        let since = |i: Instant| i.saturating_duration_since(start);
        let mut classes: BTreeMap<String, u64> =
            self.classes.iter().map(|(k, v)| (k.clone(), *v)).collect();
        if self.other > 0 {
            classes.insert("other".into(), self.other);
        }
        DirSummary {
            frames: self.frames,
            payload_bytes: self.payload_bytes,
            opcodes: (0u8..16)
                .filter(|&i| self.by_opcode[i as usize] > 0)
                .map(|i| (Opcode::from_u8(i).name(), self.by_opcode[i as usize]))
                .collect(),
            classes,
            first: self.first.map(since),
            last: self.last.map(since),
        }
    }
}

/// Frames counted in one go: those of one chunk, all seen at one instant
/// (one lock per chunk instead of one per frame).
#[derive(Debug, Default)]
pub struct Tally {
    frames: u32,
    payload_bytes: u64,
    by_opcode: [u32; 16],
}

impl Tally {
    /// One more frame.
    #[inline]
    pub fn add(&mut self, opcode: Opcode, len: u64) {
        self.frames += 1;
        self.payload_bytes += len;
        self.by_opcode[opcode_nibble(opcode) as usize] += 1;
    }

    /// Whether no frame was added.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }
}

impl DirCounters {
    /// Count the frames of `t`, seen at `at`.
    fn add(&mut self, at: Instant, t: &Tally) {
        self.frames += u64::from(t.frames);
        self.payload_bytes += t.payload_bytes;
        for (total, n) in self.by_opcode.iter_mut().zip(t.by_opcode) {
            *total += u64::from(n);
        }
        self.first.get_or_insert(at);
        self.last = Some(at);
    }
}

fn opcode_nibble(op: Opcode) -> u8 {
    match op {
        Opcode::Continuation => 0x0,
        Opcode::Text => 0x1,
        Opcode::Binary => 0x2,
        Opcode::Close => 0x8,
        Opcode::Ping => 0x9,
        Opcode::Pong => 0xA,
        Opcode::Reserved(n) => n & 0x0f,
    }
}

/// Both directions of one connection.
#[derive(Debug, Default)]
pub(crate) struct ConnCounters {
    pub(crate) dirs: [DirCounters; 2],
}

impl ConnCounters {
    /// Count one frame travelling `dir`.
    pub(crate) fn count(&mut self, at: Instant, f: Counted, class: Option<&str>) {
        self.dirs[f.dir.index()].count(at, f, class);
    }

    /// Count the frames of `t`, travelling `dir`, seen at `at`.
    pub(crate) fn add(&mut self, dir: Direction, at: Instant, t: &Tally) {
        self.dirs[dir.index()].add(at, t);
    }

    /// The summary of connection `conn`, times counted from `start`.
    pub(crate) fn summary(&self, conn: u32, start: Instant) -> ConnSummary {
        ConnSummary {
            conn,
            to_server: self.dirs[Direction::ToServer.index()].summary(start),
            to_client: self.dirs[Direction::ToClient.index()].summary(start),
        }
    }
}

/// Summaries of the connections a streaming log closed last, kept for
/// whoever reports them as they close (`flatline relay`). At most this many:
/// one nobody takes is dropped, oldest first.
pub(crate) const RECENT_CLOSED: usize = 256;

/// The last [`RECENT_CLOSED`] closed connections' summaries.
#[derive(Debug, Default)]
pub(crate) struct RecentClosed(std::collections::VecDeque<ConnSummary>);

impl RecentClosed {
    pub(crate) fn push(&mut self, s: ConnSummary) {
        if self.0.len() == RECENT_CLOSED {
            self.0.pop_front();
        }
        self.0.push_back(s);
    }

    pub(crate) fn take(&mut self, conn: u32) -> Option<ConnSummary> {
        let i = self.0.iter().position(|s| s.conn == conn)?;
        self.0.remove(i)
    }
}
