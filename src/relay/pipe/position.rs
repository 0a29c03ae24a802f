//! Where a pipe is in its raw stream, shared with an observer of the link
//! ([`StreamMark`]) so that each frame is logged once.

use super::{log_scan, Pipe};
use crate::events::{Direction, EventLog, Opcode, Tally};
use crate::frame::{Findings, Frame, Scan};
use crate::relay::mark::StreamMark;
use std::sync::Arc;
use std::time::Instant;

impl Pipe {
    /// Share where this pipe is in its stream; `head` is the raw length of
    /// the head before frames, if already read (the response head is read
    /// by the pipe itself).
    pub fn set_mark(&mut self, mark: Arc<StreamMark>, head: Option<u64>) {
        if let Some(h) = head {
            mark.frames_from(h);
            self.pos = h;
        }
        self.mark = Some(mark);
    }

    /// A frame starts at `p` in the chunk being scanned.
    pub(super) fn started(&mut self, p: usize) {
        self.frame_start = self.pos + p as u64;
    }

    /// Whether the frame being scanned is ours to log (not already logged
    /// from the link).
    pub(super) fn claim(&self) -> bool {
        self.mark.as_ref().is_none_or(|m| m.claim(self.frame_start))
    }

    /// `n` more bytes were scanned: publish where the next frame starts.
    pub(super) fn scanned(&mut self, n: usize) {
        let Some(m) = &self.mark else { return };
        self.pos += n as u64;
        let next = if self.scanner.at_boundary() {
            Some(self.pos)
        } else {
            self.scanner.payload_remaining().map(|r| self.pos + r)
        };
        m.set_boundary(next);
    }

    /// Scan a chunk that passes as it is, logging what it holds. Frames the
    /// log only counts are tallied and counted once per chunk.
    pub(super) fn scan_fast(&mut self, chunk: &[u8], now: Instant, log: &EventLog) {
        let mut found = Logged {
            log,
            conn: self.conn,
            dir: self.dir,
            now,
            base: self.pos,
            start: self.frame_start,
            mark: self.mark.as_deref(),
            counts_only: log.counts_only(),
            tally: Tally::default(),
        };
        self.scanner.feed_to(chunk, &mut found);
        if !found.tally.is_empty() {
            log.tally_at(self.conn, self.dir, &found.tally, now);
        }
        self.frame_start = found.start;
        self.scanned(chunk.len());
    }
}

/// Where a passing chunk's findings go: frames to the log (or a tally when
/// the log only counts them), violations as events. A frame the link's
/// observer already logged is not logged again.
struct Logged<'a> {
    log: &'a EventLog,
    conn: u32,
    dir: Direction,
    now: Instant,
    /// Stream position of the chunk's first byte.
    base: u64,
    /// Stream position of the frame being scanned.
    start: u64,
    mark: Option<&'a StreamMark>,
    counts_only: bool,
    tally: Tally,
}

impl Findings for Logged<'_> {
    #[inline(always)]
    fn found(&mut self, s: Scan<Frame<'_>>) {
        match s {
            Scan::Start(p) => self.start = self.base + p as u64,
            Scan::End(_) => {}
            Scan::Info(..) if self.mark.is_some_and(|m| !m.claim(self.start)) => {}
            Scan::Info(_, f) if self.counts_only && f.opcode != Opcode::Close => {
                self.tally.add(f.opcode, f.len)
            }
            s => log_scan(self.log, self.conn, self.dir, s, self.now),
        }
    }
}
