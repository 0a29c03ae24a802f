//! One relayed connection: one task owning the two legs and the two pipes,
//! `to_server` and `to_client`.
//!
//! The per-direction logic lives in [`Pipe`], which does no I/O; this module
//! is the driver. It reads a chunk from a leg into a per-thread scratch
//! buffer and hands it to the pipe: with no fault active the pipe hands the
//! same bytes back and they are written at once (no copy, no allocation per
//! chunk). Otherwise it asks the pipe what is due ([`Next`]) and does it:
//! write, FIN, RST, log the handshake's answer, or cut the connection. Both
//! directions are driven from one loop with non-blocking writes, so a full
//! socket in one direction never stalls the other; instant actions and heals
//! that touch both directions happen here too. What the loop waits for, and
//! the quiet path that forwards inside the wait, are in `conn::wait`.
//!
//! The legs are [`AnyTransport`]s (`relay::transport`): plain TCP, or TLS on
//! either leg (`tls::TlsStream`: non-blocking read and write, readiness,
//! shutdown-write for close_notify plus FIN, reset for RST, and records
//! still to flush), handed over in [`Conn`].

use super::inbox;
use super::mark::StreamMark;
use super::pipe::{Ended, Next, Pipe};
use super::transport::{write_some, AnyTransport, Transport};
use super::wake::LegWakers;
use crate::events::{Direction, Ending, EventKind, EventLog, Side};
use crate::faults::{Action, CutHow, Stage};
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Instant;
use wait::Woke;

