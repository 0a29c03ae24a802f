//! The connection's socket side: what a relayed connection needs from each
//! leg. [`Transport`] is the seam for other transports (`tls::TlsStream`
//! implements it over its TCP socket on either leg); [`TcpStream`]
//! implements it directly.
//!
//! Every call is non-blocking: readiness is polled (so both directions are
//! driven from one task), reads and writes return `WouldBlock` when they
//! would wait. A transport whose own buffering can hold readable bytes the
//! socket no longer signals (TLS records) must report itself read-ready
//! while it has them.

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// One leg of a relayed connection, as the connection drives it.
pub trait Transport: Send + Sync {
    /// Ready when a read may make progress (data, EOF or an error).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when a write may make progress.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Read what is there without waiting: `Ok(0)` is EOF (FIN), `WouldBlock`
    /// nothing now. A read shorter than `buf` may clear the read readiness
    /// (the source is drained).
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Write what fits now without waiting (`WouldBlock`: nothing fits).
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Shut down the write half: the peer sees FIN (TLS: after close_notify).
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// Close abortively: the peer sees RST.
    fn reset(self: Box<Self>);
    /// Output the transport accepted but could not write yet (TLS records,
    /// a FIN behind them) waits for the socket: the connection then waits
    /// for write readiness and calls [`Transport::flush`].
    fn wants_flush(&self) -> bool {
        false
    }
    /// Whether it ever holds output of its own (TLS does): if not,
    /// [`Transport::wants_flush`] is always false and is not asked.
    fn buffers(&self) -> bool {
        false
    }
    /// Write what waits, without waiting (`WouldBlock`: call again when
    /// writable).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }

    /// A short read clears the socket's read readiness (as tokio's own
    /// `poll_read` does): the socket is drained, so the next loop waits for
    /// epoll instead of paying a `recv` that returns `EAGAIN`. That saves one
    /// syscall per chunk, which is most of a small frame's cost.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        let mut got = None;
        // `recv` itself: tokio's `try_read` would check the readiness again.
        let sock = socket2::SockRef::from(&*self);
        let r = self.try_io(tokio::io::Interest::READABLE, || {
            let n = std::io::Read::read(&mut &*sock, buf)?;
            got = Some(n);
            if n > 0 && n < len {
                // Makes try_io clear the readiness it saw; the bytes are in `got`.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match (r, got) {
            (_, Some(n)) => Ok(n),
            (r, None) => r,
        }
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        socket2::SockRef::from(&*self).shutdown(std::net::Shutdown::Write)
    }

    fn reset(self: Box<Self>) {
        reset_socket(*self);
    }
}

/// A leg as a connection holds it: plain TCP inline (no box, calls
/// resolved at compile time, on the path every relayed chunk takes), any
/// other transport behind the trait.
pub enum AnyTransport {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS, or another transport.
    Other(Box<dyn Transport>),
    /// Plain TCP out of the runtime's reactor, in the express lane.
    Parked(ParkedLeg),
}

impl AnyTransport {
    /// Close abortively: the peer sees RST.
    pub fn reset(self) {
        match self {
            AnyTransport::Tcp(s) => reset_socket(s),
            AnyTransport::Other(t) => t.reset(),
            AnyTransport::Parked(l) => {
                let _ = socket2::SockRef::from(&l.sock).set_linger(Some(Duration::ZERO));
            }
        }
    }

    /// Plain TCP, taken out of the runtime's reactor for the express lane;
    /// other transports as they are.
    pub fn park(self) -> io::Result<AnyTransport> {
        match self {
            AnyTransport::Tcp(s) => Ok(AnyTransport::Parked(ParkedLeg {
                sock: s.into_std()?,
                read: LastRead::Full,
                blocked: false,
            })),
            t => Ok(t),
        }
    }

    /// Back into the runtime's reactor (in a runtime's context).
    pub fn unpark(self) -> io::Result<AnyTransport> {
        match self {
            AnyTransport::Parked(l) => Ok(AnyTransport::Tcp(TcpStream::from_std(l.sock)?)),
            t => Ok(t),
        }
    }
}

/// A plain TCP leg the express lane drives (`conn::express`): non-blocking
/// calls on the socket itself, noting what they said about the edge-triggered
/// readiness the lane waits on.
pub struct ParkedLeg {
    pub(super) sock: std::net::TcpStream,
    /// What the last read said.
    pub(super) read: LastRead,
    /// A write would block: nothing more fits until the next writable edge.
    pub(super) blocked: bool,
}

/// What a parked leg's last read said about its edge-triggered readiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LastRead {
    /// It filled the buffer: more may wait.
    #[default]
    Full,
    /// It was short (or the end): drained until the next readable edge,
    /// unless the peer's end is still to be read.
    Short,
    /// It would block: the edge said more than there was.
    Empty,
}

impl Transport for ParkedLeg {
    /// Never asked: the lane waits for the socket, and the leg is unparked
    /// before its connection polls again.
    fn poll_read_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::other("a parked leg polled")))
    }

    fn poll_write_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::other("a parked leg polled")))
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = std::io::Read::read(&mut &self.sock, buf);
        self.read = match &r {
            Ok(n) if *n == buf.len() => LastRead::Full,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => LastRead::Empty,
            _ => LastRead::Short,
        };
        r
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = std::io::Write::write(&mut &self.sock, buf);
        self.blocked = matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        r
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.sock.shutdown(std::net::Shutdown::Write)
    }

    fn reset(self: Box<Self>) {
        AnyTransport::Parked(*self).reset();
    }
}

/// Forward a [`Transport`] call to the leg's transport.
macro_rules! either {
    ($self:expr, $f:ident($($a:expr),*)) => {
        match $self {
            AnyTransport::Tcp(t) => Transport::$f(t, $($a),*),
            AnyTransport::Other(t) => t.$f($($a),*),
            AnyTransport::Parked(t) => Transport::$f(t, $($a),*),
        }
    };
}

impl Transport for AnyTransport {
    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, poll_read_ready(cx))
    }

    #[inline]
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, poll_write_ready(cx))
    }

    #[inline]
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        either!(self, try_read(buf))
    }

    #[inline]
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        either!(self, try_write(buf))
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        either!(self, shutdown_write())
    }

    fn reset(self: Box<Self>) {
        (*self).reset()
    }

    fn wants_flush(&self) -> bool {
        either!(self, wants_flush())
    }

    fn buffers(&self) -> bool {
        either!(self, buffers())
    }

    fn flush(&mut self) -> io::Result<()> {
        either!(self, flush())
    }
}

/// Close a socket with RST (SO_LINGER 0, then close).
pub fn reset_socket(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

/// Write as much as `dst` takes now, without waiting. `Err` means the
/// destination is broken (reset by its peer, or gone): nothing more can be
/// delivered to it.
pub fn write_some(dst: &mut impl Transport, bytes: &[u8]) -> io::Result<usize> {
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
