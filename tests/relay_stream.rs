//! Byte-exact pass-through after the handshake: mixed streams, split
//! headers, half-close, RST propagation, pings left unanswered.
mod common;
use common::*;
use flatline::events::{Direction, Ending, EventKind, EventLog, Opcode, Retention, Side};
use flatline::frame::{close_payload, encode_frame};
use flatline::relay::{Relay, RelayConfig};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A mixed stream: text, binary, a fragmented message with interleaved pings,
/// 0-length frames, a 16 MiB frame and a close frame. `mask` for the client.
fn mixed_stream(seed: u8, mask: bool) -> (Vec<u8>, Vec<(Opcode, bool, u64)>) {
    let m = |i: u8| mask.then_some([seed, i, 0x5a, 0xa5]);
    let big: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i as u8) ^ seed).collect();
    let frames: Vec<(u8, bool, Vec<u8>)> = vec![
        (1, true, format!("hello from {seed}").into_bytes()),
        (2, true, (0..1000u32).map(|i| (i * 7) as u8).collect()),
        (1, false, b"frag-".to_vec()),
        (9, true, b"ping in the middle".to_vec()),
        (0, false, b"ment".to_vec()),
        (9, true, Vec::new()),
        (0, false, Vec::new()),
        (0, true, "ed ✓".as_bytes().to_vec()),
        (1, true, Vec::new()),
        (2, true, Vec::new()),
        (10, true, b"unsolicited pong".to_vec()),
        (2, true, vec![0xee; 125]),
        (2, true, vec![0xdd; 126]),
        (2, true, vec![0xcc; 65535]),
        (2, true, vec![0xbb; 65536]),
        (2, true, big),
        (8, true, close_payload(1000, "bye")),
    ];
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for (i, (op, fin, p)) in frames.iter().enumerate() {
        bytes.extend(encode_frame(*op, *fin, p, m(i as u8)));
        want.push((Opcode::from_u8(*op), *fin, p.len() as u64));
    }
    (bytes, want)
}

/// Write `bytes` in uneven pieces.
async fn write_pieces(
    mut s: tokio::net::tcp::OwnedWriteHalf,
    bytes: Vec<u8>,
) -> tokio::net::tcp::OwnedWriteHalf {
    let sizes = [1usize, 3, 7, 100, 4096, 70_000, 1 << 20];
    let (mut at, mut i) = (0, 0);
    while at < bytes.len() {
        let n = sizes[i % sizes.len()].min(bytes.len() - at);
        s.write_all(&bytes[at..at + n]).await.unwrap();
        at += n;
        i += 1;
    }
    s
}

async fn read_n(
    mut r: tokio::net::tcp::OwnedReadHalf,
    n: usize,
) -> (tokio::net::tcp::OwnedReadHalf, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut v = vec![0; n];
    tokio::time::timeout(T * 3, r.read_exact(&mut v))
        .await
        .expect("read timeout")
        .unwrap();
    (r, v)
}

/// Both mixed streams relayed, and what each side's frames were.
struct Exchanged {
    cr: tokio::net::tcp::OwnedReadHalf,
    cw: tokio::net::tcp::OwnedWriteHalf,
    sr: tokio::net::tcp::OwnedReadHalf,
    sw: tokio::net::tcp::OwnedWriteHalf,
    c_want: Vec<(Opcode, bool, u64)>,
    s_want: Vec<(Opcode, bool, u64)>,
}

/// Send the mixed streams both ways at once (neither side reads only after
/// writing everything) and check that each arrives byte-exact.
async fn exchange_mixed(client: TcpStream, server: TcpStream) -> Exchanged {
    let (c_bytes, c_want) = mixed_stream(1, true);
    let (s_bytes, s_want) = mixed_stream(2, false);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let cwt = tokio::spawn(write_pieces(cw, c_bytes.clone()));
    let swt = tokio::spawn(write_pieces(sw, s_bytes.clone()));
    let srt = tokio::spawn(read_n(sr, c_bytes.len()));
    let crt = tokio::spawn(read_n(cr, s_bytes.len()));
    let (sr, got_at_server) = srt.await.unwrap();
    let (cr, got_at_client) = crt.await.unwrap();
    assert!(got_at_server == c_bytes, "client → server bytes differ");
    assert!(got_at_client == s_bytes, "server → client bytes differ");
    let (cw, sw) = (cwt.await.unwrap(), swt.await.unwrap());
    Exchanged {
        cr,
        cw,
        sr,
        sw,
        c_want,
        s_want,
    }
}