/// Read size: at least 32 KiB (smaller reads cost throughput).
const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Grown to [`READ_CHUNK`] on first use (a `const` thread-local skips
    /// the lazy-init check on every access).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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

/// Fault stages a connection starts with: (fault name, pipe, stage).
pub type InitialStages = Vec<(Arc<str>, Direction, Box<dyn Stage>)>;

/// A leg of a connection.
type Leg = Option<AnyTransport>;

/// The connection after its request head was read and upstream connected.
pub struct Conn {
    /// Connection number.
    pub id: u32,
    /// Where events go.
    pub log: EventLog,
    /// The client's leg.
    pub client: AnyTransport,
    /// The server's leg.
    pub server: AnyTransport,
    /// Stages active at accept (faults covering new connections).
    pub initial: InitialStages,
    /// The rewritten request head.
    pub head: Vec<u8>,
    /// Bytes the client sent behind its head.
    pub rest: Vec<u8>,
    /// Run seed (for the pipes' RNGs).
    pub seed: u64,
    /// Length of the request head as the client sent it.
    pub raw_head: u64,
    /// Stream positions shared with an observer of the link (`--netns`),
    /// `[to_server, to_client]`.
    pub marks: [Option<Arc<StreamMark>>; 2],
    /// Not WebSocket: bytes pass unobserved both ways (byte-level faults only).
    pub raw: bool,
}

mod express;
mod wait;
pub use express::riding;

/// The pipe toward `side`.
fn toward(side: Side) -> Direction {
    side.other().sending()
}

struct Connection {
    id: u32,
    log: EventLog,
    to_server: Pipe,
    to_client: Pipe,
    client: Leg,
    server: Leg,
    /// A destination refused a write (per direction), taken after flushing.
    broken: [bool; 2],
    /// A leg holds output of its own (TLS records) at times.
    buffered: bool,
    reset_seen: bool,
}

impl Connection {
    fn pipe(&mut self, d: Direction) -> &mut Pipe {
        match d {
            Direction::ToServer => &mut self.to_server,
            Direction::ToClient => &mut self.to_client,
        }
    }

    fn leg(&mut self, side: Side) -> &mut Leg {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// The pipe in `d`, its source and destination legs, and the log.
    fn parts(&mut self, d: Direction) -> (&mut Pipe, &mut Leg, &mut Leg, &EventLog) {
        match d {
            Direction::ToServer => (
                &mut self.to_server,
                &mut self.client,
                &mut self.server,
                &self.log,
            ),
            Direction::ToClient => (
                &mut self.to_client,
                &mut self.server,
                &mut self.client,
                &self.log,
            ),
        }
    }

    fn emit(&self, kind: EventKind) {
        self.log.emit(Some(self.id), kind);
    }

    /// Write what is due in `d` at `now` and do what the pipe asks.
    fn flush(&mut self, d: Direction, now: Instant) {
        loop {
            let (pipe, _, dst, log) = self.parts(d);
            let Some(dst) = dst.as_mut() else {
                return;
            };
            match pipe.next(now) {
                Next::Idle => return,
                Next::Write(bytes) => {
                    let len = bytes.len();
                    match write_some(dst, bytes) {
                        Ok(n) => {
                            pipe.wrote(n, now);
                            if n < len {
                                return; // the socket is full: wait for writable
                            }
                        }
                        Err(e) => {
                            pipe.write_failed(0, &e, log);
                            self.broken[d.index()] = true;
                            return;
                        }
                    }
                }
                Next::Fin => {
                    let to = d.to_side();
                    if let Some(s) = self.leg(to) {
                        let _ = s.shutdown_write();
                        self.emit(EventKind::FinSent { to });
                    }
                    return;
                }
                Next::Rst => {
                    self.reset_seen = true;
                    self.reset_toward(d.to_side(), "rst");
                    // The source reset: it is gone too.
                    let from = d.from_side();
                    self.leg(from).take();
                    self.mark_gone(from, "rst");
                    return;
                }
                Next::Status(status) => self.on_status(status),
                Next::Cut(fault, how) => {
                    self.cut(&fault, how);
                    return;
                }
            }
        }
    }

    /// The response head reached the client.
    fn on_status(&mut self, status: u16) {
        if status == 101 && self.to_server.src_ended() {
            // The client gave this attempt up (FIN or RST) before the
            // answer reached it, e.g. a handshake timeout during a
            // partition: from its side the connection never opened.
            self.emit(EventKind::Note {
                text: "101 reached a client that had already given this connection up".into(),
            });
        } else if status == 101 {
            self.emit(EventKind::Open);
            self.to_server.opened();
            self.to_client.opened();
        } else {
            self.to_server.stop_scanning();
            self.emit(EventKind::Rejected { status });
        }
    }

    /// A destination that refused a write reset the connection: its RST
    /// travels the other way like any RST it sends (and is held where that
    /// direction is held).
    fn propagate_broken(&mut self, d: Direction) {
        if !std::mem::take(&mut self.broken[d.index()]) {
            return;
        }
        let back = match d {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        };
        if !self.pipe(back).src_reset() {
            self.reset_seen = true;
            let (pipe, _, _, log) = self.parts(back);
            pipe.on_src_end(true, Instant::now(), log);
        }
    }

    /// Read a chunk from `d`'s source and forward or hand it on. Whether
    /// nothing changed but the scanner's place: the chunk was forwarded
    /// whole, or there was nothing to read (a quiet connection then stays
    /// quiet without asking again).
    fn on_readable(&mut self, d: Direction, r: io::Result<()>, now: Instant) -> bool {
        if r.is_err() {
            // The socket itself failed: treat it as a reset by its peer.
            self.reset_seen = true;
            let (pipe, _, _, log) = self.parts(d);
            if !pipe.src_ended() {
                pipe.on_src_end(true, now, log);
            }
            return false;
        }
        let (pipe, src, dst, log) = self.parts(d);
        let Some(src) = src.as_mut() else {
            return false;
        };
        let mut reset = false;
        let mut broken = false;
        let plain = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.is_empty() {
                scratch.resize(READ_CHUNK, 0);
            }
            match src.try_read(&mut scratch[..]) {
                Ok(0) => pipe.on_src_end(false, now, log),
                Ok(n) => {
                    let Some(bytes) = pipe.on_chunk(&scratch[..n], now, log) else {
                        return false;
                    };
                    let Some(dst) = dst.as_mut() else {
                        pipe.unsent(bytes, now, log);
                        return false;
                    };
                    match write_some(dst, bytes) {
                        Ok(k) if k < bytes.len() => pipe.unsent(&bytes[k..], now, log),
                        Ok(_) => return true,
                        Err(e) => {
                            pipe.write_failed(bytes.len() as u64, &e, log);
                            broken = true;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    // ECONNRESET (or another hard error): the source is gone.
                    reset = true;
                    pipe.on_src_end(true, now, log);
                }
            }
            false
        });
        self.reset_seen |= reset;
        self.broken[d.index()] |= broken;
        plain
    }

    /// A fault cuts the connection both ways.
    fn cut(&mut self, fault: &str, how: CutHow) {
        for side in [Side::Client, Side::Server] {
            match how {
                CutHow::Reset => self.inject_rst(fault, side),
                CutHow::Fin => {
                    self.emit(EventKind::Injected {
                        fault: fault.to_string(),
                        to: side,
                        what: "fin".into(),
                    });
                    self.fin_now(side, fault);
                }
            }
        }
    }

    /// A fault's RST toward `to`: logged as injected, then sent.
    fn inject_rst(&mut self, fault: &str, to: Side) {
        self.reset_seen = true;
        self.emit(EventKind::Injected {
            fault: fault.to_string(),
            to,
            what: "rst".into(),
        });
        self.reset_toward(to, fault);
    }

    /// RST toward `to`, now.
    fn reset_toward(&mut self, to: Side, why: &str) {
        if let Some(s) = self.leg(to).take() {
            s.reset();
            self.emit(EventKind::RstSent { to });
        }
        self.mark_gone(to, why);
    }

    /// FIN toward `to`, now (queued output toward it is discarded, logged).
    fn fin_now(&mut self, to: Side, why: &str) {
        let (pipe, _, dst, log) = self.parts(toward(to));
        if pipe.close_dst(why, log) {
            if let Some(s) = dst.as_mut() {
                let _ = s.shutdown_write();
                self.emit(EventKind::FinSent { to });
            }
        }
    }

    /// A side's leg is gone: nothing more is read from it or written to it.
    fn mark_gone(&mut self, side: Side, why: &str) {
        self.pipe(side.sending()).source_gone();
        let (pipe, _, _, log) = self.parts(toward(side));
        pipe.close_dst(why, log);
    }

    fn on_cmd(&mut self, cmd: ConnCmd, now: Instant) {
        match cmd {
            ConnCmd::AddStage { fault, dir, stage } => self.pipe(dir).add_stage(fault, stage),
            ConnCmd::RemoveFault { fault } => {
                for d in Direction::BOTH {
                    let (pipe, _, _, log) = self.parts(d);
                    if pipe.remove_fault(&fault, now, log) == Ended::Reset {
                        self.reset_seen = true;
                        for side in [Side::Client, Side::Server] {
                            self.inject_rst(&fault, side);
                        }
                        return;
                    }
                }
            }
            ConnCmd::Act { fault, action } => {
                let (to, what) = match &action {
                    Action::Fin(to) => (*to, "fin".to_string()),
                    Action::Reset(to) => return self.inject_rst(&fault, *to),
                    Action::Inject { to, what, .. } => (*to, what.clone()),
                };
                self.emit(EventKind::Injected {
                    fault: fault.to_string(),
                    to,
                    what,
                });
                let (pipe, _, _, log) = self.parts(toward(to));
                match action {
                    Action::Inject { bytes, .. } => pipe.inject(bytes, now, log),
                    _ => pipe.fin_at_boundary(now, log),
                }
            }
        }
    }

    fn finished(&self) -> bool {
        self.to_server.finished() && self.to_client.finished()
    }

    /// The relay stops: close, logged.
    fn stop(&mut self) {
        self.close("shutdown");
        self.emit(EventKind::Closed {
            how: Ending::Shutdown,
        });
    }

    /// Drop what is queued (logged) and close both legs.
    fn close(&mut self, why: &str) {
        self.to_server.discard(why, &self.log);
        self.to_client.discard(why, &self.log);
        self.client.take();
        self.server.take();
    }
}

/// The connection `c` describes, its stages on, boxed (a quiet connection
/// moves to the express lane and back); and the request head with what
/// followed it, still to send.
fn connection(c: Conn) -> (Box<Connection>, Vec<u8>, Vec<u8>) {
    let rng = |d| crate::faults::pipe_rng(c.seed, c.id, d);
    let buffered = c.client.buffers() || c.server.buffers();
    let mut conn = Box::new(Connection {
        buffered,
        id: c.id,
        log: c.log,
        to_server: Pipe::new(Direction::ToServer, c.id, rng(Direction::ToServer)),
        to_client: Pipe::new(Direction::ToClient, c.id, rng(Direction::ToClient)),
        client: Some(c.client),
        server: Some(c.server),
        broken: [false; 2],
        reset_seen: false,
    });
    let [to_server, to_client] = c.marks;
    if let Some(m) = to_server {
        conn.to_server.set_mark(m, Some(c.raw_head));
    }
    if let Some(m) = to_client {
        conn.to_client.set_mark(m, None);
    }
    for (name, dir, stage) in c.initial {
        conn.pipe(dir).add_stage(name, stage);
    }
    if c.raw {
        conn.to_server.stop_scanning();
        conn.to_client.stop_scanning();
    }
    (conn, c.head, c.rest)
}

/// Run a connection until both directions are finished or the run stops
/// (the relay drops the sender of its inbox).
pub async fn run(c: Conn, mut cmds: inbox::Receiver<Box<ConnCmd>>) {
    let (mut conn, head, rest) = connection(c);
    // One clock reading per wake-up: everything done before the next await
    // happens "now".
    let mut now = Instant::now();
    conn.to_server.start(&head, &rest, now, &conn.log);
    // One timer, re-armed only when the due time changes.
    let sleep = tokio::time::sleep_until(now.into());
    tokio::pin!(sleep);
    let mut armed = None;
    // Each leg's readiness waits with a waker of its own (`relay::wake`).
    let mut legs = None;
    loop {
        let quiet = conn.quiet();
        if !quiet && conn.turn(now) {
            break;
        }
        // Only forwarding (data may wait for a full destination): the
        // express lane drives it until something else is needed.
        if let Some(lane) = express::lane(conn.id).filter(|_| conn.rideable()) {
            let Some((back, woke)) = express::ride(conn, lane, &mut cmds).await else {
                return; // the lane stopped with it: its legs closed there
            };
            conn = back;
            legs = None; // the legs' reactor registrations are new
            now = Instant::now();
            match woke {
                Some(Woke::Cmd(cmd)) => conn.on_cmd(*cmd, now),
                Some(Woke::Stop) => return conn.stop(),
                _ => {}
            }
            continue;
        }
        let timer = if quiet { None } else { conn.next_timer() };
        if timer != armed {
            if let Some(t) = timer {
                sleep.as_mut().reset(t.into());
            }
            armed = timer;
        }
        let woke = std::future::poll_fn(|cx| {
            let fired = armed.is_some() && sleep.as_mut().poll(cx).is_ready();
            let legs = legs.get_or_insert_with(|| LegWakers::new(cx.waker()));
            legs.follow(cx.waker());
            match quiet {
                true => conn.poll_quiet(cx, &mut cmds, legs),
                false => conn.poll_wake(cx, &mut cmds, legs, fired, Some(now)),
            }
        })
        .await;
        now = Instant::now();
        match woke {
            Woke::Cmd(cmd) => conn.on_cmd(*cmd, now),
            Woke::Readable(d, r) => {
                conn.on_readable(d, r, now);
            }
            Woke::Other => {}
            Woke::Stop => return conn.stop(),
        }
    }
    conn.to_server.discard("closed", &conn.log);
    conn.to_client.discard("closed", &conn.log);
    conn.client.take();
    conn.server.take();
    let how = if conn.reset_seen {
        Ending::Reset
    } else {
        Ending::Fin
    };
    conn.emit(EventKind::Closed { how });
}
