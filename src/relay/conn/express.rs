//! The express lane: quiet connections relayed by threads of their own,
//! outside the async runtime.
//!
//! Why: on the path of a small frame, the runtime's own work (waking the
//! task, polling it, parking with the timer driver) costs more than
//! everything flatline does with the frame. A bare epoll loop relaying
//! 64 B round trips added 1.0 µs less per round trip than tokio's
//! `copy_bidirectional` relay in the same bench run (`docs/benchmarks.md`).
//!
//! How: a connection whose pipes only forward and whose legs are plain TCP
//! (no TLS, no `--netns` observer) hands itself to a lane (one per CPU the
//! process may use). Its legs leave the runtime's reactor
//! ([`AnyTransport::park`]); the lane waits on them edge-triggered with its
//! own `epoll` and runs the same [`Connection`] code the task would:
//! `on_readable` reads, scans, counts and forwards, `flush` writes what a
//! full destination left queued. Anything else sends the connection back
//! to its task, which puts the legs back in the reactor and carries on: a
//! command (a fault starting: the task asks the lane for its connection
//! first), the relay stopping, an end of stream, a reset, a failed write.

use super::{ConnCmd, Connection, Woke};
use crate::events::{Direction, Ending, EventKind, Side};
use crate::relay::inbox;
use crate::relay::transport::{AnyTransport, LastRead, ParkedLeg};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The lane's own wake-up (a connection or a request arrived).
const WAKE: Token = Token(usize::MAX);

/// Reads and writes one connection may do per turn before the lane serves
/// the others (what is left is resumed without waiting for an edge).
const ROUNDS: usize = 16;

/// A parked connection, its way back, and a watch on its inbox.
struct Ride {
    key: u64,
    conn: Box<Connection>,
    back: oneshot::Sender<Box<Connection>>,
    cmds: inbox::Watch<Box<ConnCmd>>,
}

enum Msg {
    Park(Ride),
    /// Give connection `key` back to its task.
    Reclaim(u64),
}

/// One lane: its thread is reached through a channel and a waker.
pub(super) struct Lane {
    tx: mpsc::Sender<Msg>,
    waker: Waker,
    alive: AtomicBool,
}

static LANES: OnceLock<Vec<Lane>> = OnceLock::new();
static KEYS: AtomicU64 = AtomicU64::new(0);
static RIDING: AtomicUsize = AtomicUsize::new(0);

/// Connections the express lanes drive right now, over every relay of the
/// process.
pub fn riding() -> usize {
    RIDING.load(Ordering::Acquire)
}

/// The lane for connection `id`, if lanes run: not when
/// `FLATLINE_NO_EXPRESS` is set (every connection then stays with its task),
/// nor once its lane stopped.
pub(super) fn lane(id: u32) -> Option<&'static Lane> {
    let lanes = LANES.get_or_init(|| {
        if std::env::var_os("FLATLINE_NO_EXPRESS").is_some() {
            return Vec::new();
        }
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).filter_map(|i| start(i).ok()).collect()
    });
    match lanes.len() {
        0 => None,
        n => Some(&lanes[id as usize % n]).filter(|l| l.alive.load(Ordering::Acquire)),
    }
}

fn start(i: usize) -> std::io::Result<Lane> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKE)?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("flatline-lane-{i}"))
        .spawn(move || run(poll, rx, i))?;
    Ok(Lane {
        tx,
        waker,
        alive: AtomicBool::new(true),
    })
}