/// A log that only counts (as `flatline relay` runs without `--events`):
/// every frame is counted by opcode and payload bytes, close frames still
/// reach subscribers as events, and no other frame does.
#[tokio::test]
async fn a_counting_log_counts_every_frame_and_passes_close_frames_on() {
    let (server_l, addr) = listener().await;
    let config = RelayConfig::new(&format!("ws://{addr}/feed")).unwrap();
    let log = EventLog::with(Retention::Stream, None);
    let mut events = log.subscribe();
    let relay = Relay::start(config, log.clone()).await.unwrap();
    let (client, server) = raw_pair(&relay, &server_l).await;
    let x = exchange_mixed(client, server).await;
    // Every byte arrived, so every frame was scanned (a chunk is counted
    // before it is written). Connections are summarised while open.
    let s = log.summaries();
    assert_eq!(s.len(), 1);
    for (got, want) in [(&s[0].to_server, &x.c_want), (&s[0].to_client, &x.s_want)] {
        assert_eq!(got.frames, want.len() as u64);
        assert_eq!(got.payload_bytes, want.iter().map(|w| w.2).sum::<u64>());
        let mut by_op = std::collections::BTreeMap::new();
        for (op, _, _) in want {
            *by_op.entry(op.name()).or_insert(0u64) += 1;
        }
        assert_eq!(got.opcodes, by_op);
    }
    drop(x);
    let mut frames = Vec::new();
    while let Ok(Ok(ev)) = tokio::time::timeout(T, events.recv()).await {
        match ev.kind {
            EventKind::Frame(f) => frames.push((f.dir, f.opcode, f.close_code)),
            EventKind::Closed { .. } => break,
            _ => {}
        }
    }
    // Both ways stream at once: the two close frames come in either order.
    frames.sort_by_key(|f| f.0 != Direction::ToServer);
    let close = |d| (d, Opcode::Close, Some(1000));
    assert_eq!(
        frames,
        [close(Direction::ToServer), close(Direction::ToClient)]
    );
    relay.stop().await;
}

