//! Every fault kind on real loopback sockets: what each peer observes on the
//! wire. Negative checks ("nothing arrived") are made after the relay logged
//! that it read and held the bytes, so they need no waiting.

mod common;
use common::*;
use flatline::events::{Direction, EventKind, EventLog, Side};
use flatline::faults::{self, Fault};
use flatline::frame::encode_frame;
use flatline::relay::{Relay, RelayConfig};
use flatline::scenario::{Connections, FaultKind};
use futures_util::{SinkExt, StreamExt};
use std::io::ErrorKind;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn fault(yaml: &str) -> (Arc<dyn Fault>, bool) {
    let k: FaultKind = serde_yaml::from_str(yaml).expect("fault yaml");
    let instant = k.is_instant();
    (Arc::from(faults::build(&k).unwrap()), instant)
}

fn start(relay: &Relay, name: &str, yaml: &str) {
    let (f, instant) = fault(yaml);
    relay
        .board()
        .start_fault(name, f, &Connections::default(), instant);
}

/// Nothing is readable on `s` right now (no data, no EOF).
fn nothing_readable(s: &TcpStream) {
    let mut b = [0u8; 64];
    match s.try_read(&mut b) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("expected nothing to read, got {other:?}"),
    }
}

async fn held(log: &EventLog, dir: Direction) {
    wait_event(
        log,
        |e| matches!(&e.kind, EventKind::Held { dir: d, .. } if *d == dir),
    )
    .await;
}

#[tokio::test]
async fn partition_holds_bytes_and_fin_then_flushes_in_order() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let (mut client, mut server) = raw_pair(&relay, &server_l).await;
    start(&relay, "outage", "kind: partition");
    let f1 = encode_frame(1, true, b"one", Some([1, 2, 3, 4]));
    let f2 = encode_frame(1, true, b"two", Some([5, 6, 7, 8]));
    client.write_all(&f1).await.unwrap();
    held(&log, Direction::ToServer).await;
    client.write_all(&f2).await.unwrap();
    client.shutdown().await.unwrap();
    // The relay saw the FIN (logged) but the server sees nothing.
    wait_event(&log, |e| {
        matches!(e.kind, EventKind::Fin { from: Side::Client })
    })
    .await;
    nothing_readable(&server);
    // Server → client is cut too.
    let g = encode_frame(1, true, b"down", None);
    server.write_all(&g).await.unwrap();
    held(&log, Direction::ToClient).await;
    nothing_readable(&client);
    relay.board().stop_fault("outage");
    let got = read_to_end(&mut server).await.unwrap();
    assert_eq!(got, [f1, f2].concat());
    assert_eq!(read_exact(&mut client, g.len()).await, g);
    wait_event(&log, |e| {
        matches!(&e.kind, EventKind::Released { fin: true, .. })
    })
    .await;
    relay.stop().await;
}

#[tokio::test]
async fn partition_on_end_reset_resets_both_sides() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let (mut client, mut server) = raw_pair(&relay, &server_l).await;
    start(&relay, "nat", "{kind: partition, on_end: reset}");
    client
        .write_all(&encode_frame(1, true, b"x", Some([0; 4])))
        .await
        .unwrap();
    held(&log, Direction::ToServer).await;
    relay.board().stop_fault("nat");
    assert_eq!(
        read_to_end(&mut client).await,
        Err(ErrorKind::ConnectionReset)
    );
    assert_eq!(
        read_to_end(&mut server).await,
        Err(ErrorKind::ConnectionReset)
    );
    wait_event(
        &log,
        |e| matches!(&e.kind, EventKind::Discarded { bytes, .. } if *bytes > 0),
    )
    .await;
    relay.stop().await;
}

/// A relay with a partition `outage` active, and a client that connected
/// and sent its upgrade request during it.
async fn request_during_partition() -> (tokio::net::TcpListener, Relay, EventLog, TcpStream) {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    start(&relay, "outage", "kind: partition");
    let mut client = TcpStream::connect(relay.addr()).await.unwrap();
    client.write_all(&upgrade_request("/feed")).await.unwrap();
    (server_l, relay, log, client)
}