/// Hand `conn` to `lane` until the lane gives it back or a command (or the
/// relay's stop) comes for it; its legs are then back in the reactor.
/// Returns the connection and what came, or `None` if the lane lost it
/// (it failed while driving it: logged, and its legs closed there).
pub(super) async fn ride(
    mut conn: Box<Connection>,
    lane: &Lane,
    cmds: &mut inbox::Receiver<Box<ConnCmd>>,
) -> Option<(Box<Connection>, Option<Woke>)> {
    if !conn.park_legs() {
        conn.unpark_legs();
        return Some((conn, None));
    }
    let key = KEYS.fetch_add(1, Ordering::Relaxed);
    let (tx, mut back) = oneshot::channel();
    let ride = Ride {
        key,
        conn,
        back: tx,
        cmds: cmds.watch(),
    };
    let (log, id) = (ride.conn.log.clone(), ride.conn.id);
    if let Err(mpsc::SendError(Msg::Park(mut r))) = lane.tx.send(Msg::Park(ride)) {
        // The lane's thread is gone: no connection rides it any more.
        lane.alive.store(false, Ordering::Release);
        r.conn.unpark_legs();
        return Some((r.conn, None));
    }
    let _ = lane.waker.wake();
    let mut ticket = Ticket {
        lane,
        key,
        out: true,
    };
    // A command (or the close) is left in the inbox until the connection
    // is back: the lane sees it waiting and reads no more meanwhile.
    let mut recalled = false;
    let back = std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(r) = std::pin::Pin::new(&mut back).poll(cx) {
            return std::task::Poll::Ready(r);
        }
        if !recalled && cmds.poll_waiting(cx).is_ready() {
            recalled = true;
            ticket.reclaim();
        }
        std::task::Poll::Pending
    })
    .await;
    ticket.out = false;
    let Ok(mut conn) = back else {
        log.emit(
            Some(id),
            EventKind::Note {
                text: "the relay's express lane failed while driving this connection".into(),
            },
        );
        log.emit(
            Some(id),
            EventKind::Closed {
                how: Ending::Failed,
            },
        );
        return None;
    };
    conn.unpark_legs();
    let woke = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match cmds.poll_recv(cx) {
            std::task::Poll::Ready(cmd) => Some(cmd.map_or(Woke::Stop, Woke::Cmd)),
            std::task::Poll::Pending => None,
        })
    })
    .await;
    Some((conn, woke))
}

/// A parked connection's claim: if its task is dropped while the
/// connection rides (the runtime shut down), the lane gives it back to
/// nobody, and it closes there instead of staying open in the lane.
struct Ticket<'a> {
    lane: &'a Lane,
    key: u64,
    out: bool,
}

impl Ticket<'_> {
    fn reclaim(&self) {
        let _ = self.lane.tx.send(Msg::Reclaim(self.key));
        let _ = self.lane.waker.wake();
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.out {
            self.reclaim();
        }
    }
}

impl Connection {
    /// Whether the lane can drive this connection: both pipes only forward
    /// (data may wait for a full destination), both legs plain TCP and
    /// usable.
    pub(super) fn rideable(&self) -> bool {
        let plain = |l: &Option<AnyTransport>| {
            matches!(l, Some(AnyTransport::Tcp(_) | AnyTransport::Parked(_)))
        };
        self.to_server.plain()
            && self.to_client.plain()
            && self.broken == [false; 2]
            && plain(&self.client)
            && plain(&self.server)
    }

    /// Take both legs out of the reactor; whether both are parked.
    fn park_legs(&mut self) -> bool {
        for side in [Side::Client, Side::Server] {
            let Some(leg) = self.leg(side).take() else {
                return false;
            };
            match leg.park() {
                Ok(l) => *self.leg(side) = Some(l),
                Err(_) => {
                    self.reset_seen = true;
                    self.mark_gone(side, "error");
                    return false;
                }
            }
        }
        true
    }

    /// Put parked legs back in the reactor.
    fn unpark_legs(&mut self) {
        for side in [Side::Client, Side::Server] {
            let Some(leg) = self.leg(side).take() else {
                continue;
            };
            match leg.unpark() {
                Ok(l) => *self.leg(side) = Some(l),
                Err(_) => {
                    self.reset_seen = true;
                    self.mark_gone(side, "error");
                }
            }
        }
    }
}

