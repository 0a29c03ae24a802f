//! The pipe's output side: the queue toward the destination, what is due
//! now ([`Next`]), what the connection reports back, injections waiting for
//! a frame boundary, and what ending a fault does to what the pipe holds.

use super::{Deferred, Dst, Gate, Out, Pipe, Unit};
use crate::events::{EventKind, EventLog};
use crate::faults::{CutHow, EndAction, Flow, Seen, StageCtx};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to do toward the destination now.
#[derive(Debug, PartialEq)]
pub enum Next<'a> {
    /// Write (some of) these bytes, then report with [`Pipe::wrote`].
    Write(&'a [u8]),
    /// Shut down the destination's write half.
    Fin,
    /// Close the destination with RST (its source reset).
    Rst,
    /// The response head with this status has been delivered.
    Status(u16),
    /// A fault cut the connection.
    Cut(Arc<str>, CutHow),
    /// Nothing now.
    Idle,
}

/// What ending a fault on this pipe asks of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Nothing more.
    Done,
    /// Reset both sides (what it held was thrown away).
    Reset,
}

impl Pipe {
    /// Append output to the queue (with the stages' release time).
    pub(super) fn enqueue(&mut self, unit: Unit, now: Instant, log: &EventLog) {
        let len = match &unit {
            Unit::Data(b, off) => b.len() - off,
            _ => 0,
        };
        let mut at = None;
        if !self.stages.is_empty() {
            let mut t = now;
            for (name, s) in self.stages.iter_mut() {
                let mut ctx = StageCtx {
                    now,
                    rng: &mut self.rng,
                    fault: name,
                    dir: self.dir,
                };
                t = t.max(s.release(now, len, &mut ctx));
            }
            // Never overtake what is already queued: TCP keeps order.
            if let Some(last) = self.last_release {
                t = t.max(last);
            }
            self.last_release = Some(t);
            if t > now {
                at = Some(t);
            }
        } else if let Some(last) = self.last_release {
            if last > now {
                at = Some(last);
            }
        }
        if !self.held_logged {
            if let Some(fault) = self.holder() {
                let fault = fault.to_string();
                self.held_logged = true;
                let what = match &unit {
                    Unit::Data(..) | Unit::Status(_) => "data",
                    Unit::Fin => "fin",
                    Unit::Rst => "rst",
                };
                self.log(
                    log,
                    EventKind::Held {
                        fault,
                        dir: self.dir,
                        what: what.into(),
                    },
                );
            }
        }
        self.queued_bytes += len;
        self.queue.push_back(Out { at, unit });
    }

