//! Where a pipe is in its raw stream, shared with an observer of the link
//! ([`StreamMark`]) so that each frame is logged once.

use super::{log_scan, Pipe};
use crate::events::EventLog;
use crate::frame::Scan;
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

    /// Scan a chunk that passes as it is, logging what it holds.
    pub(super) fn scan_fast(&mut self, chunk: &[u8], now: Instant, log: &EventLog) {
        let (dir, conn, base) = (self.dir, self.conn, self.pos);
        let mark = self.mark.as_deref();
        let mut start = self.frame_start;
        self.scanner.feed(chunk, |s| match s {
            Scan::Start(p) => start = base + p as u64,
            Scan::Info(..) if mark.is_some_and(|m| !m.claim(start)) => {}
            s => log_scan(log, conn, dir, s, now),
        });
        self.frame_start = start;
        self.scanned(chunk.len());
    }
}