/// A parked connection, and what its legs' last edges said.
struct Entry {
    key: u64,
    /// Tells this entry's edges from those of a slot's earlier occupant.
    gen: u32,
    conn: Box<Connection>,
    back: oneshot::Sender<Box<Connection>>,
    /// A command for it waits: it goes back before reading more (what
    /// arrives after a fault starts is the fault's).
    cmds: inbox::Watch<Box<ConnCmd>>,
    /// Per side (client, server): may have data (or an end) to read.
    readable: [bool; 2],
    /// Per side: may take more output.
    writable: [bool; 2],
    /// Per side: the peer's end (or an error) was signalled: reading goes
    /// on until it is read, short reads or not (no edge will come again).
    ended: [bool; 2],
}

/// What a turn of an entry ended with.
enum Turn {
    /// Waiting for edges.
    Wait,
    /// More to do: resume before waiting.
    Again,
    /// The task must take over.
    Back,
    /// The turn failed (a panic): the connection is dropped.
    Lost,
}

fn side_index(s: Side) -> usize {
    s.sending().index()
}

/// A leg's token: slot, side, and the slot's generation (an edge of a
/// connection given back may still be in the batch that parks the next).
fn token(idx: usize, side: usize, gen: u32) -> Token {
    Token((gen as usize) << 32 | idx << 1 | side)
}

/// The parked connections of one lane.
struct Parked {
    /// Bumped for each connection parked.
    gen: u32,
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    keys: HashMap<u64, usize>,
}

fn run(mut poll: Poll, rx: mpsc::Receiver<Msg>, i: usize) {
    let mut events = Events::with_capacity(256);
    let mut p = Parked {
        gen: 0,
        slots: Vec::new(),
        free: Vec::new(),
        keys: HashMap::new(),
    };
    let mut again: Vec<usize> = Vec::new();
    loop {
        let timeout = (!again.is_empty()).then_some(Duration::ZERO);
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // Not expected: give every connection back and stop taking more.
            if let Some(l) = LANES.get().and_then(|l| l.get(i)) {
                l.alive.store(false, Ordering::Release);
            }
            for idx in 0..p.slots.len() {
                p.give_back(poll.registry(), idx);
            }
            return;
        }
        let mut todo = std::mem::take(&mut again);
        for ev in events.iter() {
            if ev.token() == WAKE {
                p.receive(poll.registry(), &rx, &mut todo);
                continue;
            }
            let t = ev.token().0;
            let (idx, side, gen) = ((t & 0xffff_ffff) >> 1, t & 1, (t >> 32) as u32);
            let Some(e) = p.slots.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if e.gen != gen {
                continue;
            }
            if ev.is_read_closed() || ev.is_error() {
                e.ended[side] = true;
            }
            if ev.is_readable() || e.ended[side] {
                e.readable[side] = true;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                e.writable[side] = true;
            }
            todo.push(idx);
        }
        todo.sort_unstable();
        todo.dedup();
        for idx in todo {
            let Some(e) = p.slots.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            // A connection whose turn fails is dropped (its task logs the
            // loss); the lane goes on with the others.
            let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.turn()));
            match turn.unwrap_or(Turn::Lost) {
                Turn::Lost => drop(p.take(poll.registry(), idx)),
                Turn::Wait => {}
                Turn::Again => again.push(idx),
                Turn::Back => p.give_back(poll.registry(), idx),
            }
        }
    }
}

