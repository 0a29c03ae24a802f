//! One relayed connection: one task, two pipes (`to_server`, `to_client`).
//!
//! Each pipe reads a chunk from its source socket into a per-thread scratch
//! buffer, lets the frame scanner observe it, and writes the same bytes to
//! its destination. With no fault active and nothing queued that is the
//! whole path: no copy, no allocation per chunk. While fault stages are
//! active (or a write was partial) output goes through the pipe's queue of
//! owned units (data, FIN, RST), each with an optional release time; holding
//! stages keep the queue shut. Both directions are driven from one `select!`
//! loop with non-blocking writes, so a full socket in one direction never
//! stalls the other.

use super::handshake::{head_end, response_status, MAX_HEAD};
use crate::events::{Direction, Ending, EventKind, EventLog, FrameInfo, Side};
use crate::faults::{Action, CutHow, EndAction, FrameAction, PipeRng, Stage, StageCtx};
use crate::frame::{header_len, FrameScanner, Scan};
use crate::tls::Stream;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Read size: at least 32 KiB (smaller reads cost throughput).
const READ_CHUNK: usize = 64 * 1024;
/// Stop reading a source while this much is queued toward its destination
/// (held data included: a partition that holds more pushes back, like a
/// full TCP window).
const QUEUE_CAP: usize = 8 * 1024 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// Commands from the controller to a connection.
pub enum ConnCmd {
    /// Put a fault's stage on one pipe.
    AddStage {
        /// Fault name.
        fault: Arc<str>,
        /// Which pipe.
        dir: Direction,
        /// The stage.
        stage: Box<dyn Stage>,
    },
    /// Take a fault's stages off (releasing or resetting what they held).
    RemoveFault {
        /// Fault name.
        fault: Arc<str>,
    },
    /// An instant action.
    Act {
        /// Fault name.
        fault: Arc<str>,
        /// The action.
        action: Action,
    },
}

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

/// Where a frame's bytes go while frame-level stages are active.
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

struct Pipe {
    dir: Direction,
    conn: u32,
    scanner: FrameScanner,
    /// Frames are scanned (after the handshake head, while upgraded).
    scanning: bool,
    /// `to_client` only: collecting the response head.
    head: Option<Vec<u8>>,
    stages: Vec<(Arc<str>, Box<dyn Stage>)>,
    queue: VecDeque<Out>,
    queued_bytes: usize,
    gate: Gate,
    deferred: VecDeque<Deferred>,
    rng: PipeRng,
    /// The source sent FIN or RST (or is gone).
    src_done: bool,
    /// RST was sent toward the destination, or it is gone.
    dst_done: bool,
    /// FIN was passed on toward the destination: no more data can follow,
    /// but an RST still can (a peer that half-closed and then resets).
    fin_sent: bool,
    /// Held stretch already logged.
    held_logged: bool,
    /// Bytes thrown away because the destination was closed.
    lost_bytes: u64,
    /// A write failed for good: the destination reset (set once, taken by the loop).
    dst_broken: bool,
    /// The source's RST was read (or stood for a failed socket).
    src_reset: bool,
    last_release: Option<Instant>,
}

/// What a pipe asks the connection to do.
enum Effect {
    /// Close the destination with RST.
    ResetDst,
    /// Shut down the destination's write half.
    FinDst,
    /// Cut the whole connection (limit).
    Cut(Arc<str>, CutHow),
    /// The response head arrived with this status.
    Status(u16),
}

impl Pipe {
    fn new(dir: Direction, conn: u32, rng: PipeRng) -> Pipe {
        Pipe {
            dir,
            conn,
            scanner: FrameScanner::new(dir),
            scanning: false,
            head: None,
            stages: Vec::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            gate: Gate::Open,
            deferred: VecDeque::new(),
            rng,
            src_done: false,
            dst_done: false,
            fin_sent: false,
            held_logged: false,
            lost_bytes: 0,
            dst_broken: false,
            src_reset: false,
            last_release: None,
        }
    }

    fn holds(&self) -> bool {
        self.stages.iter().any(|(_, s)| s.holds())
    }