#[tokio::test]
async fn partition_gives_new_connections_no_handshake_answer() {
    let (server_l, relay, log, mut client) = request_during_partition().await;
    wait_event(&log, |e| {
        e.conn == Some(1) && matches!(e.kind, EventKind::FaultJoin { .. })
    })
    .await;
    held(&log, Direction::ToServer).await;
    let (mut server, _) = server_l.accept().await.unwrap();
    nothing_readable(&server);
    nothing_readable(&client);
    relay.board().stop_fault("outage");
    let (head, _) = read_head(&mut server).await;
    assert!(head.starts_with(b"GET /feed"));
    server.write_all(SWITCHING).await.unwrap();
    let (head, _) = read_head(&mut client).await;
    assert!(head.starts_with(b"HTTP/1.1 101"));
    relay.stop().await;
}

#[tokio::test]
async fn drop_removes_whole_pongs_and_keeps_the_stream_valid() {
    // A tungstenite client behind the relay reads what a raw server sends.
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let url = relay.url();
    let client = tokio::spawn(async move { tokio_tungstenite::connect_async(url).await });
    let (mut server, _) = server_l.accept().await.unwrap();
    let (head, _) = read_head(&mut server).await;
    let key = String::from_utf8_lossy(&head)
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ").map(str::to_string))
        .unwrap();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    server
        .write_all(format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (mut ws, _) = client.await.unwrap().unwrap();
    start(
        &relay,
        "pongloss",
        "{kind: drop, match: {opcode: pong}, direction: to_client}",
    );
    let mut stream = Vec::new();
    for i in 0..5 {
        stream.extend(encode_frame(0xA, true, b"pong", None));
        stream.extend(encode_frame(1, true, format!("msg{i}").as_bytes(), None));
    }
    // Split the writes at awkward places: frames must still be dropped whole.
    for part in stream.chunks(7) {
        server.write_all(part).await.unwrap();
    }
    for i in 0..5 {
        let m = tokio::time::timeout(T, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m, Message::Text(format!("msg{i}")));
    }
    let dropped = log
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Dropped { .. }))
        .count();
    assert_eq!(dropped, 5);
    relay.stop().await;
}

async fn drop_decisions(seed: u64) -> Vec<u8> {
    let (server_l, addr) = listener().await;
    let mut cfg = RelayConfig::new(&format!("ws://{addr}/")).unwrap();
    cfg.seed = seed;
    let relay = Relay::start(cfg, EventLog::new()).await.unwrap();
    let (mut client, mut server) = raw_pair(&relay, &server_l).await;
    start(
        &relay,
        "flaky",
        "{kind: drop, match: {opcode: binary}, probability: 0.5}",
    );
    for i in 0..64u8 {
        server
            .write_all(&encode_frame(2, true, &[i], None))
            .await
            .unwrap();
    }
    // A text frame marks the end: everything before it has been decided.
    server
        .write_all(&encode_frame(1, true, b"end", None))
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        let h = read_exact(&mut client, 2).await;
        let body = read_exact(&mut client, (h[1] & 0x7f) as usize).await;
        if h[0] & 0x0f == 1 {
            break;
        }
        got.push(body[0]);
    }
    relay.stop().await;
    got
}

#[tokio::test]
async fn same_seed_same_drop_decisions() {
    let a = drop_decisions(7).await;
    let b = drop_decisions(7).await;
    let c = drop_decisions(8).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.len() > 10 && a.len() < 54, "{} of 64 kept", a.len());
}