#[tokio::test]
async fn mixed_stream_both_ways_is_byte_exact() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let (client, server) = raw_pair(&relay, &server_l).await;
    let x = exchange_mixed(client, server).await;
    let (c_want, s_want) = (x.c_want, x.s_want);
    let (mut cr, mut cw, mut sr, mut sw) = (x.cr, x.cw, x.sr, x.sw);
    // Close handshake done (both close frames crossed); now the TCP close.
    sw.shutdown().await.unwrap();
    let mut rest = Vec::new();
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(T, cr.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    cw.shutdown().await.unwrap();
    tokio::time::timeout(T, sr.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    wait_closed(&log, 1).await;
    for (dir, want) in [
        (Direction::ToServer, &c_want),
        (Direction::ToClient, &s_want),
    ] {
        let got: Vec<_> = frames(&log, 1, dir)
            .iter()
            .map(|f| (f.opcode, f.fin, f.len))
            .collect();
        assert_eq!(&got, want, "{dir:?}");
        let fs = frames(&log, 1, dir);
        assert!(fs.iter().all(|f| f.masked == (dir == Direction::ToServer)));
        assert_eq!(fs[3].preview, "ping in the middle");
        assert_eq!(fs[7].preview, "ed ✓");
        let close = fs.last().unwrap();
        assert_eq!(
            (close.close_code, close.close_reason.as_deref()),
            (Some(1000), Some("bye"))
        );
    }
    assert!(!has(&log, 1, |k| matches!(
        k,
        EventKind::ProtocolError { .. }
    )));
    assert!(has(&log, 1, |k| matches!(
        k,
        EventKind::Closed { how: Ending::Fin }
    )));
    relay.stop().await;
}

/// Frames whose headers are 2, 4, 10 bytes (+4 when masked), with payloads
/// short and longer than the preview.
fn header_kinds(masked: bool) -> Vec<Vec<u8>> {
    let mask = masked.then_some([0x11, 0x22, 0x33, 0x44]);
    vec![
        encode_frame(1, true, b"short text", mask),
        encode_frame(2, true, &vec![0x42; 300], mask),
        encode_frame(1, true, &"x".repeat(70_000).into_bytes(), mask),
        encode_frame(8, true, &close_payload(1001, "going"), mask),
    ]
}

/// Send each frame in two writes, cut at every offset inside its header
/// (and the first payload byte), and check frames and bytes.
async fn split_everywhere(dir: Direction) {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let (client, server) = raw_pair(&relay, &server_l).await;
    let (mut from, mut to) = match dir {
        Direction::ToServer => (client, server),
        Direction::ToClient => (server, client),
    };
    from.set_nodelay(true).unwrap();
    let mut count = 0;
    for frame in header_kinds(dir == Direction::ToServer) {
        let hl = flatline::frame::header_len(&frame);
        let want_info = {
            let mut s = flatline::frame::FrameScanner::new(dir);
            let mut info = None;
            s.feed(&frame, |e| {
                if let flatline::frame::Scan::Info(_, i) = e {
                    info = Some(i.info());
                }
            });
            info.unwrap()
        };
        for cut in 1..=(hl + 1).min(frame.len() - 1) {
            from.write_all(&frame[..cut]).await.unwrap();
            // The relay forwards what it read at once: once the peer has
            // these bytes the relay has scanned them as a chunk of their own.
            assert_eq!(read_exact(&mut to, cut).await, frame[..cut]);
            if cut < hl {
                assert_eq!(
                    frames(&log, 1, dir).len(),
                    count,
                    "frame event before its header was complete (cut {cut})"
                );
            }
            from.write_all(&frame[cut..]).await.unwrap();
            assert_eq!(read_exact(&mut to, frame.len() - cut).await, frame[cut..]);
            count += 1;
            let fs = wait_frames(&log, 1, dir, count).await;
            assert_eq!(fs.len(), count);
            assert_eq!(fs[count - 1], want_info, "cut {cut}");
        }
    }
    assert!(!has(&log, 1, |k| matches!(
        k,
        EventKind::ProtocolError { .. }
    )));
    relay.stop().await;
}

#[tokio::test]
async fn header_split_at_every_offset_to_server() {
    split_everywhere(Direction::ToServer).await;
}

#[tokio::test]
async fn header_split_at_every_offset_to_client() {
    split_everywhere(Direction::ToClient).await;
}

/// A relayed raw pair as (`first`'s socket, the other side's socket), with
/// the relay and its log.
async fn pair_from(
    first: Side,
) -> (
    flatline::relay::Relay,
    flatline::events::EventLog,
    TcpStream,
    TcpStream,
) {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let (client, server) = raw_pair(&relay, &server_l).await;
    let (a, b) = match first {
        Side::Client => (client, server),
        Side::Server => (server, client),
    };
    (relay, log, a, b)
}

/// One side half-closes; the other direction keeps carrying data.
async fn half_close(first: Side) {
    let (relay, log, mut a, mut b) = pair_from(first).await;
    let mask = |s: Side| (s == Side::Client).then_some([1, 2, 3, 4]);
    let before = encode_frame(1, true, b"before fin", mask(first));
    a.write_all(&before).await.unwrap();
    a.shutdown().await.unwrap();
    let (got, r) = read_until_end(&mut b).await;
    r.unwrap();
    assert_eq!(got, before, "data before the FIN, then EOF");
    wait_event(
        &log,
        |e| matches!(e.kind, EventKind::FinSent { to } if to == first.other()),
    )
    .await;
    // The reverse direction still flows, several times.
    for i in 0..3 {
        let f = encode_frame(2, true, &vec![i; 5000], mask(first.other()));
        b.write_all(&f).await.unwrap();
        assert_eq!(read_exact(&mut a, f.len()).await, f);
    }
    assert!(!has(&log, 1, |k| matches!(k, EventKind::Closed { .. })));
    b.shutdown().await.unwrap();
    let (got, r) = read_until_end(&mut a).await;
    r.unwrap();
    assert!(got.is_empty());
    wait_closed(&log, 1).await;
    assert!(has(&log, 1, |k| *k == EventKind::Fin { from: first }));
    assert!(has(&log, 1, |k| *k
        == EventKind::Fin {
            from: first.other()
        }));
    assert!(has(&log, 1, |k| *k == EventKind::FinSent { to: first }));
    assert!(has(&log, 1, |k| matches!(
        k,
        EventKind::Closed { how: Ending::Fin }
    )));
    relay.stop().await;
}

#[tokio::test]
async fn half_close_from_client() {
    half_close(Side::Client).await;
}

#[tokio::test]
async fn half_close_from_server() {
    half_close(Side::Server).await;
}

/// One side resets; the other's read fails with ECONNRESET.
async fn rst(from: Side) {
    let (relay, log, a, mut b) = pair_from(from).await;
    reset(a);
    let (got, r) = read_until_end(&mut b).await;
    assert!(got.is_empty());
    assert_eq!(
        r.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    wait_closed(&log, 1).await;
    assert!(has(&log, 1, |k| *k == EventKind::Rst { from }));
    assert!(has(&log, 1, |k| *k == EventKind::RstSent { to: from.other() }));
    assert!(!has(&log, 1, |k| matches!(
        k,
        EventKind::Fin { .. } | EventKind::FinSent { .. }
    )));
    assert!(has(&log, 1, |k| matches!(
        k,
        EventKind::Closed { how: Ending::Reset }
    )));
    relay.stop().await;
}

#[tokio::test]
async fn rst_from_client_reaches_server() {
    rst(Side::Client).await;
}

#[tokio::test]
async fn rst_from_server_reaches_client() {
    rst(Side::Server).await;
}

#[tokio::test]
async fn relay_does_not_answer_pings() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let sock = TcpStream::connect(relay.addr()).await.unwrap();
    let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = Recorder {
        inner: sock,
        written: written.clone(),
    };
    let server = tokio::spawn(async move {
        let (mut s, _) = server_l.accept().await.unwrap();
        let (head, rest) = read_head(&mut s).await;
        s.write_all(&switching_for(&head)).await.unwrap();
        (s, head, rest)
    });
    let (mut ws, _) = tokio::time::timeout(T, tokio_tungstenite::client_async(relay.url(), rec))
        .await
        .unwrap()
        .unwrap();
    let (mut server, _head, rest) = server.await.unwrap();
    assert!(rest.is_empty());
    ws.send(Message::Ping(b"are you there".to_vec()))
        .await
        .unwrap();
    // The ping reaches the server unchanged…
    let sent = {
        let w = written.lock().unwrap();
        let end = w.windows(4).position(|x| x == b"\r\n\r\n").unwrap() + 4;
        w[end..].to_vec()
    };
    assert_eq!(sent.len(), 2 + 4 + 13);
    assert_eq!(read_exact(&mut server, sent.len()).await, sent);
    let f = &wait_frames(&log, 1, Direction::ToServer, 1).await[0];
    assert_eq!(
        (f.opcode, f.preview.as_str()),
        (Opcode::Ping, "are you there")
    );
    // …and nobody answers it: no pong within a generous window.
    let r = tokio::time::timeout(Duration::from_millis(500), ws.next()).await;
    assert!(r.is_err(), "the client got something: {r:?}");
    assert!(frames(&log, 1, Direction::ToClient).is_empty());
    // The connection still works after that.
    let f = encode_frame(1, true, b"late hello", None);
    server.write_all(&f).await.unwrap();
    let m = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m, Message::Text("late hello".into()));
    relay.stop().await;
}

