//! Where the relay is in one direction's byte stream, shared with an
//! observer that sees the same stream elsewhere (`--netns`: the packets the
//! kernel drops, scanned before the relay gets their bytes). Offsets count
//! the raw TCP stream from its first byte. Each frame is logged once: by
//! whoever claims its first byte first.

use std::sync::atomic::{AtomicU64, Ordering};

const UNKNOWN: u64 = u64::MAX;

/// One direction of one connection.
#[derive(Debug)]
pub struct StreamMark {
    /// Where frames begin (after the HTTP head); unknown until then.
    frames_from: AtomicU64,
    /// Where the next frame starts, as the relay's scanner knows it;
    /// unknown inside a frame header.
    boundary: AtomicU64,
    /// Frames starting before this offset are logged (or being logged).
    claimed: AtomicU64,
}

impl Default for StreamMark {
    fn default() -> Self {
        StreamMark {
            frames_from: AtomicU64::new(UNKNOWN),
            boundary: AtomicU64::new(UNKNOWN),
            claimed: AtomicU64::new(0),
        }
    }
}

impl StreamMark {
    /// Frames begin at raw offset `at` (the head was `at` bytes).
    pub fn frames_from(&self, at: u64) {
        self.frames_from.store(at, Ordering::Release);
        self.boundary.store(at, Ordering::Release);
    }

    /// Where frames begin, once known.
    pub fn frames_start(&self) -> Option<u64> {
        Some(self.frames_from.load(Ordering::Acquire)).filter(|v| *v != UNKNOWN)
    }

    /// The relay's scanner: the next frame starts at `at` (`None`: inside
    /// a header, not known).
    pub fn set_boundary(&self, at: Option<u64>) {
        self.boundary
            .store(at.unwrap_or(UNKNOWN), Ordering::Release);
    }

    /// A frame start known to the relay at or after which scanning may begin.
    pub fn boundary(&self) -> Option<u64> {
        Some(self.boundary.load(Ordering::Acquire)).filter(|v| *v != UNKNOWN)
    }

    /// Claim the frame starting at `start`: true if nobody logged it yet.
    pub fn claim(&self, start: u64) -> bool {
        self.claimed.fetch_max(start + 1, Ordering::AcqRel) <= start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_claimed_once_and_earlier_frames_stay_claimed() {
        let m = StreamMark::default();
        assert!(m.claim(10));
        assert!(!m.claim(10));
        assert!(!m.claim(4));
        assert!(m.claim(30));
        assert_eq!((m.boundary(), m.frames_start()), (None, None));
        m.frames_from(200);
        assert_eq!((m.boundary(), m.frames_start()), (Some(200), Some(200)));
    }
}
