//! One direction of a relayed connection, as a state machine without I/O.
//!
//! A [`Pipe`] takes chunks read from its source ([`Pipe::on_chunk`]), the
//! source's end ([`Pipe::on_src_end`]), fault stages and instant actions, and
//! the clock; it answers what to do toward its destination: forward this
//! chunk now ([`Pipe::on_chunk`] returns it: no copy, no allocation), or,
//! from its queue, [`Next`]: write these bytes, send FIN, send RST, the
//! response status is through, cut the connection, or nothing yet (with
//! [`Pipe::next_timer`] saying when to ask again). It logs what it observes
//! (frames, held, dropped...) to the event log it is handed, which is
//! memory, not I/O. It never touches a socket: the connection
//! (`relay::conn`) does, and reports back ([`Pipe::wrote`],
//! [`Pipe::unsent`], [`Pipe::write_failed`]).
//!
//! With no fault stage active and nothing queued, a chunk is scanned for
//! frames and handed back whole: that is the fast path. Otherwise output
//! goes through the queue of owned units (data, FIN, RST, the response
//! status mark), each with an optional release time; holding stages keep the
//! queue shut; frame-deciding stages see each frame before its bytes pass.

use super::handshake::{head_end, response_status, MAX_HEAD};
use crate::events::{Direction, EventKind, EventLog, FrameInfo};
use crate::faults::{CutHow, EndAction, Flow, FrameAction, PipeRng, Seen, Stage, StageCtx};
use crate::frame::{header_len, FrameScanner, Scan};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stop reading a source while this much is queued toward its destination
/// (held data included: a partition that holds more pushes back, like a
/// full TCP window).
pub const QUEUE_CAP: usize = 8 * 1024 * 1024;

enum Unit {
    Data(Vec<u8>, usize),
    Fin,
    Rst,
    /// The response head's last byte is before this mark: when the mark is
    /// reached, the client has its answer (`Open` or `Rejected` is logged
    /// then, not when the server sent it, so a held 101 opens after the heal).
    Status(u16),
}

struct Out {
    at: Option<Instant>,
    unit: Unit,
}

/// What the pipe watches in its byte stream.
enum Phase {
    /// `to_client` only: collecting the response head.
    Head(Vec<u8>),
    /// Bytes pass unobserved (a rejected or unrecognised handshake).
    Raw,
    /// WebSocket frames are scanned.
    Frames,
}

/// The source's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Open,
    /// It sent FIN, or it is gone.
    Ended,
    /// It sent RST (or failed like one).
    Reset,
}

/// The destination's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dst {
    Open,
    /// FIN was passed on: no more data can follow, but an RST still can (a
    /// peer that half-closed and then resets).
    FinSent,
    /// RST was sent toward it, or it is gone: nothing more is delivered.
    Closed,
}

/// Where a frame's bytes go while frame-deciding stages are active.
enum Gate {
    /// Bytes pass.
    Open,
    /// Collecting a frame's first bytes until its header and preview are known.
    Pending(Vec<u8>),
    /// Removing a frame until its end.
    Dropping,
}

/// Deferred output waiting for a frame boundary (injections keep frames whole).
enum Deferred {
    Bytes(Vec<u8>),
    Fin,
}

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

/// One direction of a connection.
pub struct Pipe {
    dir: Direction,
    conn: u32,
    phase: Phase,
    scanner: FrameScanner,
    stages: Vec<(Arc<str>, Box<dyn Stage>)>,
    /// A fault that ended holding for good (what it held stays undelivered).
    stuck: Option<Arc<str>>,
    queue: VecDeque<Out>,
    queued_bytes: usize,
    gate: Gate,
    deferred: VecDeque<Deferred>,
    rng: PipeRng,
    src: Src,
    dst: Dst,
    /// Held stretch already logged.
    held_logged: bool,
    /// Bytes thrown away because the destination was closed.
    lost_bytes: u64,
    last_release: Option<Instant>,
    /// The write in flight: its largest size and the pause after a full one.
    piece: Option<(usize, Option<Duration>)>,
    /// A stage spent its budget during the last write.
    cut: Option<(Arc<str>, CutHow)>,
}

