//! Shared test harness: "client ↔ flatline ↔ server" in two lines, on 127.0.0.1.
#![allow(dead_code)]

use flatline::events::{Direction, Event, EventKind, EventLog, FrameInfo};
use flatline::relay::{Relay, RelayConfig};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bounded wait for anything in tests.
pub const T: Duration = Duration::from_secs(10);

/// A raw TCP "server" listening on 127.0.0.1:0.
pub async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A relay toward `upstream` (a ws:// URL), with a fresh log.
pub async fn relay_to(upstream: &str) -> Relay {
    Relay::start(RelayConfig::new(upstream).unwrap(), EventLog::new())
        .await
        .unwrap()
}

/// A relay toward a raw listener at `addr`, path `/feed`.
pub async fn relay_to_addr(addr: SocketAddr) -> Relay {
    relay_to(&format!("ws://{addr}/feed")).await
}

/// A minimal valid upgrade request.
pub fn upgrade_request(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    )
    .into_bytes()
}

/// The answer a raw server gives.
pub const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// Read until `\r\n\r\n`; returns the head and anything after it.
pub async fn read_head(s: &mut TcpStream) -> (Vec<u8>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(T, s.read(&mut chunk))
            .await
            .expect("head timeout")
            .unwrap();
        assert!(
            n > 0,
            "eof before head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(p + 4);
            return (buf, rest);
        }
    }
}

/// Connect a raw client through `relay`, complete the handshake with a raw
/// server accepted on `server_l`. Returns (client, server) sockets.
pub async fn raw_pair(relay: &Relay, server_l: &TcpListener) -> (TcpStream, TcpStream) {
    let mut client = TcpStream::connect(relay.addr()).await.unwrap();
    client.write_all(&upgrade_request("/feed")).await.unwrap();
    let (server, _) = tokio::time::timeout(T, server_l.accept())
        .await
        .unwrap()
        .unwrap();
    let mut server = server;
    let (_head, rest) = read_head(&mut server).await;
    assert!(rest.is_empty());
    server.write_all(SWITCHING).await.unwrap();
    let (head, rest) = read_head(&mut client).await;
    assert!(head.starts_with(b"HTTP/1.1 101"));
    assert!(rest.is_empty());
    (client, server)
}

/// Read exactly `n` bytes (bounded).
pub async fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    tokio::time::timeout(T, s.read_exact(&mut v))
        .await
        .expect("read timeout")
        .unwrap();
    v
}

/// Read until EOF (bounded); returns the bytes, or the error kind.
pub async fn read_to_end(s: &mut TcpStream) -> Result<Vec<u8>, std::io::ErrorKind> {
    let mut v = Vec::new();
    match tokio::time::timeout(T, s.read_to_end(&mut v))
        .await
        .expect("read_to_end timeout")
    {
        Ok(_) => Ok(v),
        Err(e) => Err(e.kind()),
    }
}

/// Wait for an event in the log.
pub async fn wait_event(log: &EventLog, pred: impl FnMut(&Event) -> bool) -> Event {
    log.wait_for(T, pred).await.expect("event not seen in time")
}

/// Wait for connection `n` to be closed.
pub async fn wait_closed(log: &EventLog, n: u32) -> Event {
    wait_event(log, |e| {
        e.conn == Some(n) && matches!(e.kind, EventKind::Closed { .. })
    })
    .await
}

/// Frame events of connection `n` travelling in `dir`, in log order.
pub fn frames(log: &EventLog, n: u32, dir: Direction) -> Vec<FrameInfo> {
    log.events()
        .into_iter()
        .filter(|e| e.conn == Some(n))
        .filter_map(|e| match e.kind {
            EventKind::Frame(f) if f.dir == dir => Some(f),
            _ => None,
        })
        .collect()
}

/// Wait until connection `n` has logged at least `count` frames in `dir`.
pub async fn wait_frames(log: &EventLog, n: u32, dir: Direction, count: usize) -> Vec<FrameInfo> {
    let mut seen = frames(log, n, dir).len();
    if seen < count {
        wait_event(log, |e| {
            if e.conn == Some(n) && matches!(&e.kind, EventKind::Frame(f) if f.dir == dir) {
                seen += 1;
            }
            seen >= count
        })
        .await;
    }
    frames(log, n, dir)
}

/// Whether the log has an event of connection `n` matching `pred`.
pub fn has(log: &EventLog, n: u32, pred: impl Fn(&EventKind) -> bool) -> bool {
    log.events()
        .iter()
        .any(|e| e.conn == Some(n) && pred(&e.kind))
}

/// Close `s` with RST (SO_LINGER 0).
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// Read from `s` until EOF or error, returning what was read and the result.
pub async fn read_until_end(s: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut v = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(T, s.read(&mut chunk))
            .await
            .expect("read timeout")
        {
            Ok(0) => return (v, Ok(())),
            Ok(n) => v.extend_from_slice(&chunk[..n]),
            Err(e) => return (v, Err(e)),
        }
    }
}

/// The `Sec-WebSocket-Key` of a request head.
pub fn ws_key(head: &[u8]) -> String {
    let s = String::from_utf8_lossy(head);
    s.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_string())
        })
        .expect("no Sec-WebSocket-Key")
}

/// A valid 101 answer to a request head (for real WebSocket clients).
pub fn switching_for(head: &[u8]) -> Vec<u8> {
    let accept =
        tokio_tungstenite::tungstenite::handshake::derive_accept_key(ws_key(head).as_bytes());
    format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
        .into_bytes()
}

/// A tokio-tungstenite echo server on 127.0.0.1: echoes text and binary
/// messages (tungstenite answers pings itself). Two commands: text
/// `fragment-me` is answered with a three-fragment text message with a ping
/// in the middle; text `ping-me` sends a ping and answers `got pong: …` once
/// the pong arrives.
pub async fn ws_echo_server() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    let r = match m {
                        Message::Text(t) if t == "fragment-me" => {
                            let parts = [
                                Message::Frame(Frame::message(
                                    b"frag-".to_vec(),
                                    OpCode::Data(Data::Text),
                                    false,
                                )),
                                Message::Frame(Frame::message(
                                    b"ment".to_vec(),
                                    OpCode::Data(Data::Continue),
                                    false,
                                )),
                                Message::Frame(Frame::ping(b"mid".to_vec())),
                                Message::Frame(Frame::message(
                                    b"ed".to_vec(),
                                    OpCode::Data(Data::Continue),
                                    true,
                                )),
                            ];
                            let mut r = Ok(());
                            for p in parts {
                                r = ws.feed(p).await;
                            }
                            match r {
                                Ok(()) => ws.flush().await,
                                e => e,
                            }
                        }
                        Message::Text(t) if t == "ping-me" => {
                            ws.send(Message::Ping(b"srv".to_vec())).await
                        }
                        Message::Pong(p) if p == b"srv" => {
                            ws.send(Message::Text(format!(
                                "got pong: {}",
                                String::from_utf8_lossy(&p)
                            )))
                            .await
                        }
                        Message::Text(_) | Message::Binary(_) => ws.send(m).await,
                        _ => Ok(()),
                    };
                    if r.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A stream wrapper that records every byte written through it.
pub struct Recorder<S> {
    /// The wrapped stream.
    pub inner: S,
    /// Everything written so far.
    pub written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Recorder<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Recorder<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.written.lock().unwrap().extend_from_slice(&buf[..*n]);
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