    fn frame_stages(&self) -> bool {
        self.stages.iter().any(|(_, s)| s.wants_frames())
    }

    /// Whether output must go through the queue.
    fn intercepts(&self) -> bool {
        !self.stages.is_empty() || !self.queue.is_empty() || !self.deferred.is_empty()
    }

    fn wants_read(&self) -> bool {
        !self.src_done && self.queued_bytes < QUEUE_CAP
    }

    /// The queue's front may be written now.
    fn wants_write(&self, now: Instant) -> bool {
        !self.dst_done
            && !self.holds()
            && self
                .queue
                .front()
                .is_some_and(|o| o.at.is_none_or(|at| at <= now))
    }

    /// The next release time, if the front waits for one.
    fn next_timer(&self) -> Option<Instant> {
        if self.dst_done || self.holds() {
            return None;
        }
        self.queue.front().and_then(|o| o.at)
    }

    fn finished(&self) -> bool {
        self.src_done && (self.dst_done || (self.queue.is_empty() && self.deferred.is_empty()))
    }

    fn log(&self, log: &EventLog, kind: EventKind) {
        log.emit(Some(self.conn), kind);
    }

    /// Append output to the queue (with timed stages' release time).
    fn enqueue(&mut self, unit: Unit, log: &EventLog) {
        let now = Instant::now();
        let len = match &unit {
            Unit::Data(b, off) => b.len() - off,
            _ => 0,
        };
        let mut at = None;
        if self.stages.iter().any(|(_, s)| s.timed()) {
            let mut t = now;
            let mut ctx = StageCtx {
                now,
                rng: &mut self.rng,
            };
            for (_, s) in self.stages.iter_mut() {
                if s.timed() {
                    t = t.max(s.release(now, len, &mut ctx));
                }
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
        if self.holds() && !self.held_logged {
            self.held_logged = true;
            let fault = self
                .stages
                .iter()
                .find(|(_, s)| s.holds())
                .map(|(n, _)| n.to_string())
                .unwrap_or_default();
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
        self.queued_bytes += len;
        self.queue.push_back(Out { at, unit });
    }

    /// Bytes that passed the frame gate.
    fn emit(&mut self, bytes: &[u8], dst: Option<&Stream>, log: &EventLog) {
        if bytes.is_empty() {
            return;
        }
        if self.dst_done || self.fin_sent {
            self.lost_bytes += bytes.len() as u64;
            return;
        }
        if !self.intercepts() {
            if let Some(dst) = dst {
                match write_some(dst, bytes) {
                    Ok(n) if n < bytes.len() => {
                        self.enqueue(Unit::Data(bytes[n..].to_vec(), 0), log)
                    }
                    Ok(_) => {}
                    Err(e) => self.write_failed(bytes.len() as u64, &e, log),
                }
                return;
            }
        }
        self.enqueue(Unit::Data(bytes.to_vec(), 0), log);
    }

    /// Flush deferred injections if the stream is between frames.
    fn flush_deferred(&mut self, log: &EventLog) {
        if self.scanner.at_boundary() {
            self.flush_deferred_at_boundary(log);
        }
    }

    /// Flush deferred injections; the caller knows the stream is between frames.
    fn flush_deferred_at_boundary(&mut self, log: &EventLog) {
        if !matches!(self.gate, Gate::Open) {
            return;
        }
        while let Some(d) = self.deferred.pop_front() {
            match d {
                Deferred::Bytes(b) => self.enqueue(Unit::Data(b, 0), log),
                Deferred::Fin => self.enqueue(Unit::Fin, log),
            }
        }
    }

    /// A chunk read from the source.
    fn on_chunk(&mut self, chunk: &[u8], dst: Option<&Stream>, log: &EventLog) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mut chunk = chunk;
        if let Some(head) = self.head.as_mut() {
            // Still reading the response head: forward as it comes.
            let before = head.len();
            let take = chunk.len().min(MAX_HEAD + 4 - before.min(MAX_HEAD));
            head.extend_from_slice(&chunk[..take]);
            let scan_from = before.saturating_sub(3);
            if let Some(e) = head_end(&head[scan_from..]) {
                let end = scan_from + e;
                let status = response_status(&head[..end]).unwrap_or(0);
                let used = end - before;
                self.head = None;
                self.emit(&chunk[..used], dst, log);
                chunk = &chunk[used..];
                self.scanning = status == 101;
                if self.queue.is_empty() {
                    effects.push(Effect::Status(status));
                } else {
                    self.queue.push_back(Out {
                        at: self.queue.back().and_then(|o| o.at),
                        unit: Unit::Status(status),
                    });
                }
            } else if head.len() > MAX_HEAD {
                // Not HTTP as we know it: pass bytes through unobserved.
                self.head = None;
                self.log(
                    log,
                    EventKind::ProtocolError {
                        dir: self.dir,
                        reason: format!("response head over {MAX_HEAD} bytes"),
                    },
                );
                effects.push(Effect::Status(0));
                self.emit(chunk, dst, log);
                return effects;
            } else {
                self.emit(chunk, dst, log);
                return effects;
            }
        }
        if chunk.is_empty() {
            return effects;
        }
        if !self.scanning {
            self.emit(chunk, dst, log);
            return effects;
        }
        if !self.intercepts() {
            // Fast path: observe, forward the same bytes.
            let (dir, conn) = (self.dir, self.conn);
            self.scanner.feed(chunk, |s| log_scan(log, conn, dir, s));
            self.emit(chunk, dst, log);
            return effects;
        }
        self.gated_chunk(chunk, dst, log);
        effects
    }

    /// The slow path: split the chunk at frame boundaries and let stages decide.
    fn gated_chunk(&mut self, chunk: &[u8], dst: Option<&Stream>, log: &EventLog) {
        let frame_mode = self.frame_stages();
        let mut scans = Vec::new();
        self.scanner.feed(chunk, |s| scans.push(s));
        let mut cursor = 0;
        for s in scans {
            match s {
                Scan::Start(p) => {
                    self.pass(&chunk[cursor..p], dst, log);
                    cursor = p;
                    self.flush_deferred_at_boundary(log);
                    if frame_mode {
                        self.gate = Gate::Pending(Vec::new());
                    }
                }
                Scan::Info(p, info) => {
                    self.pass(&chunk[cursor..p], dst, log);
                    cursor = p;
                    self.log(log, EventKind::Frame((*info).clone()));
                    for (_, st) in self.stages.iter_mut() {
                        st.observe_frame(&info);
                    }
                    self.decide(&info, dst, log);
                }
                Scan::End(p) => {
                    self.pass(&chunk[cursor..p], dst, log);
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
        self.pass(&chunk[cursor..], dst, log);
        if self.scanner.at_boundary() {
            self.flush_deferred(log);
        }
    }

    /// Bytes of the current frame, through the gate.
    fn pass(&mut self, bytes: &[u8], dst: Option<&Stream>, log: &EventLog) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.gate {
            Gate::Open => self.emit(bytes, dst, log),
            Gate::Pending(buf) => buf.extend_from_slice(bytes),
            Gate::Dropping => {}
        }
    }

    /// A frame's header and preview are known: ask the stages.
    fn decide(&mut self, info: &FrameInfo, dst: Option<&Stream>, log: &EventLog) {
        let Gate::Pending(_) = self.gate else { return };
        let mut action = FrameAction::Pass;
        let mut by = String::new();
        let mut ctx = StageCtx {
            now: Instant::now(),
            rng: &mut self.rng,
        };
        for (name, st) in self.stages.iter_mut() {
            if st.wants_frames() {
                let a = st.on_frame(info, &mut ctx);
                if a != FrameAction::Pass && action == FrameAction::Pass {
                    action = a;
                    by = name.to_string();
                }
            }
        }
        let Gate::Pending(mut buf) = std::mem::replace(&mut self.gate, Gate::Open) else {
            return;
        };
        match action {
            FrameAction::Pass => self.emit(&buf, dst, log),
            FrameAction::Drop => {
                self.log(
                    log,
                    EventKind::Dropped {
                        fault: by,
                        dir: self.dir,
                        opcode: info.opcode,
                        len: info.len,
                    },
                );
                // The frame's `End` (maybe in this very chunk) reopens the gate.
                self.gate = Gate::Dropping;
            }
            FrameAction::Corrupt => {
                let h = header_len(&buf);
                if info.len > 0 && buf.len() > h {
                    buf[h] ^= 0x80;
                }
                self.log(
                    log,
                    EventKind::Corrupted {
                        fault: by,
                        dir: self.dir,
                        opcode: info.opcode,
                    },
                );
                self.emit(&buf, dst, log);
            }
        }
    }

    /// The source ended (FIN or RST).
    fn on_src_end(&mut self, rst: bool, log: &EventLog) {
        self.src_done = true;
        self.src_reset |= rst;
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
                st.observe_fin();
            }
        }
        // A frame cut short by the end of the stream: forward what we have.
        if let Gate::Pending(buf) = std::mem::replace(&mut self.gate, Gate::Open) {
            self.enqueue(Unit::Data(buf, 0), log);
        }
        if self.dst_done {
            return;
        }
        self.enqueue(if rst { Unit::Rst } else { Unit::Fin }, log);
    }

    /// Write what is due. Returns effects (FIN/RST to deliver, limit cuts).
    fn flush(&mut self, dst: Option<&Stream>, log: &EventLog) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(dst) = dst else { return effects };
        loop {
            let now = Instant::now();
            if !self.wants_write(now) {
                break;
            }
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            match &mut front.unit {
                Unit::Data(buf, off) => {
                    let mut max = buf.len() - *off;
                    let mut gap = None;
                    let mut ctx = StageCtx {
                        now,
                        rng: &mut self.rng,
                    };
                    for (name, st) in self.stages.iter_mut() {
                        if let Some((size, g)) = st.write_size(&mut ctx) {
                            max = max.min(size.max(1));
                            gap = Some(g);
                        }
                        if let Some(b) = st.budget() {
                            if b == 0 {
                                if let Some(how) = st.on_budget_spent() {
                                    effects.push(Effect::Cut(name.clone(), how));
                                    return effects;
                                }
                            }
                            max = max.min(b as usize);
                        }
                    }
                    let n = match write_some(dst, &buf[*off..*off + max]) {
                        Ok(n) => n,
                        Err(e) => {
                            self.write_failed(0, &e, log);
                            break;
                        }
                    };
                    *off += n;
                    self.queued_bytes -= n;
                    for (name, st) in self.stages.iter_mut() {
                        st.delivered(n as u64);
                        if st.budget() == Some(0) {
                            if let Some(how) = st.on_budget_spent() {
                                effects.push(Effect::Cut(name.clone(), how));
                            }
                        }
                    }
                    if !effects.is_empty() {
                        return effects;
                    }
                    let done = *off == buf.len();
                    if done {
                        self.queue.pop_front();
                    }
                    if n < max {
                        break; // the socket is full: wait for writable
                    }
                    if let Some(g) = gap {
                        if !g.is_zero() {
                            let at = Instant::now() + g;
                            if let Some(next) = self.queue.front_mut() {
                                next.at = Some(next.at.map_or(at, |a| a.max(at)));
                            }
                            self.last_release = Some(self.last_release.map_or(at, |l| l.max(at)));
                        }
                    }
                }
                Unit::Fin => {
                    self.queue.pop_front();
                    effects.push(Effect::FinDst);
                    break;
                }
                Unit::Rst => {
                    self.queue.pop_front();
                    effects.push(Effect::ResetDst);
                    break;
                }
                Unit::Status(status) => {
                    let status = *status;
                    self.queue.pop_front();
                    effects.push(Effect::Status(status));
                }
            }
        }
        if self.queue.is_empty() {
            self.queued_bytes = 0;
            if self.stages.is_empty() {
                self.last_release = None;
            }
        }
        effects
    }

    /// Writing failed for good: the destination is gone. What could not be
    /// delivered is logged, never silently lost.
    fn write_failed(&mut self, unsent: u64, e: &io::Error, log: &EventLog) {
        let queued: u64 = self
            .queue
            .iter()
            .map(|o| match &o.unit {
                Unit::Data(b, off) => (b.len() - off) as u64,
                _ => 0,
            })
            .sum();
        self.queue.clear();
        self.deferred.clear();
        self.queued_bytes = 0;
        self.dst_done = true;
        self.dst_broken = true;
        self.log(
            log,
            EventKind::WriteFailed {
                to: self.dir.to_side(),
                bytes: unsent + queued,
                error: e.to_string(),
            },
        );
    }

    /// Drop everything queued (the destination is gone); log it.
    fn discard(&mut self, fault: &str, log: &EventLog) {
        let bytes: u64 = self
            .queue
            .iter()
            .map(|o| match &o.unit {
                Unit::Data(b, off) => (b.len() - off) as u64,
                _ => 0,
            })
            .sum::<u64>()
            + self.lost_bytes;
        let pending = match &self.gate {
            Gate::Pending(b) => b.len() as u64,
            _ => 0,
        };
        self.queue.clear();
        self.deferred.clear();
        self.queued_bytes = 0;
        self.lost_bytes = 0;
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
}

/// Write as much as the socket takes now, without waiting. `Err` means the
/// destination is broken (reset by its peer, or gone): nothing more can be
/// delivered to it.
fn write_some(dst: &Stream, bytes: &[u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < bytes.len() {
        match dst.try_write(&bytes[n..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn log_scan(log: &EventLog, conn: u32, dir: Direction, s: Scan) {
    match s {
        Scan::Info(_, info) => log.emit(Some(conn), EventKind::Frame(*info)),
        Scan::Violation(reason) => log.emit(Some(conn), EventKind::ProtocolError { dir, reason }),
        _ => {}
    }
}

async fn readable(s: Option<&Stream>) -> io::Result<()> {
    match s {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

async fn writable(s: Option<&Stream>) -> io::Result<()> {
    match s {
        Some(s) => s.writable().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Close a socket with RST (SO_LINGER 0, then close).
pub fn reset_socket(s: Stream) {
    s.reset();
}

/// Fault stages a connection starts with: (fault name, pipe, stage).
pub type InitialStages = Vec<(Arc<str>, Direction, Box<dyn Stage>)>;

/// The connection after its request head was read and upstream connected.
pub struct Conn {
    /// Number.
    pub id: u32,
    /// Log.
    pub log: EventLog,
    /// The client's socket (TCP or TLS).
    pub client: Stream,
    /// The server's socket (TCP or TLS).
    pub server: Stream,
    /// Stages active at accept (faults covering new connections).
    pub initial: InitialStages,
    /// The rewritten request head.
    pub head: Vec<u8>,
    /// Bytes the client sent behind its head.
    pub rest: Vec<u8>,
    /// Run seed.
    pub seed: u64,
}

/// Run a connection until both directions are finished or the run stops.
pub async fn run(c: Conn, mut cmds: mpsc::UnboundedReceiver<ConnCmd>, stop: CancellationToken) {
    let log = c.log.clone();
    let id = c.id;
    let mut sockets: [Option<Stream>; 2] = [Some(c.client), Some(c.server)];
    let mut pipes = [
        Pipe::new(
            Direction::ToServer,
            id,
            crate::faults::pipe_rng(c.seed, id, Direction::ToServer),
        ),
        Pipe::new(
            Direction::ToClient,
            id,
            crate::faults::pipe_rng(c.seed, id, Direction::ToClient),
        ),
    ];
    pipes[1].head = Some(Vec::with_capacity(256));
    for (name, dir, stage) in c.initial {
        pipes[dir.index()].stages.push((name, stage));
    }
    let mut reset_seen = false;
    // Made once: re-creating it every loop turn registers with the token's
    // lock and waiter list each time a chunk passes.
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    // The request head, then whatever the client sent behind it.
    {
        let [client, server] = &sockets;
        let _ = client;
        pipes[0].emit(&c.head, server.as_ref(), &log);
        pipes[0].scanning = true;
        pipes[0].on_chunk(&c.rest, server.as_ref(), &log);
    }
    loop {
        // TLS records (and a FIN behind them) that did not fit earlier.
        for s in sockets.iter().flatten() {
            if s.wants_flush() {
                let _ = s.flush();
            }
        }
        // Write what is due, apply effects.
        for d in Direction::BOTH {
            let dst_i = side_index(d.to_side());
            let effects = pipes[d.index()].flush(sockets[dst_i].as_ref(), &log);
            apply(&mut pipes, &mut sockets, d, effects, &log, &mut reset_seen);
            // A destination that refused a write reset the connection: its
            // RST travels the other way like any RST it sends (and is held
            // where that direction is held).
            if std::mem::take(&mut pipes[d.index()].dst_broken) {
                let back = &mut pipes[1 - d.index()];
                if !back.src_reset {
                    reset_seen = true;
                    back.src_done = false;
                    back.on_src_end(true, &log);
                }
            }
        }
        if pipes.iter().all(|p| p.finished()) {
            break;
        }
        let now = Instant::now();
        let [client, server] = &sockets;
        let (p0, p1) = (&pipes[0], &pipes[1]);
        let timer = [p0.next_timer(), p1.next_timer()]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            biased;
            _ = &mut cancelled => {
                shutdown(&mut pipes, &mut sockets, &log);
                log.emit(Some(id), EventKind::Closed { how: Ending::Shutdown });
                return;
            }
            cmd = cmds.recv() => match cmd {
                Some(cmd) => on_cmd(cmd, &mut pipes, &mut sockets, &log, &mut reset_seen),
                None => {
                    shutdown(&mut pipes, &mut sockets, &log);
                    log.emit(Some(id), EventKind::Closed { how: Ending::Shutdown });
                    return;
                }
            },
            r = readable(client.as_ref()), if p0.wants_read() && client.is_some() => {
                on_readable(r, Direction::ToServer, &mut pipes, &mut sockets, &log, &mut reset_seen);
            }
            r = readable(server.as_ref()), if p1.wants_read() && server.is_some() => {
                on_readable(r, Direction::ToClient, &mut pipes, &mut sockets, &log, &mut reset_seen);
            }
            _ = writable(server.as_ref()), if server.as_ref().is_some_and(|s| p0.wants_write(now) || s.wants_flush()) => {}
            _ = writable(client.as_ref()), if client.as_ref().is_some_and(|s| p1.wants_write(now) || s.wants_flush()) => {}
            _ = sleep_until(timer), if timer.is_some() => {}
        }
    }
    for p in pipes.iter_mut() {
        p.discard("closed", &log);
    }
    drop(sockets);
    log.emit(
        Some(id),
        EventKind::Closed {
            how: if reset_seen {
                Ending::Reset
            } else {
                Ending::Fin
            },
        },
    );
}

fn side_index(s: Side) -> usize {
    match s {
        Side::Client => 0,
        Side::Server => 1,
    }
}

fn on_readable(
    r: io::Result<()>,
    dir: Direction,
    pipes: &mut [Pipe; 2],
    sockets: &mut [Option<Stream>; 2],
    log: &EventLog,
    reset_seen: &mut bool,
) {
    let src_i = side_index(dir.from_side());
    let dst_i = side_index(dir.to_side());
    if r.is_err() {
        // The socket itself failed: treat it as a reset by its peer.
        *reset_seen = true;
        if !pipes[dir.index()].src_done {
            pipes[dir.index()].on_src_end(true, log);
        }
        return;
    }
    let effects = SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let Some(src) = sockets[src_i].as_ref() else {
            return Vec::new();
        };
        let pipe = &mut pipes[dir.index()];
        match src.read(&mut scratch[..]) {
            Ok(0) => {
                pipe.on_src_end(false, log);
                Vec::new()
            }
            Ok(n) => pipe.on_chunk(&scratch[..n], sockets[dst_i].as_ref(), log),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Vec::new(),
            Err(_) => {
                // ECONNRESET (or another hard error): the source is gone.
                *reset_seen = true;
                pipe.on_src_end(true, log);
                Vec::new()
            }
        }
    });
    apply(pipes, sockets, dir, effects, log, reset_seen);
}

fn apply(
    pipes: &mut [Pipe; 2],
    sockets: &mut [Option<Stream>; 2],
    dir: Direction,
    effects: Vec<Effect>,
    log: &EventLog,
    reset_seen: &mut bool,
) {
    let id = pipes[0].conn;
    for e in effects {
        match e {
            Effect::Status(status) => {
                if status == 101 && pipes[0].src_done {
                    // The client gave this attempt up (FIN or RST) before the
                    // answer reached it, e.g. a handshake timeout during a
                    // partition: from its side the connection never opened.
                    log.emit(
                        Some(id),
                        EventKind::Note {
                            text: "101 reached a client that had already given this connection up"
                                .into(),
                        },
                    );
                } else if status == 101 {
                    log.emit(Some(id), EventKind::Open);
                } else {
                    pipes[0].scanning = false;
                    log.emit(Some(id), EventKind::Rejected { status });
                }
            }
            Effect::FinDst => {
                let to = dir.to_side();
                if let Some(s) = sockets[side_index(to)].as_ref() {
                    let _ = s.shutdown_write();
                    log.emit(Some(id), EventKind::FinSent { to });
                }
                pipes[dir.index()].fin_sent = true;
            }
            Effect::ResetDst => {
                *reset_seen = true;
                reset_toward(dir.to_side(), pipes, sockets, log, "rst");
                // The source reset: it is gone too.
                let from = dir.from_side();
                if let Some(s) = sockets[side_index(from)].take() {
                    drop(s);
                }
                mark_gone(from, pipes, log, "rst");
            }
            Effect::Cut(fault, how) => {
                for side in [Side::Client, Side::Server] {
                    match how {
                        CutHow::Reset => inject_rst(&fault, side, pipes, sockets, log, reset_seen),
                        CutHow::Fin => {
                            log.emit(
                                Some(id),
                                EventKind::Injected {
                                    fault: fault.to_string(),
                                    to: side,
                                    what: "fin".into(),
                                },
                            );
                            fin_now(side, pipes, sockets, log, &fault);
                        }
                    }
                }
            }
        }
    }
}

/// A fault's RST toward `to`: logged as injected, then sent.
fn inject_rst(
    fault: &str,
    to: Side,
    pipes: &mut [Pipe; 2],
    sockets: &mut [Option<Stream>; 2],
    log: &EventLog,
    reset_seen: &mut bool,
) {
    *reset_seen = true;
    log.emit(
        Some(pipes[0].conn),
        EventKind::Injected {
            fault: fault.to_string(),
            to,
            what: "rst".into(),
        },
    );
    reset_toward(to, pipes, sockets, log, fault);
}

/// RST toward `to`, now: its socket is closed with SO_LINGER 0.
fn reset_toward(
    to: Side,
    pipes: &mut [Pipe; 2],
    sockets: &mut [Option<Stream>; 2],
    log: &EventLog,
    why: &str,
) {
    if let Some(s) = sockets[side_index(to)].take() {
        reset_socket(s);
        log.emit(Some(pipes[0].conn), EventKind::RstSent { to });
    }
    mark_gone(to, pipes, log, why);
}

/// FIN toward `to`, now (queued output toward it is discarded, logged).
fn fin_now(
    to: Side,
    pipes: &mut [Pipe; 2],
    sockets: &mut [Option<Stream>; 2],
    log: &EventLog,
    why: &str,
) {
    let p = &mut pipes[Side::sending(to.other()).index()];
    if !p.dst_done {
        p.discard(why, log);
        p.dst_done = true;
        if let Some(s) = sockets[side_index(to)].as_ref() {
            let _ = s.shutdown_write();
            log.emit(Some(p.conn), EventKind::FinSent { to });
        }
    }
}

/// A side's socket is gone: nothing more is read from it or written to it.
fn mark_gone(side: Side, pipes: &mut [Pipe; 2], log: &EventLog, why: &str) {
    let from = &mut pipes[side.sending().index()];
    from.src_done = true;
    from.gate = Gate::Open;
    let toward = &mut pipes[side.other().sending().index()];
    if !toward.dst_done {
        toward.discard(why, log);
        toward.dst_done = true;
    }
}

fn on_cmd(
    cmd: ConnCmd,
    pipes: &mut [Pipe; 2],
    sockets: &mut [Option<Stream>; 2],
    log: &EventLog,
    reset_seen: &mut bool,
) {
    let id = pipes[0].conn;
    match cmd {
        ConnCmd::AddStage { fault, dir, stage } => {
            pipes[dir.index()].stages.push((fault, stage));
        }
        ConnCmd::RemoveFault { fault } => {
            for d in Direction::BOTH {
                let p = &mut pipes[d.index()];
                let Some(i) = p.stages.iter().position(|(n, _)| *n == fault) else {
                    continue;
                };
                let (_, stage) = p.stages.remove(i);
                let was_holding = stage.holds();
                p.held_logged = p.holds();
                if !p.frame_stages() {
                    if let Gate::Pending(buf) = std::mem::replace(&mut p.gate, Gate::Open) {
                        p.enqueue(Unit::Data(buf, 0), log);
                    }
                }
                if !was_holding {
                    continue;
                }
                match stage.on_remove() {
                    EndAction::Release => {
                        let bytes = p
                            .queue
                            .iter()
                            .map(|o| match &o.unit {
                                Unit::Data(b, off) => (b.len() - off) as u64,
                                _ => 0,
                            })
                            .sum();
                        let fin = p.queue.iter().any(|o| matches!(o.unit, Unit::Fin));
                        if bytes > 0 || fin {
                            log.emit(
                                Some(id),
                                EventKind::Released {
                                    fault: fault.to_string(),
                                    dir: d,
                                    bytes,
                                    fin,
                                },
                            );
                        }
                    }
                    EndAction::Reset => {
                        p.discard(&fault, log);
                        *reset_seen = true;
                        for side in [Side::Client, Side::Server] {
                            inject_rst(&fault, side, pipes, sockets, log, reset_seen);
                        }
                        return;
                    }
                    EndAction::KeepHolding => {
                        // What was held stays lost, and stays held until the
                        // connection ends.
                        p.stages.insert(0, (fault.clone(), Box::new(KeepHolding)));
                        p.held_logged = true;
                    }
                }
            }
        }
        ConnCmd::Act { fault, action } => match action {
            Action::Fin(to) => {
                log.emit(
                    Some(id),
                    EventKind::Injected {
                        fault: fault.to_string(),
                        to,
                        what: "fin".into(),
                    },
                );
                let p = &mut pipes[to.other().sending().index()];
                p.deferred.push_back(Deferred::Fin);
                p.flush_deferred(log);
            }
            Action::Reset(to) => inject_rst(&fault, to, pipes, sockets, log, reset_seen),
            Action::Inject { to, bytes, what } => {
                log.emit(
                    Some(id),
                    EventKind::Injected {
                        fault: fault.to_string(),
                        to,
                        what,
                    },
                );
                let p = &mut pipes[to.other().sending().index()];
                if !p.dst_done {
                    p.deferred.push_back(Deferred::Bytes(bytes));
                    p.flush_deferred(log);
                }
            }
        },
    }
}

/// Keeps a lost FIN's data held until the connection ends.
struct KeepHolding;

impl Stage for KeepHolding {
    fn holds(&self) -> bool {
        true
    }
}

fn shutdown(pipes: &mut [Pipe; 2], sockets: &mut [Option<Stream>; 2], log: &EventLog) {
    for p in pipes.iter_mut() {
        p.discard("shutdown", log);
    }
    for s in sockets.iter_mut() {
        s.take();
    }
}