impl Parked {
    /// New connections, and requests to give one back.
    fn receive(&mut self, reg: &Registry, rx: &mpsc::Receiver<Msg>, todo: &mut Vec<usize>) {
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Park(Ride {
                    key,
                    conn,
                    back,
                    cmds,
                }) => {
                    let idx = self.free.pop().unwrap_or_else(|| {
                        self.slots.push(None);
                        self.slots.len() - 1
                    });
                    self.gen = self.gen.wrapping_add(1);
                    let e = Entry {
                        key,
                        gen: self.gen,
                        conn,
                        back,
                        cmds,
                        readable: [true; 2],
                        writable: [true; 2],
                        ended: [false; 2],
                    };
                    let registered = register(reg, idx, &e);
                    self.slots[idx] = Some(e);
                    self.keys.insert(key, idx);
                    RIDING.fetch_add(1, Ordering::AcqRel);
                    match registered {
                        Ok(()) => todo.push(idx),
                        Err(_) => self.give_back(reg, idx),
                    }
                }
                Msg::Reclaim(key) => {
                    if let Some(&idx) = self.keys.get(&key) {
                        self.give_back(reg, idx);
                    }
                }
            }
        }
    }

    /// Hand slot `idx`'s connection back to its task (if the task is gone,
    /// the connection closes here).
    fn give_back(&mut self, reg: &Registry, idx: usize) {
        if let Some(e) = self.take(reg, idx) {
            let _ = e.back.send(e.conn);
        }
    }

    /// Take slot `idx` out, its legs out of the lane's epoll (dropped, the
    /// connection closes: its task sees it lost).
    fn take(&mut self, reg: &Registry, idx: usize) -> Option<Entry> {
        let e = self.slots.get_mut(idx).and_then(Option::take)?;
        self.keys.remove(&e.key);
        self.free.push(idx);
        RIDING.fetch_sub(1, Ordering::AcqRel);
        for leg in [&e.conn.client, &e.conn.server] {
            if let Some(AnyTransport::Parked(l)) = leg {
                let _ = reg.deregister(&mut SourceFd(&l.sock.as_raw_fd()));
            }
        }
        Some(e)
    }
}

/// Wait for both legs of slot `idx`, edge-triggered.
fn register(reg: &Registry, idx: usize, e: &Entry) -> std::io::Result<()> {
    for (side, leg) in [&e.conn.client, &e.conn.server].into_iter().enumerate() {
        if let Some(AnyTransport::Parked(l)) = leg {
            reg.register(
                &mut SourceFd(&l.sock.as_raw_fd()),
                token(idx, side, e.gen),
                Interest::READABLE | Interest::WRITABLE,
            )?;
        }
    }
    Ok(())
}

impl Entry {
    /// Read, forward and write what the edges allow.
    fn turn(&mut self) -> Turn {
        let now = Instant::now();
        for _ in 0..ROUNDS {
            // Each direction writes what waits, then reads (a write that
            // empties the queue lets its source be read in the same pass):
            // another pass is needed only while a source may hold more.
            let mut more = false;
            for d in Direction::BOTH {
                let (src, dst) = (side_index(d.from_side()), side_index(d.to_side()));
                if self.writable[dst] && self.conn.pipe(d).wants_write(now) {
                    self.conn.flush(d, now);
                }
                if self.readable[src] && self.conn.pipe(d).wants_read() {
                    if self.cmds.waiting() {
                        return Turn::Back;
                    }
                    self.conn.on_readable(d, Ok(()), now);
                    self.readable[src] = match self.took(d.from_side(), |l| &mut l.read) {
                        LastRead::Full => true,
                        LastRead::Short => self.ended[src],
                        LastRead::Empty => false,
                    };
                    more |= self.readable[src];
                    // An end or a reset goes to the task at once, as the
                    // task itself would turn to it before reading more.
                    if !self.conn.rideable() {
                        return Turn::Back;
                    }
                }
                if self.took(d.to_side(), |l| &mut l.blocked) {
                    self.writable[dst] = false;
                }
            }
            if !self.conn.rideable() {
                return Turn::Back;
            }
            if !more {
                return Turn::Wait;
            }
        }
        Turn::Again
    }

    /// Take what a leg's last call noted (leaving the default).
    fn took<T: Default>(&mut self, side: Side, note: impl FnOnce(&mut ParkedLeg) -> &mut T) -> T {
        match self.conn.leg(side) {
            Some(AnyTransport::Parked(l)) => std::mem::take(note(l)),
            _ => T::default(),
        }
    }
}