#[tokio::test]
async fn refuse_refused_stops_listening_then_listens_again() {
    let (_server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    start(&relay, "down", "{kind: refuse, how: refused}");
    wait_event(&log, |e| {
        matches!(e.kind, EventKind::StoppedListening { .. })
    })
    .await;
    let err = TcpStream::connect(relay.addr()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    relay.board().stop_fault("down");
    let mut listening = 0;
    wait_event(&log, |e| {
        listening += matches!(e.kind, EventKind::Listening { .. }) as u32;
        listening == 2
    })
    .await;
    TcpStream::connect(relay.addr()).await.unwrap();
    relay.stop().await;
}

#[tokio::test]
async fn refuse_http_answers_503_with_retry_after() {
    let (_server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    start(
        &relay,
        "busy",
        "{kind: refuse, how: http, status: 503, headers: {Retry-After: '1'}}",
    );
    let mut client = TcpStream::connect(relay.addr()).await.unwrap();
    client.write_all(&upgrade_request("/feed")).await.unwrap();
    let got = String::from_utf8(read_to_end(&mut client).await.unwrap()).unwrap();
    assert!(
        got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{got}"
    );
    assert!(got.contains("Retry-After: 1\r\n"), "{got}");
    relay.stop().await;
}

#[tokio::test]
async fn refuse_reset_and_close() {
    let (_server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    start(&relay, "rst", "{kind: refuse, how: reset}");
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    assert_eq!(read_to_end(&mut c).await, Err(ErrorKind::ConnectionReset));
    relay.board().stop_fault("rst");
    start(&relay, "fin", "{kind: refuse, how: close}");
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    assert_eq!(read_to_end(&mut c).await, Ok(vec![]));
    relay.stop().await;
}

#[tokio::test]
async fn close_injects_a_valid_close_frame_toward_the_client() {
    let (srv, handle) = flatline::peers::server::spawn_demo_server(Default::default())
        .await
        .unwrap();
    let relay = relay_to(&format!("ws://{srv}/feed")).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(relay.url()).await.unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    let echo = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echo, Message::Text("hello".into()));
    start(
        &relay,
        "away",
        "{kind: close, toward: client, code: 1001, reason: going away}",
    );
    let m = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Close(Some(frame)) = m else {
        panic!("expected close, got {m:?}")
    };
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason, "going away");
    relay.stop().await;
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn lose_fin_leaves_the_client_half_open() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let (client, mut server) = raw_pair(&relay, &server_l).await;
    start(&relay, "lost", "{kind: lose_fin, from: server}");
    server
        .write_all(&encode_frame(
            8,
            true,
            &flatline::frame::close_payload(1000, ""),
            None,
        ))
        .await
        .unwrap();
    server.shutdown().await.unwrap();
    wait_event(&log, |e| {
        matches!(e.kind, EventKind::Fin { from: Side::Server })
    })
    .await;
    held(&log, Direction::ToClient).await;
    nothing_readable(&client);
    // The client can still write toward the server.
    let mut client = client;
    let f = encode_frame(1, true, b"still here", Some([1, 1, 1, 1]));
    client.write_all(&f).await.unwrap();
    assert_eq!(read_exact(&mut server, f.len()).await, f);
    relay.stop().await;
}

#[tokio::test]
async fn half_close_toward_server_keeps_the_other_direction() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let (mut client, mut server) = raw_pair(&relay, &server_l).await;
    start(&relay, "hc", "{kind: half_close, toward: server}");
    assert_eq!(read_to_end(&mut server).await, Ok(vec![]));
    let g = encode_frame(1, true, b"after", None);
    server.write_all(&g).await.unwrap();
    assert_eq!(read_exact(&mut client, g.len()).await, g);
    relay.stop().await;
}

#[tokio::test]
async fn reset_toward_client() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let (mut client, _server) = raw_pair(&relay, &server_l).await;
    start(&relay, "rst", "{kind: reset, toward: client}");
    assert_eq!(
        read_to_end(&mut client).await,
        Err(ErrorKind::ConnectionReset)
    );
    relay.stop().await;
}

#[tokio::test]
async fn delay_keeps_order_and_bytes() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let (mut client, mut server) = raw_pair(&relay, &server_l).await;
    start(&relay, "slow", "{kind: delay, latency: 50ms, jitter: 40ms}");
    let mut all = Vec::new();
    let t0 = std::time::Instant::now();
    for i in 0..20u8 {
        let f = encode_frame(2, true, &[i; 100], None);
        server.write_all(&f).await.unwrap();
        all.extend(f);
    }
    assert_eq!(read_exact(&mut client, all.len()).await, all);
    // A lower bound is a correctness property: nothing can arrive early.
    assert!(t0.elapsed() >= std::time::Duration::from_millis(10));
    relay.stop().await;
}

#[tokio::test]
async fn throttle_and_slice_keep_bytes() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let (mut client, mut server) = raw_pair(&relay, &server_l).await;
    start(
        &relay,
        "thin",
        "{kind: throttle, rate: 256KiB/s, direction: to_client}",
    );
    start(
        &relay,
        "bits",
        "{kind: slice, size: 1..16, gap: 1ms, direction: to_server}",
    );
    let g = encode_frame(2, true, &vec![3u8; 20000], None);
    server.write_all(&g).await.unwrap();
    assert_eq!(read_exact(&mut client, g.len()).await, g);
    let f = encode_frame(1, true, b"sliced into many writes", Some([1, 2, 3, 4]));
    client.write_all(&f).await.unwrap();
    assert_eq!(read_exact(&mut server, f.len()).await, f);
    relay.stop().await;
}

