//! Shared test harness: "client ↔ flatline ↔ server" in two lines, on 127.0.0.1.
#![allow(dead_code)]

use flatline::events::{Event, EventKind, EventLog};
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
        let n = tokio::time::timeout(T, s.read(&mut chunk)).await.expect("head timeout").unwrap();
        assert!(n > 0, "eof before head: {:?}", String::from_utf8_lossy(&buf));
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
    let (server, _) = tokio::time::timeout(T, server_l.accept()).await.unwrap().unwrap();
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
    tokio::time::timeout(T, s.read_exact(&mut v)).await.expect("read timeout").unwrap();
    v
}

/// Read until EOF (bounded); returns the bytes, or the error kind.
pub async fn read_to_end(s: &mut TcpStream) -> Result<Vec<u8>, std::io::ErrorKind> {
    let mut v = Vec::new();
    match tokio::time::timeout(T, s.read_to_end(&mut v)).await.expect("read_to_end timeout") {
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
    wait_event(log, |e| e.conn == Some(n) && matches!(e.kind, EventKind::Closed { .. })).await
}