impl Pipe {
    /// `to_server` starts scanning frames after the request head; `to_client`
    /// first reads the response head.
    pub fn new(dir: Direction, conn: u32, rng: PipeRng) -> Pipe {
        Pipe {
            dir,
            conn,
            phase: match dir {
                Direction::ToServer => Phase::Frames,
                Direction::ToClient => Phase::Head(Vec::with_capacity(256)),
            },
            scanner: FrameScanner::new(dir),
            stages: Vec::new(),
            stuck: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            gate: Gate::Open,
            deferred: VecDeque::new(),
            rng,
            src: Src::Open,
            dst: Dst::Open,
            held_logged: false,
            lost_bytes: 0,
            last_release: None,
            piece: None,
            cut: None,
        }
    }

    /// The direction.
    pub fn dir(&self) -> Direction {
        self.dir
    }

    /// Put a fault's stage on the pipe.
    pub fn add_stage(&mut self, fault: Arc<str>, stage: Box<dyn Stage>) {
        self.stages.push((fault, stage));
    }

    /// Stop observing frames (the handshake was refused: what follows is not
    /// WebSocket).
    pub fn stop_scanning(&mut self) {
        self.phase = Phase::Raw;
    }

    fn holder(&self) -> Option<&Arc<str>> {
        self.stuck.as_ref().or_else(|| {
            self.stages
                .iter()
                .find(|(_, s)| s.flow() == Flow::Hold)
                .map(|(n, _)| n)
        })
    }

    fn holds(&self) -> bool {
        self.holder().is_some()
    }

    fn frame_stages(&self) -> bool {
        self.stages.iter().any(|(_, s)| s.decides_frames())
    }

    /// Whether output must go through the queue.
    fn intercepts(&self) -> bool {
        !self.stages.is_empty()
            || self.stuck.is_some()
            || !self.queue.is_empty()
            || !self.deferred.is_empty()
    }

    /// Whether the source may be read now.
    pub fn wants_read(&self) -> bool {
        self.src == Src::Open && self.queued_bytes < QUEUE_CAP
    }

    /// Whether the queue's front may be written now.
    pub fn wants_write(&self, now: Instant) -> bool {
        self.dst != Dst::Closed
            && !self.holds()
            && self
                .queue
                .front()
                .is_some_and(|o| o.at.is_none_or(|at| at <= now))
    }

    /// When to ask again: the next release time, or a stage's next injection.
    pub fn next_timer(&self) -> Option<Instant> {
        if self.dst == Dst::Closed {
            return None;
        }
        let release = if self.holds() {
            None
        } else {
            self.queue.front().and_then(|o| o.at)
        };
        let wake = if matches!(self.phase, Phase::Frames) {
            self.stages.iter().filter_map(|(_, s)| s.wake()).min()
        } else {
            None
        };
        release.into_iter().chain(wake).min()
    }

    /// Both ends are done with: nothing more will pass.
    pub fn finished(&self) -> bool {
        self.src != Src::Open
            && (self.dst == Dst::Closed || (self.queue.is_empty() && self.deferred.is_empty()))
    }

    /// The source reset (as opposed to FIN or gone).
    pub fn src_reset(&self) -> bool {
        self.src == Src::Reset
    }

    /// The source has ended (FIN, RST, or gone).
    pub fn src_ended(&self) -> bool {
        self.src != Src::Open
    }

    fn log(&self, log: &EventLog, kind: EventKind) {
        log.emit(Some(self.conn), kind);
    }

    /// The request head (`to_server`): it goes first, then what the client
    /// sent behind it.
    pub fn start(&mut self, head: &[u8], rest: &[u8], now: Instant, log: &EventLog) {
        self.emit(head, now, log);
        if let Some(b) = self.on_chunk(rest, now, log) {
            self.emit(b, now, log);
        }
    }