#[tokio::test]
async fn corrupt_makes_a_tungstenite_client_fail() {
    let (srv, handle) = flatline::peers::server::spawn_demo_server(Default::default())
        .await
        .unwrap();
    let relay = relay_to(&format!("ws://{srv}/")).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(relay.url()).await.unwrap();
    start(
        &relay,
        "bits",
        "{kind: corrupt, match: {opcode: text}, direction: to_client}",
    );
    ws.send(Message::Text("hello".into())).await.unwrap();
    let got = tokio::time::timeout(T, ws.next()).await.unwrap();
    assert!(
        matches!(got, Some(Err(_))),
        "expected a UTF-8 error, got {got:?}"
    );
    relay.stop().await;
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn limit_cuts_after_the_budget() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let (mut client, mut server) = raw_pair(&relay, &server_l).await;
    start(
        &relay,
        "cap",
        "{kind: limit, bytes: 100, direction: to_client, then: reset}",
    );
    server
        .write_all(&encode_frame(2, true, &[1; 300], None))
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    let err = loop {
        match tokio::time::timeout(T, tokio::io::AsyncReadExt::read(&mut client, &mut b))
            .await
            .unwrap()
        {
            Ok(0) => break None,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) => break Some(e.kind()),
        }
    };
    assert!(got.len() <= 100, "{} bytes passed", got.len());
    assert_eq!(err, Some(ErrorKind::ConnectionReset));
    relay.stop().await;
}

#[tokio::test]
async fn an_answer_after_the_client_gave_up_is_not_an_open() {
    let (server_l, relay, log, mut client) = request_during_partition().await;
    // The client's handshake timeout: it gives up while the request is held.
    client.shutdown().await.unwrap();
    wait_event(&log, |e| {
        matches!(e.kind, EventKind::Fin { from: Side::Client })
    })
    .await;
    relay.board().stop_fault("outage");
    let (mut server, _) = server_l.accept().await.unwrap();
    read_head(&mut server).await;
    server.write_all(SWITCHING).await.unwrap();
    wait_event(&log, |e| {
        e.conn == Some(1) && matches!(&e.kind, EventKind::Note { text } if text.contains("given this connection up"))
    })
    .await;
    assert!(!log
        .events()
        .iter()
        .any(|e| matches!(e.kind, EventKind::Open)));
    relay.stop().await;
}

/// Unmask a client frame's payload (short frames: 7-bit length).
fn client_payload(frame: &[u8]) -> Vec<u8> {
    assert!(frame[1] & 0x80 != 0, "toward the server frames are masked");
    let len = (frame[1] & 0x7f) as usize;
    let mask = &frame[2..6];
    frame[6..6 + len]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i & 3])
        .collect()
}

#[tokio::test]
async fn replace_swaps_the_payload_of_matching_frames_on_the_wire() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let (mut client, mut server) = raw_pair(&relay, &server_l).await;
    start(
        &relay,
        "swap",
        "{kind: replace, match: {text: secret}, with: public, direction: to_server}",
    );
    let secret = encode_frame(1, true, b"secret data", Some([9, 8, 7, 6]));
    let other = encode_frame(1, true, b"hello", Some([1, 2, 3, 4]));
    client.write_all(&secret).await.unwrap();
    client.write_all(&other).await.unwrap();
    let got = read_exact(&mut server, 2 + 4 + 6).await;
    assert_eq!(got[0], 0x81, "same opcode and FIN");
    assert_eq!(client_payload(&got), b"public");
    assert_eq!(read_exact(&mut server, other.len()).await, other);
    relay.stop().await;
}

#[tokio::test]
async fn inject_sends_a_masked_message_toward_the_server() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let (_client, mut server) = raw_pair(&relay, &server_l).await;
    start(&relay, "forged", "{kind: inject, side: server, text: hi}");
    let got = read_exact(&mut server, 2 + 4 + 2).await;
    assert_eq!(got[0], 0x81);
    assert_eq!(client_payload(&got), b"hi");
    relay.stop().await;
}