/// A side that half-closed and then resets: the relay's writes toward it
/// fail. The other side must get the RST (as it would without the relay),
/// not a relay spinning on a dead socket.
async fn reset_after_half_close(first: Side) {
    let (relay, log, mut a, mut b) = pair_from(first).await;
    let mask = (first == Side::Server).then_some([1, 2, 3, 4]);
    a.shutdown().await.unwrap();
    let (_, r) = read_until_end(&mut b).await;
    r.unwrap();
    let f = encode_frame(2, true, &[5; 1000], mask);
    b.write_all(&f).await.unwrap();
    assert_eq!(read_exact(&mut a, f.len()).await, f);
    reset(a);
    // Keep writing toward the dead side until the relay resets us too.
    let got_reset = tokio::time::timeout(T, async {
        loop {
            // (b already read the FIN, so only its writes can tell.)
            if let Err(e) = b.write_all(&f).await {
                return e.kind();
            }
        }
    })
    .await
    .expect("the relay never passed the reset on");
    assert!(
        matches!(
            got_reset,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{got_reset:?}"
    );
    wait_closed(&log, 1).await;
    assert!(has(&log, 1, |k| *k == EventKind::Rst { from: first }));
    assert!(has(
        &log,
        1,
        |k| matches!(k, EventKind::WriteFailed { to, .. } if *to == first)
    ));
    assert!(has(&log, 1, |k| *k == EventKind::RstSent { to: first.other() }));
    assert!(has(&log, 1, |k| matches!(
        k,
        EventKind::Closed { how: Ending::Reset }
    )));
    relay.stop().await;
}

#[tokio::test]
async fn client_reset_after_half_close_reaches_server() {
    reset_after_half_close(Side::Client).await;
}

#[tokio::test]
async fn server_reset_after_half_close_reaches_client() {
    reset_after_half_close(Side::Server).await;
}
