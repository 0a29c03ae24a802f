//! The raw echo upstream shared by the benchmarks: it answers the upgrade
//! with 101, then echoes every (masked) frame back as the same frame
//! unmasked, as a WebSocket server would. Included with `#[path]`.

use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Errors in benchmark code.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The client's upgrade request.
pub const REQUEST: &[u8] = b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// The server's answer.
pub const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// The echo server: answers the upgrade with 101, then echoes every (masked)
/// frame back as the same frame unmasked, as a WebSocket server would.
pub async fn echo_server() -> Res<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let _ = echo_conn(s).await;
            });
        }
    });
    Ok(addr)
}

pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Res<()> {
    // Byte at a time is too slow for 5,000 connections; heads here arrive in one piece.
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err("eof in head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            if !buf.ends_with(b"\r\n\r\n") {
                return Err("bytes behind the head (not expected in this bench)".into());
            }
            return Ok(());
        }
    }
}

pub async fn echo_conn<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> Res<()> {
    read_head(&mut s).await?;
    s.write_all(SWITCHING).await?;
    let mut buf: Vec<u8> = Vec::new();
    let mut h = [0u8; 14];
    loop {
        if let Err(e) = s.read_exact(&mut h[..2]).await {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Ok(());
            }
            return Err(e.into());
        }
        let hl = flatline::frame::header_len(&h[..2]);
        s.read_exact(&mut h[2..hl]).await?;
        let (len, off) = match h[1] & 0x7f {
            126 => (u16::from_be_bytes([h[2], h[3]]) as usize, 4),
            127 => (u64::from_be_bytes(h[2..10].try_into()?) as usize, 10),
            n => (n as usize, 2),
        };
        let masked = h[1] & 0x80 != 0;
        let mut mask = [0u8; 4];
        if masked {
            mask.copy_from_slice(&h[off..off + 4]);
        }
        // Reply header (unmasked) then payload, in one write.
        buf.clear();
        buf.push(h[0]);
        buf.push(h[1] & 0x7f);
        buf.extend_from_slice(&h[2..off]);
        let start = buf.len();
        buf.resize(start + len, 0);
        s.read_exact(&mut buf[start..]).await?;
        if masked {
            for (i, b) in buf[start..].iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
        }
        s.write_all(&buf).await?;
        // Over TLS, `write_all` may leave the last records in the session
        // when the socket is full: only a flush sends them.
        s.flush().await?;
    }
}
