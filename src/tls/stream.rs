//! The relay's transport: a TCP socket, or TLS over a TCP socket, driven
//! without blocking (read what is there, write what fits, wait for
//! readiness). TLS is a rustls `Connection` fed with `read_tls`/`write_tls`
//! on the socket, so the socket underneath stays a real TCP socket: a FIN is
//! `shutdown(Write)` (after the `close_notify` alert, see
//! [`Stream::shutdown_write`]) and an RST is `SO_LINGER 0` plus close.
//!
//! Every method takes `&self` (the TLS state sits behind an uncontended
//! mutex), so the relay can hold a socket for one direction's reads while
//! the other direction writes to it, as it does with a plain socket.

use std::io::{self, Read, Write};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// TLS over a TCP socket, after the handshake.
pub struct TlsStream {
    tcp: TcpStream,
    st: Mutex<TlsState>,
}

struct TlsState {
    conn: rustls::Connection,
    /// Plaintext (or the peer's close_notify) is waiting in rustls: the
    /// socket's readiness says nothing about it.
    buffered: bool,
    /// `shutdown(Write)` is due once the queued records are written.
    fin_pending: bool,
}

/// `std::io` adapters over tokio's non-blocking `try_read`/`try_write`.
struct TcpIo<'a>(&'a TcpStream);