    /// A chunk read from the source. Returns the bytes to forward now (the
    /// fast path: the same bytes, not copied); `None` when the pipe took them
    /// (queued, held, dropped, or lost toward a closed destination).
    pub fn on_chunk<'c>(
        &mut self,
        chunk: &'c [u8],
        now: Instant,
        log: &EventLog,
    ) -> Option<&'c [u8]> {
        match self.phase {
            Phase::Head(_) => {
                self.head_chunk(chunk, now, log);
                return None;
            }
            Phase::Raw => {}
            Phase::Frames if self.intercepts() => {
                self.gated_chunk(chunk, now, log);
                return None;
            }
            Phase::Frames => {
                let (dir, conn) = (self.dir, self.conn);
                self.scanner.feed(chunk, |s| log_scan(log, conn, dir, s));
            }
        }
        if chunk.is_empty() {
            return None;
        }
        if self.dst != Dst::Open {
            self.lost_bytes += chunk.len() as u64;
            return None;
        }
        if self.intercepts() {
            self.emit(chunk, now, log);
            return None;
        }
        Some(chunk)
    }

    /// The connection wrote only the first part of what [`Pipe::on_chunk`]
    /// returned: the rest waits in the queue.
    pub fn unsent(&mut self, rest: &[u8], now: Instant, log: &EventLog) {
        self.enqueue(Unit::Data(rest.to_vec(), 0), now, log);
    }

    /// Collecting the response head: everything goes through the queue, with
    /// the status mark right behind the head's last byte.
    fn head_chunk(&mut self, chunk: &[u8], now: Instant, log: &EventLog) {
        let Phase::Head(head) = &mut self.phase else {
            return;
        };
        let before = head.len();
        let take = chunk.len().min(MAX_HEAD + 4 - before.min(MAX_HEAD));
        head.extend_from_slice(&chunk[..take]);
        let scan_from = before.saturating_sub(3);
        if let Some(e) = head_end(&head[scan_from..]) {
            let end = scan_from + e;
            let status = response_status(&head[..end]).unwrap_or(0);
            let used = end - before;
            self.phase = if status == 101 {
                Phase::Frames
            } else {
                Phase::Raw
            };
            self.emit(&chunk[..used], now, log);
            self.mark_status(status);
            let rest = &chunk[used..];
            if let Some(b) = self.on_chunk(rest, now, log) {
                self.emit(b, now, log);
            }
        } else if head.len() > MAX_HEAD {
            // Not HTTP as we know it: pass bytes through unobserved.
            self.phase = Phase::Raw;
            self.log(
                log,
                EventKind::ProtocolError {
                    dir: self.dir,
                    reason: format!("response head over {MAX_HEAD} bytes"),
                },
            );
            self.emit(chunk, now, log);
            self.mark_status(0);
        } else {
            self.emit(chunk, now, log);
        }
    }

    fn mark_status(&mut self, status: u16) {
        self.queue.push_back(Out {
            at: self.queue.back().and_then(|o| o.at),
            unit: Unit::Status(status),
        });
    }

    /// Bytes that passed the gate, into the queue (or lost if the
    /// destination is closed).
    fn emit(&mut self, bytes: &[u8], now: Instant, log: &EventLog) {
        if bytes.is_empty() {
            return;
        }
        if self.dst != Dst::Open {
            self.lost_bytes += bytes.len() as u64;
            return;
        }
        self.enqueue(Unit::Data(bytes.to_vec(), 0), now, log);
    }

    /// Append output to the queue (with the stages' release time).
    fn enqueue(&mut self, unit: Unit, now: Instant, log: &EventLog) {
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

    /// Queue deferred injections if the stream is between frames.
    fn flush_deferred(&mut self, now: Instant, log: &EventLog) {
        if self.scanner.at_boundary() {
            self.flush_deferred_at_boundary(now, log);
        }
    }

    /// Queue deferred injections; the caller knows the stream is between frames.
    fn flush_deferred_at_boundary(&mut self, now: Instant, log: &EventLog) {
        if !matches!(self.gate, Gate::Open) {
            return;
        }
        while let Some(d) = self.deferred.pop_front() {
            match d {
                Deferred::Bytes(b) => self.enqueue(Unit::Data(b, 0), now, log),
                Deferred::Fin => self.enqueue(Unit::Fin, now, log),
            }
        }
    }

    /// The slow path: split the chunk at frame boundaries and let stages decide.
    fn gated_chunk(&mut self, chunk: &[u8], now: Instant, log: &EventLog) {
        let frame_mode = self.frame_stages();
        let mut scans = Vec::new();
        self.scanner.feed(chunk, |s| scans.push(s));
        let mut cursor = 0;
        for s in scans {
            match s {
                Scan::Start(p) => {
                    self.pass(&chunk[cursor..p], now, log);
                    cursor = p;
                    self.flush_deferred_at_boundary(now, log);
                    if frame_mode {
                        self.gate = Gate::Pending(Vec::new());
                    }
                }
                Scan::Info(p, info) => {
                    self.pass(&chunk[cursor..p], now, log);
                    cursor = p;
                    self.log(log, EventKind::Frame((*info).clone()));
                    for (_, st) in self.stages.iter_mut() {
                        st.observe(Seen::Frame(&info));
                    }
                    self.decide(&info, now, log);
                }
                Scan::End(p) => {
                    self.pass(&chunk[cursor..p], now, log);
                    cursor = p;
                    if matches!(self.gate, Gate::Dropping) {
                        self.gate = Gate::Open;
                    }
                }
                Scan::Violation(reason) => self.log(
                    log,
                    EventKind::ProtocolError {
                        dir: self.dir,
                        reason,
                    },
                ),
            }
        }
        self.pass(&chunk[cursor..], now, log);
        self.flush_deferred(now, log);
    }

    /// Bytes of the current frame, through the gate.
    fn pass(&mut self, bytes: &[u8], now: Instant, log: &EventLog) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.gate {
            Gate::Open => self.emit(bytes, now, log),
            Gate::Pending(buf) => buf.extend_from_slice(bytes),
            Gate::Dropping => {}
        }
    }

    /// A frame's header and preview are known: ask the stages.
    fn decide(&mut self, info: &FrameInfo, now: Instant, log: &EventLog) {
        let Gate::Pending(_) = self.gate else { return };
        let mut action = FrameAction::Pass;
        for (name, st) in self.stages.iter_mut() {
            if st.decides_frames() {
                let mut ctx = StageCtx {
                    now,
                    rng: &mut self.rng,
                    fault: name,
                    dir: self.dir,
                };
                let a = st.on_frame(info, &mut ctx);
                if matches!(action, FrameAction::Pass) {
                    action = a;
                }
            }
        }
        let Gate::Pending(mut buf) = std::mem::replace(&mut self.gate, Gate::Open) else {
            return;
        };
        match action {
            FrameAction::Pass => self.emit(&buf, now, log),
            FrameAction::Drop(event) => {
                self.log(log, event);
                // The frame's `End` (maybe in this very chunk) reopens the gate.
                self.gate = Gate::Dropping;
            }
            FrameAction::Patch(patch, event) => {
                let h = header_len(&buf);
                if info.len > 0 && buf.len() > h {
                    patch(&mut buf[h..]);
                }
                self.log(log, event);
                self.emit(&buf, now, log);
            }
            FrameAction::Replace(bytes, event) => {
                self.log(log, event);
                self.emit(&bytes, now, log);
                self.gate = Gate::Dropping;
            }
        }
    }

    /// The source ended (FIN or RST).
    pub fn on_src_end(&mut self, rst: bool, now: Instant, log: &EventLog) {
        self.src = if rst || self.src == Src::Reset {
            Src::Reset
        } else {
            Src::Ended
        };
        let from = self.dir.from_side();
        self.log(
            log,
            if rst {
                EventKind::Rst { from }
            } else {
                EventKind::Fin { from }
            },
        );
        if !rst {
            for (_, st) in self.stages.iter_mut() {
                st.observe(Seen::Fin);
            }
        }
        // A frame cut short by the end of the stream: forward what we have.
        if let Gate::Pending(buf) = std::mem::replace(&mut self.gate, Gate::Open) {
            self.enqueue(Unit::Data(buf, 0), now, log);
        }
        if self.dst == Dst::Closed {
            return;
        }
        self.enqueue(if rst { Unit::Rst } else { Unit::Fin }, now, log);
    }

    /// The source's socket is gone (we closed it): nothing more is read.
    pub fn source_gone(&mut self) {
        if self.src == Src::Open {
            self.src = Src::Ended;
        }
        self.gate = Gate::Open;
    }

    /// The destination is gone or was closed by us: what is queued toward it
    /// is discarded (logged). Whether it was open until now.
    pub fn close_dst(&mut self, why: &str, log: &EventLog) -> bool {
        if self.dst == Dst::Closed {
            return false;
        }
        self.discard(why, log);
        self.dst = Dst::Closed;
        true
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

    fn queued_data(&self) -> u64 {
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
        if self.stages.is_empty() || self.dst != Dst::Open || !matches!(self.phase, Phase::Frames) {
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
}

fn log_scan(log: &EventLog, conn: u32, dir: Direction, s: Scan) {
    match s {
        Scan::Info(_, info) => log.emit(Some(conn), EventKind::Frame(*info)),
        Scan::Violation(reason) => log.emit(Some(conn), EventKind::ProtocolError { dir, reason }),
        _ => {}
    }
}

#[cfg(test)]
#[path = "pipe_tests.rs"]
mod tests;