    /// What to do toward the destination now (call until [`Next::Idle`] or
    /// a write that did not complete).
    pub fn next(&mut self, now: Instant) -> Next<'_> {
        if let Some((fault, how)) = self.cut.take() {
            return Next::Cut(fault, how);
        }
        if !self.wants_write(now) {
            if self.queue.is_empty() {
                self.queued_bytes = 0;
                if self.stages.is_empty() {
                    self.last_release = None;
                    // Back on the fast path: an idle connection keeps no
                    // queue memory (the handshake heads went through it).
                    if self.queue.capacity() > 0 && self.deferred.is_empty() {
                        self.queue = VecDeque::new();
                    }
                }
            }
            return Next::Idle;
        }
        let len = match self.queue.front().map(|o| &o.unit) {
            Some(Unit::Data(buf, off)) => buf.len() - off,
            Some(Unit::Fin) => {
                self.queue.pop_front();
                if self.dst == Dst::Open {
                    self.dst = Dst::FinSent;
                }
                return Next::Fin;
            }
            Some(Unit::Rst) => {
                self.queue.pop_front();
                return Next::Rst;
            }
            Some(Unit::Status(status)) => {
                let status = *status;
                self.queue.pop_front();
                return Next::Status(status);
            }
            None => return Next::Idle,
        };
        let mut max = len;
        let mut gap: Option<Duration> = None;
        for (name, st) in self.stages.iter_mut() {
            if let Flow::Cut(how) = st.flow() {
                return Next::Cut(name.clone(), how);
            }
            let mut ctx = StageCtx {
                now,
                rng: &mut self.rng,
                fault: name,
                dir: self.dir,
            };
            if let Some((size, g)) = st.piece(&mut ctx) {
                max = max.min(size.max(1));
                gap = Some(gap.map_or(g, |x| x.max(g)));
            }
        }
        self.piece = Some((max, gap));
        match self.queue.front().map(|o| &o.unit) {
            Some(Unit::Data(buf, off)) => Next::Write(&buf[*off..*off + max]),
            _ => Next::Idle,
        }
    }

    /// `n` bytes of the [`Next::Write`] were written (fewer than offered: the
    /// destination is full for now).
    pub fn wrote(&mut self, n: usize, now: Instant) {
        let (max, gap) = self.piece.take().unwrap_or((usize::MAX, None));
        let Some(Out {
            unit: Unit::Data(buf, off),
            ..
        }) = self.queue.front_mut()
        else {
            return;
        };
        *off += n;
        let done = *off == buf.len();
        self.queued_bytes = self.queued_bytes.saturating_sub(n);
        if done {
            self.queue.pop_front();
        }
        for (name, st) in self.stages.iter_mut() {
            st.observe(Seen::Delivered(n as u64));
            if let (Flow::Cut(how), None) = (st.flow(), &self.cut) {
                self.cut = Some((name.clone(), how));
            }
        }
        if n < max || self.cut.is_some() {
            return;
        }
        if let Some(g) = gap.filter(|g| !g.is_zero()) {
            let at = now + g;
            if let Some(next) = self.queue.front_mut() {
                next.at = Some(next.at.map_or(at, |a| a.max(at)));
            }
            self.last_release = Some(self.last_release.map_or(at, |l| l.max(at)));
        }
    }

    /// Writing failed for good: the destination is gone. What could not be
    /// delivered is logged, never silently lost.
    pub fn write_failed(&mut self, unsent: u64, e: &io::Error, log: &EventLog) {
        let queued = self.queued_data();
        self.queue.clear();
        self.deferred.clear();
        self.queued_bytes = 0;
        self.piece = None;
        self.dst = Dst::Closed;
        self.log(
            log,
            EventKind::WriteFailed {
                to: self.dir.to_side(),
                bytes: unsent + queued,
                error: e.to_string(),
            },
        );
    }

    pub(super) fn queued_data(&self) -> u64 {
        self.queue
            .iter()
            .map(|o| match &o.unit {
                Unit::Data(b, off) => (b.len() - off) as u64,
                _ => 0,
            })
            .sum()
    }

    /// Drop everything queued (the destination is gone); log it.
    pub fn discard(&mut self, fault: &str, log: &EventLog) {
        let bytes = self.queued_data() + self.lost_bytes;
        let pending = match &self.gate {
            Gate::Pending(b) => b.len() as u64,
            _ => 0,
        };
        self.queue.clear();
        self.deferred.clear();
        self.queued_bytes = 0;
        self.lost_bytes = 0;
        self.piece = None;
        if bytes + pending > 0 {
            self.log(
                log,
                EventKind::Discarded {
                    fault: fault.to_string(),
                    dir: self.dir,
                    bytes: bytes + pending,
                },
            );
        }
    }

    /// Take a fault's stage off, releasing, resetting or keeping what it held.
    pub fn remove_fault(&mut self, fault: &Arc<str>, now: Instant, log: &EventLog) -> Ended {
        let Some(i) = self.stages.iter().position(|(n, _)| n == fault) else {
            return Ended::Done;
        };
        let (_, stage) = self.stages.remove(i);
        let was_holding = stage.flow() == Flow::Hold;
        self.held_logged = self.holds();
        if !self.frame_stages() {
            if let Gate::Pending(buf) = std::mem::replace(&mut self.gate, Gate::Open) {
                self.enqueue(Unit::Data(buf, 0), now, log);
            }
        }
        if !was_holding {
            return Ended::Done;
        }
        match stage.on_end() {
            EndAction::Release => {
                let bytes = self.queued_data();
                let fin = self.queue.iter().any(|o| matches!(o.unit, Unit::Fin));
                if bytes > 0 || fin {
                    self.log(
                        log,
                        EventKind::Released {
                            fault: fault.to_string(),
                            dir: self.dir,
                            bytes,
                            fin,
                        },
                    );
                }
                Ended::Done
            }
            EndAction::Reset => {
                self.discard(fault, log);
                Ended::Reset
            }
            EndAction::HoldForever => {
                // What was held stays lost, and stays held until the
                // connection ends.
                self.stuck = Some(fault.clone());
                self.held_logged = true;
                Ended::Done
            }
        }
    }

    /// Bytes (whole frames) to send at the next frame boundary.
    pub fn inject(&mut self, bytes: Vec<u8>, now: Instant, log: &EventLog) {
        if self.dst != Dst::Closed {
            self.deferred.push_back(Deferred::Bytes(bytes));
            self.flush_deferred(now, log);
        }
    }

    /// FIN at the next frame boundary (after what is queued).
    pub fn fin_at_boundary(&mut self, now: Instant, log: &EventLog) {
        self.deferred.push_back(Deferred::Fin);
        self.flush_deferred(now, log);
    }

    /// Let stages that inject on their own schedule do so.
    pub fn tick(&mut self, now: Instant, log: &EventLog) {
        if self.stages.is_empty() || !self.injecting() {
            return;
        }
        let mut got = Vec::new();
        for (name, st) in self.stages.iter_mut() {
            if st.wake().is_some_and(|w| w <= now) {
                let mut ctx = StageCtx {
                    now,
                    rng: &mut self.rng,
                    fault: name,
                    dir: self.dir,
                };
                if let Some(inj) = st.inject(&mut ctx) {
                    got.push((name.to_string(), inj));
                }
            }
        }
        for (fault, inj) in got {
            self.log(
                log,
                EventKind::Injected {
                    fault,
                    to: self.dir.to_side(),
                    what: inj.what,
                },
            );
            self.inject(inj.bytes, now, log);
        }
    }
}
