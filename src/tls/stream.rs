//! TLS as a relay transport: a rustls `Connection` fed with
//! `read_tls`/`write_tls` on a non-blocking TCP socket, implementing
//! `relay::transport::Transport`. The socket underneath stays a real TCP
//! socket: a FIN is `shutdown(Write)` (after the `close_notify` alert, see
//! [`TlsStream`]'s `shutdown_write`) and an RST is `SO_LINGER 0` plus close,
//! with no alert.

use crate::relay::transport::{reset_socket, AnyTransport, Transport};
use std::io::{self, Read, Write};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// TLS over a TCP socket, after the handshake.
pub struct TlsStream {
    tcp: TcpStream,
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
            conn,
            buffered,
            fin_pending: false,
        }
    }

    /// The socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn flush_records(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut TcpIo(&self.tcp))? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        if self.fin_pending {
            self.fin_pending = false;
            socket2::SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write)?;
        }
        Ok(())
    }
}

fn has_buffered(conn: &mut rustls::Connection) -> bool {
    match conn.process_new_packets() {
        Ok(s) => s.plaintext_bytes_to_read() > 0 || s.peer_has_closed(),
        // Let the next read report it.
        Err(_) => true,
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Transport for TlsStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buffered {
            return Poll::Ready(Ok(()));
        }
        self.tcp.poll_read_ready(cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp.poll_write_ready(cx)
    }

    /// Decrypted bytes: `Ok(0)` is the end of the stream (the peer's
    /// close_notify, or its TCP FIN without one). A TLS error (a bad record,
    /// an alert) is `InvalidData`, after the alert rustls owes the peer.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => {
                    self.buffered = has_buffered(&mut self.conn);
                    return Ok(n);
                }
                Err(e) if would_block(&e) => {}
                // TCP FIN without close_notify: still the end of the stream.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            self.buffered = false;
            self.conn.read_tls(&mut TcpIo(&self.tcp))?;
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.flush_records();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // A key update or similar may want an answer.
            if self.conn.wants_write() {
                match self.flush_records() {
                    Err(e) if !would_block(&e) => return Err(e),
                    _ => {}
                }
            }
        }
    }

    /// Encrypt and write as much of `buf` as fits now. Records the socket
    /// did not take yet stay queued ([`Transport::wants_flush`]).
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.flush_records()?;
        let n = self.conn.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match self.flush_records() {
            Err(e) if !would_block(&e) => Err(e),
            _ => Ok(n),
        }
    }

    /// close_notify, then TCP FIN once every record before it is written.
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.fin_pending = true;
        match self.flush_records() {
            Err(e) if would_block(&e) => Ok(()),
            r => r,
        }
    }

    /// RST: queued records are dropped, as an RST drops a socket's send
    /// buffer; no alert is sent.
    fn reset(self: Box<Self>) {
        reset_socket(self.tcp);
    }

    fn wants_flush(&self) -> bool {
        self.conn.wants_write() || self.fin_pending
    }

    fn buffers(&self) -> bool {
        true
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_records()
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
    pub fn into_transport(self) -> AnyTransport {
        match self {
            AsyncStream::Tcp(s) => AnyTransport::Tcp(s),
            AsyncStream::Tls(t) => {
                let (tcp, conn) = t.into_inner();
                AnyTransport::Other(Box::new(TlsStream::new(tcp, conn)))
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