impl Read for TcpIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for TcpIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsStream {
    /// Wrap a socket and a rustls connection whose handshake is complete.
    /// Plaintext rustls already holds (read ahead during the handshake) is
    /// read first.
    pub fn new(tcp: TcpStream, conn: impl Into<rustls::Connection>) -> TlsStream {
        let mut conn = conn.into();
        let buffered = has_buffered(&mut conn);
        TlsStream {
            tcp,
            st: Mutex::new(TlsState {
                conn,
                buffered,
                fin_pending: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TlsState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decrypted bytes: `Ok(0)` is the end of the stream (the peer's
    /// close_notify, or its TCP FIN without one), `WouldBlock` means wait
    /// for [`TlsStream::readable`]. A TLS error (a bad record, an alert) is
    /// `InvalidData`, after the alert rustls owes the peer was sent.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.lock();
        loop {
            match st.conn.reader().read(buf) {
                Ok(n) => {
                    st.buffered = has_buffered(&mut st.conn);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP FIN without close_notify: still the end of the stream.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            st.buffered = false;
            st.conn.read_tls(&mut TcpIo(&self.tcp))?;
            if let Err(e) = st.conn.process_new_packets() {
                let _ = flush_locked(&mut st, &self.tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // A key update or similar may want an answer.
            if st.conn.wants_write() {
                match flush_locked(&mut st, &self.tcp) {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                    _ => {}
                }
            }
        }
    }

    /// Encrypt and write as much of `buf` as fits now. Records rustls could
    /// not write yet stay queued ([`TlsStream::wants_flush`]).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.lock();
        flush_locked(&mut st, &self.tcp)?;
        let n = st.conn.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match flush_locked(&mut st, &self.tcp) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(n),
        }
    }

    /// Records (or a FIN) wait to be written.
    pub fn wants_flush(&self) -> bool {
        let st = self.lock();
        st.conn.wants_write() || st.fin_pending
    }

    /// Write queued records (then the pending FIN). `WouldBlock`: wait for
    /// writable and call again.
    pub fn flush(&self) -> io::Result<()> {
        flush_locked(&mut self.lock(), &self.tcp)
    }

    /// close_notify, then TCP FIN once every record before it is written.
    pub fn shutdown_write(&self) -> io::Result<()> {
        let mut st = self.lock();
        st.conn.send_close_notify();
        st.fin_pending = true;
        match flush_locked(&mut st, &self.tcp) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }

    /// Wait until [`TlsStream::try_read`] may make progress.
    pub async fn readable(&self) -> io::Result<()> {
        if self.lock().buffered {
            return Ok(());
        }
        self.tcp.readable().await
    }

    /// The socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The socket underneath (queued records are dropped, as an RST drops a
    /// socket's send buffer).
    pub fn into_tcp(self) -> TcpStream {
        self.tcp
    }
}

fn has_buffered(conn: &mut rustls::Connection) -> bool {
    match conn.process_new_packets() {
        Ok(s) => s.plaintext_bytes_to_read() > 0 || s.peer_has_closed(),
        // Let the next read report it.
        Err(_) => true,
    }
}

fn flush_locked(st: &mut TlsState, tcp: &TcpStream) -> io::Result<()> {
    while st.conn.wants_write() {
        if st.conn.write_tls(&mut TcpIo(tcp))? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    if st.fin_pending {
        st.fin_pending = false;
        socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Write)?;
    }
    Ok(())
}

/// A relayed socket: plain TCP or TLS over TCP.
pub enum Stream {
    /// `ws://`.
    Tcp(TcpStream),
    /// `wss://`, handshake done.
    Tls(Box<TlsStream>),
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Tcp(s)
    }
}

impl Stream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            Stream::Tls(t) => t.tcp(),
        }
    }

    /// Whether this is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Read what is there (`Ok(0)`: end of stream; `WouldBlock`: nothing yet).
    ///
    /// Plain TCP: a short read clears the socket's read readiness (as
    /// tokio's own `poll_read` does): the socket is drained, so the next
    /// wait goes to epoll instead of paying a `recv` that returns `EAGAIN`.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let src = match self {
            Stream::Tcp(s) => s,
            Stream::Tls(t) => return t.try_read(buf),
        };
        let len = buf.len();
        let mut got = None;
        let r = src.try_io(tokio::io::Interest::READABLE, || {
            let n = src.try_read(buf)?;
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

    /// Write what fits now, without waiting.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write(buf),
            Stream::Tls(t) => t.try_write(buf),
        }
    }

    /// Wait until a read may make progress.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.readable().await,
            Stream::Tls(t) => t.readable().await,
        }
    }

    /// Wait until the socket takes more bytes.
    pub async fn writable(&self) -> io::Result<()> {
        self.tcp().writable().await
    }

    /// TLS records (or a FIN after them) wait for the socket.
    pub fn wants_flush(&self) -> bool {
        match self {
            Stream::Tcp(_) => false,
            Stream::Tls(t) => t.wants_flush(),
        }
    }

    /// Write what waits (see [`Stream::wants_flush`]).
    pub fn flush(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(_) => Ok(()),
            Stream::Tls(t) => t.flush(),
        }
    }

    /// FIN: `shutdown(Write)`; over TLS a close_notify alert first (the
    /// FIN follows as soon as the alert and every record before it are
    /// written).
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
            Stream::Tls(t) => t.shutdown_write(),
        }
    }

    /// RST: close with `SO_LINGER 0`. Over TLS nothing more is written (no
    /// alert): the peer sees a TCP reset, as from a network.
    pub fn reset(self) {
        let tcp = match self {
            Stream::Tcp(s) => s,
            Stream::Tls(t) => t.into_tcp(),
        };
        let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
        drop(tcp);
    }
}

/// The client's socket before the relay phase: plain, or TLS driven by
/// tokio-rustls while the request head is read (and errors answered).
pub enum AsyncStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncStream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            AsyncStream::Tcp(s) => s,
            AsyncStream::Tls(t) => t.get_ref().0,
        }
    }

    /// The relay-phase transport (plaintext rustls read ahead is kept).
    pub fn into_stream(self) -> Stream {
        match self {
            AsyncStream::Tcp(s) => Stream::Tcp(s),
            AsyncStream::Tls(t) => {
                let (tcp, conn) = t.into_inner();
                Stream::Tls(Box::new(TlsStream::new(tcp, conn)))
            }
        }
    }
}

impl AsyncRead for AsyncStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            AsyncStream::Tls(t) => std::pin::Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AsyncStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            AsyncStream::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            AsyncStream::Tls(t) => std::pin::Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            AsyncStream::Tls(t) => std::pin::Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            AsyncStream::Tls(t) => std::pin::Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}
