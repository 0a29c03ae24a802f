//! What a connection waits for, and the bookkeeping of a turn: whether it
//! is quiet (the fast path), what woke it ([`Woke`]), and the quiet path
//! that reads and forwards inside the wait.

use super::{ConnCmd, Connection, Leg};
use crate::events::Direction;
use crate::relay::inbox;
use crate::relay::transport::Transport;
use crate::relay::wake::LegWakers;
use std::io;
use std::task::{Context, Poll};
use std::time::Instant;

/// What woke the connection's loop.
pub(super) enum Woke {
    Cmd(Box<ConnCmd>),
    Readable(Direction, io::Result<()>),
    /// Writable, or the timer fired: the next turn does what is due.
    Other,
    /// The relay stops.
    Stop,
}

impl Connection {
    /// Both pipes only forward and both legs are plain: nothing to flush,
    /// release or inject, no timer.
    pub(super) fn quiet(&self) -> bool {
        let unflushed = |l: &Leg| l.as_ref().is_none_or(|l| l.wants_flush());
        self.to_server.quiet()
            && self.to_client.quiet()
            && self.broken == [false; 2]
            && self.client.is_some()
            && self.server.is_some()
            && !(self.buffered && (unflushed(&self.client) || unflushed(&self.server)))
    }

    /// A turn's bookkeeping: flush TLS records, run due injections, write
    /// what is due, pass on broken destinations. Whether both directions
    /// are finished.
    pub(super) fn turn(&mut self, now: Instant) -> bool {
        // TLS records (and a FIN behind them) the socket did not take earlier.
        for leg in [&mut self.client, &mut self.server].into_iter().flatten() {
            if leg.wants_flush() {
                let _ = leg.flush();
            }
        }
        for d in Direction::BOTH {
            let (pipe, _, _, log) = self.parts(d);
            pipe.tick(now, log);
            self.flush(d, now);
            self.propagate_broken(d);
        }
        self.finished()
    }

    pub(super) fn next_timer(&self) -> Option<Instant> {
        [self.to_server.next_timer(), self.to_client.next_timer()]
            .into_iter()
            .flatten()
            .min()
    }

    /// [`Connection::poll_wake`] for a quiet connection: a readable leg is
    /// read and forwarded right here, with no trip through the connection's
    /// loop, for as long as the connection stays quiet (the runtime's
    /// budget still bounds how long one poll lasts).
    pub(super) fn poll_quiet(
        &mut self,
        cx: &mut Context<'_>,
        cmds: &mut inbox::Receiver<Box<ConnCmd>>,
        legs: &mut LegWakers,
    ) -> Poll<Woke> {
        loop {
            match self.poll_wake(cx, cmds, legs, false, None) {
                Poll::Ready(Woke::Readable(d, r)) => {
                    // A chunk forwarded whole changes nothing `quiet` asks.
                    if !self.on_readable(d, r, Instant::now()) && !self.quiet() {
                        return Poll::Ready(Woke::Other);
                    }
                }
                woke => return woke,
            }
        }
    }

    /// Poll, in order: commands, the legs' readability (where the pipe
    /// reads; a leg whose own waker is registered and has not fired is
    /// known to be pending and not polled), writability (where output
    /// waits; not asked when `now` is `None`: the connection is quiet), the
    /// timer. (`&mut self`:
    /// the waiting future must hold a unique borrow to be `Send`, stages
    /// are not `Sync`.)
    pub(super) fn poll_wake(
        &mut self,
        cx: &mut Context<'_>,
        cmds: &mut inbox::Receiver<Box<ConnCmd>>,
        legs: &mut LegWakers,
        fired: bool,
        now: Option<Instant>,
    ) -> Poll<Woke> {
        if let Poll::Ready(cmd) = cmds.poll_recv(cx) {
            return Poll::Ready(cmd.map_or(Woke::Stop, Woke::Cmd));
        }
        let (ts, tc) = (&self.to_server, &self.to_client);
        let (client, server) = (self.client.as_ref(), self.server.as_ref());
        for (d, pipe, leg) in [
            (Direction::ToServer, ts, client),
            (Direction::ToClient, tc, server),
        ] {
            // A quiet pipe (no `now`) always reads.
            if let Some(l) = leg.filter(|_| now.is_none() || pipe.wants_read()) {
                if let Poll::Ready(r) = legs.poll(d.index(), |cx| l.poll_read_ready(cx)) {
                    return Poll::Ready(Woke::Readable(d, r));
                }
            }
        }
        let Some(now) = now else {
            return Poll::Pending;
        };
        for (pipe, leg) in [(ts, server), (tc, client)] {
            if let Some(l) = leg.filter(|l| pipe.wants_write(now) || l.wants_flush()) {
                if l.poll_write_ready(cx).is_ready() {
                    return Poll::Ready(Woke::Other);
                }
            }
        }
        if fired {
            return Poll::Ready(Woke::Other);
        }
        Poll::Pending
    }
}
