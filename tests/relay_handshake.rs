//! The upgrade handshake: bad requests, unreachable upstream, rejections,
//! bytes right behind either head, header rewriting.
mod common;
use common::*;
use flatline::events::{Direction, Ending, EventKind, Opcode};
use flatline::frame::encode_frame;
use flatline::relay::{Relay, RelayConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn bad_request(req: &[u8]) -> (flatline::events::EventLog, String) {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    c.write_all(req).await.unwrap();
    let (got, r) = read_until_end(&mut c).await;
    r.unwrap();
    let e = wait_event(&log, |e| matches!(e.kind, EventKind::BadRequest { .. })).await;
    assert_eq!(e.conn, Some(1));
    wait_closed(&log, 1).await;
    assert!(has(&log, 1, |k| matches!(
        k,
        EventKind::Closed {
            how: Ending::Failed
        }
    )));
    assert!(!has(&log, 1, |k| matches!(
        k,
        EventKind::UpstreamConnected | EventKind::Request { .. }
    )));
    // Upstream was never contacted.
    assert!(
        tokio::time::timeout(std::time::Duration::ZERO, server_l.accept())
            .await
            .is_err()
    );
    relay.stop().await;
    (log, String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn garbage_gets_400() {
    let (log, answer) = bad_request(b"\x00\x01\x02 garbage\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    let e = wait_event(&log, |e| matches!(e.kind, EventKind::BadRequest { .. })).await;
    let EventKind::BadRequest { reason } = e.kind else {
        unreachable!()
    };
    assert!(reason.contains("malformed"), "{reason}");
}

#[tokio::test]
async fn oversized_head_gets_400() {
    // 16 KiB + 1 byte of headers with no end: the relay reads all of it.
    let mut req = b"GET /feed HTTP/1.1\r\nHost: x\r\n".to_vec();
    while req.len() < 16 * 1024 + 1 {
        req.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    req.truncate(16 * 1024 + 1);
    let (log, answer) = bad_request(&req).await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    let e = wait_event(&log, |e| matches!(e.kind, EventKind::BadRequest { .. })).await;
    let EventKind::BadRequest { reason } = e.kind else {
        unreachable!()
    };
    assert!(reason.contains("16384"), "{reason}");
}

#[tokio::test]
async fn client_closing_mid_head_is_logged() {
    let (_server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    c.write_all(b"GET /feed HTTP/1.1\r\nHost: x\r\nUpg")
        .await
        .unwrap();
    c.shutdown().await.unwrap();
    let (got, r) = read_until_end(&mut c).await;
    r.unwrap();
    assert!(got.is_empty());
    let e = wait_event(&log, |e| matches!(e.kind, EventKind::BadRequest { .. })).await;
    let EventKind::BadRequest { reason } = e.kind else {
        unreachable!()
    };
    assert!(reason.contains("after 32 bytes"), "{reason}");
    wait_closed(&log, 1).await;
    // The relay still serves the next connection.
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    c.write_all(b"nonsense\r\n\r\n").await.unwrap();
    let (got, _) = read_until_end(&mut c).await;
    assert!(got.starts_with(b"HTTP/1.1 400"));
    relay.stop().await;
}

#[tokio::test]
async fn unreachable_upstream_gets_502() {
    let (l, addr) = listener().await;
    drop(l); // nothing listens there now
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    c.write_all(&upgrade_request("/feed")).await.unwrap();
    let (got, r) = read_until_end(&mut c).await;
    r.unwrap();
    let s = String::from_utf8_lossy(&got);
    assert!(s.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{s}");
    let e = wait_event(&log, |e| matches!(e.kind, EventKind::UpstreamFailed { .. })).await;
    let EventKind::UpstreamFailed { error } = e.kind else {
        unreachable!()
    };
    assert!(error.contains(&addr.to_string()), "{error}");
    wait_closed(&log, 1).await;
    assert!(has(&log, 1, |k| matches!(k, EventKind::Request { .. })));
    assert!(has(&log, 1, |k| matches!(
        k,
        EventKind::Closed {
            how: Ending::Failed
        }
    )));
    relay.stop().await;
}

#[tokio::test]
async fn rejection_is_forwarded_unchanged() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    c.write_all(&upgrade_request("/feed")).await.unwrap();
    let (mut s, _) = tokio::time::timeout(T, server_l.accept())
        .await
        .unwrap()
        .unwrap();
    read_head(&mut s).await;
    let answer = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 17\r\n\r\ncome back later\r\n";
    s.write_all(answer).await.unwrap(); // head and body in one write
    s.shutdown().await.unwrap();
    let (got, r) = read_until_end(&mut c).await;
    r.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(answer)
    );
    wait_event(&log, |e| e.kind == EventKind::Rejected { status: 503 }).await;
    drop(c);
    wait_closed(&log, 1).await;
    assert!(!has(&log, 1, |k| matches!(
        k,
        EventKind::Open | EventKind::Frame(_)
    )));
    relay.stop().await;
}

#[tokio::test]
async fn bytes_behind_either_head_are_kept() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    let f1 = encode_frame(1, true, b"right behind the request", Some([9, 8, 7, 6]));
    let f2 = encode_frame(2, true, &[1, 2, 3], Some([1, 1, 1, 1]));
    c.write_all(&[upgrade_request("/feed"), f1.clone(), f2.clone()].concat())
        .await
        .unwrap();
    let (mut s, _) = tokio::time::timeout(T, server_l.accept())
        .await
        .unwrap()
        .unwrap();
    let (_, mut rest) = read_head(&mut s).await;
    let want = [f1, f2].concat();
    rest.extend(read_exact(&mut s, want.len() - rest.len()).await);
    assert_eq!(rest, want);
    let g = encode_frame(1, true, b"right behind the 101", None);
    s.write_all(&[SWITCHING.to_vec(), g.clone()].concat())
        .await
        .unwrap();
    let (head, mut rest) = read_head(&mut c).await;
    assert_eq!(head, SWITCHING);
    rest.extend(read_exact(&mut c, g.len() - rest.len()).await);
    assert_eq!(rest, g);
    let up = wait_frames(&log, 1, Direction::ToServer, 2).await;
    assert_eq!(up[0].preview, "right behind the request");
    assert_eq!((up[1].opcode, up[1].len), (Opcode::Binary, 3));
    let down = wait_frames(&log, 1, Direction::ToClient, 1).await;
    assert_eq!(down[0].preview, "right behind the 101");
    assert!(has(&log, 1, |k| *k == EventKind::Open));
    relay.stop().await;
}

#[tokio::test]
async fn host_rewritten_and_extensions_stripped() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let (mut c, _) = (TcpStream::connect(relay.addr()).await.unwrap(), ());
    c.write_all(&upgrade_request("/feed?a=1")).await.unwrap();
    let (mut s, _) = tokio::time::timeout(T, server_l.accept())
        .await
        .unwrap()
        .unwrap();
    let (head, _) = read_head(&mut s).await;
    let want = format!(
        "GET /feed?a=1 HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&head), want);
    let e = wait_event(&log, |e| matches!(e.kind, EventKind::Request { .. })).await;
    assert_eq!(
        e.kind,
        EventKind::Request {
            path: "/feed?a=1".into(),
            extensions_removed: true
        }
    );
    relay.stop().await;

    // Told to keep them, the relay keeps them.
    let mut cfg = RelayConfig::new(&format!("ws://{addr}/feed")).unwrap();
    cfg.keep_extensions = true;
    let relay = Relay::start(cfg, flatline::events::EventLog::new())
        .await
        .unwrap();
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    c.write_all(&upgrade_request("/feed")).await.unwrap();
    let (mut s, _) = tokio::time::timeout(T, server_l.accept())
        .await
        .unwrap()
        .unwrap();
    let (head, _) = read_head(&mut s).await;
    let head = String::from_utf8_lossy(&head);
    assert!(
        head.contains("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("\r\nHost: {addr}\r\n")), "{head}");
    relay.stop().await;
}
