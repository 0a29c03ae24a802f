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
//!
//! `tests/pipe.rs` drives it over streams split at every offset, through
//! every fault's stage, without sockets.

use super::handshake::{head_end, response_status, MAX_HEAD};
use crate::events::{Direction, EventKind, EventLog, FrameInfo};
use crate::faults::{CutHow, Flow, FrameAction, PipeRng, Seen, Stage, StageCtx};
use crate::frame::{header_len, Frame, FrameScanner, Scan};
use std::collections::VecDeque;
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

/// One direction of a connection. `repr(C)`: the fields every relayed chunk
/// reads come first and share four cache lines (the compiler's own order
/// spread them over seven, among cold ones such as the 320-byte RNG).
#[repr(C)]
pub struct Pipe {
    // Read for every chunk.
    src: Src,
    dst: Dst,
    dir: Direction,
    /// The handshake completed: stages may inject messages.
    open: bool,
    conn: u32,
    phase: Phase,
    stages: Vec<(Arc<str>, Box<dyn Stage>)>,
    /// A fault that ended holding for good (what it held stays undelivered).
    stuck: Option<Arc<str>>,
    queue: VecDeque<Out>,
    deferred: VecDeque<Deferred>,
    /// A stage spent its budget during the last write.
    cut: Option<(Arc<str>, CutHow)>,
    last_release: Option<Instant>,
    /// Shared with an observer of the link (`--netns`).
    mark: Option<Arc<crate::relay::mark::StreamMark>>,
    /// Raw stream offset of the next byte to scan, and of the frame being
    /// scanned (kept only with a mark).
    pos: u64,
    frame_start: u64,
    scanner: FrameScanner,
    // Read when faults act.
    queued_bytes: usize,
    gate: Gate,
    /// Held stretch already logged.
    held_logged: bool,
    /// Bytes thrown away because the destination was closed.
    lost_bytes: u64,
    /// The write in flight: its largest size and the pause after a full one.
    piece: Option<(usize, Option<Duration>)>,
    rng: PipeRng,
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
            open: false,
            mark: None,
            pos: 0,
            frame_start: 0,
        }
    }

    /// The handshake completed (the client has its 101): from now on
    /// stages may inject messages.
    pub fn opened(&mut self) {
        self.open = true;
    }

    pub(super) fn injecting(&self) -> bool {
        self.open && self.dst == Dst::Open && matches!(self.phase, Phase::Frames)
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
            Phase::Frames => self.scan_fast(chunk, now, log),
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
            if let Some(m) = &self.mark {
                m.frames_from(end as u64);
            }
            self.pos = end as u64;
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

    /// Queue deferred injections if the stream is between frames.
    pub(super) fn flush_deferred(&mut self, now: Instant, log: &EventLog) {
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
        self.scanner.feed(chunk, |s| scans.push(s.owned()));
        let mut cursor = 0;
        for s in scans {
            match s {
                Scan::Start(p) => {
                    self.started(p);
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
                    if self.claim() {
                        self.log(log, EventKind::Frame(info.clone()));
                    }
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
        self.scanned(chunk.len());
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
}

fn log_scan(log: &EventLog, conn: u32, dir: Direction, s: Scan<Frame<'_>>, now: Instant) {
    match s {
        Scan::Info(_, f) => log.frame_at(conn, &f, now),
        Scan::Violation(reason) => {
            log.emit_at(Some(conn), EventKind::ProtocolError { dir, reason }, now)
        }
        _ => {}
    }
}

mod output;
mod position;
mod state;
pub use output::{Ended, Next};
