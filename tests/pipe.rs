//! Socket-free tests of the relay's pipe (`relay::pipe`): a stream of
//! frames split at every offset, through each fault's stage, driven with a
//! simulated clock. No socket is opened: the pipe does no I/O.

use flatline::events::{Direction, Event, EventKind, EventLog, Opcode};
use flatline::faults::{pipe_rng, CutHow, FaultKind, Stage};
use flatline::frame::{encode_frame, FrameScanner, Scan};
use flatline::relay::pipe::{Ended, Next, Pipe};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MASK: Option<[u8; 4]> = Some([1, 2, 3, 4]);

/// Frames as a client sends them: text, ping, pong, a long text, close.
fn client_stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend(encode_frame(0x1, true, b"hello", MASK));
    s.extend(encode_frame(0x9, true, b"p", MASK));
    s.extend(encode_frame(0xA, true, b"q", MASK));
    s.extend(encode_frame(0x1, true, &[b'x'; 300], MASK));
    s.extend(encode_frame(0x8, true, &[0x03, 0xe8], MASK));
    s
}

/// The frames of `stream`, as byte ranges.
fn frames(stream: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut s = FrameScanner::new(Direction::ToServer);
    s.feed(stream, |f| match f {
        Scan::Start(p) => start = p,
        Scan::End(p) => out.push(start..p),
        _ => {}
    });
    out
}

fn stage_of(yaml: &str, dir: Direction) -> Box<dyn Stage> {
    let k: FaultKind = serde_yaml::from_str(yaml).expect("fault yaml");
    k.build()
        .expect("builds")
        .stage(dir)
        .expect("acts on this pipe")
}

fn pipe(dir: Direction) -> Pipe {
    Pipe::new(dir, 1, pipe_rng(7, 1, dir))
}

/// What reached the destination.
#[derive(Debug, Default, PartialEq)]
struct Wire {
    bytes: Vec<u8>,
    /// Sizes of the writes.
    writes: Vec<usize>,
    fin: bool,
    /// How many bytes had been written when the FIN went.
    fin_at: Option<usize>,
    rst: bool,
    cut: Option<CutHow>,
    statuses: Vec<u16>,
}

/// Do what the pipe asks until it has nothing more, advancing the clock to
/// its timers (a destination that takes everything).
fn drain(p: &mut Pipe, now: &mut Instant, wire: &mut Wire) {
    loop {
        match p.next(*now) {
            Next::Write(b) => {
                wire.bytes.extend_from_slice(b);
                wire.writes.push(b.len());
                let n = b.len();
                p.wrote(n, *now);
            }
            Next::Fin => {
                wire.fin = true;
                wire.fin_at = Some(wire.bytes.len());
            }
            Next::Rst => wire.rst = true,
            Next::Status(s) => wire.statuses.push(s),
            Next::Cut(_, how) => {
                wire.cut = Some(how);
                return;
            }
            Next::Idle => match p.next_timer() {
                Some(t) if t > *now => *now = t,
                _ => return,
            },
        }
    }
}

/// Feed `chunks`, forwarding what the fast path hands back and draining.
fn feed(p: &mut Pipe, chunks: &[&[u8]], now: &mut Instant, log: &EventLog) -> Wire {
    let mut wire = Wire::default();
    for c in chunks {
        if let Some(b) = p.on_chunk(c, *now, log) {
            wire.bytes.extend_from_slice(b);
            wire.writes.push(b.len());
        }
        drain(p, now, &mut wire);
    }
    wire
}

/// Every split of `stream` in two chunks.
fn splits(stream: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    (0..=stream.len()).map(move |i| stream.split_at(i))
}

fn kinds(log: &EventLog) -> Vec<EventKind> {
    log.events().into_iter().map(|e: Event| e.kind).collect()
}

#[test]
fn fast_path_hands_back_the_same_bytes() {
    let stream = client_stream();
    let mut p = pipe(Direction::ToServer);
    let log = EventLog::new();
    let out = p
        .on_chunk(&stream, Instant::now(), &log)
        .expect("forwarded");
    assert_eq!(out.as_ptr(), stream.as_ptr());
    assert_eq!(out.len(), stream.len());
    let frames = kinds(&log)
        .iter()
        .filter(|k| matches!(k, EventKind::Frame(_)))
        .count();
    assert_eq!(frames, 5);
}

#[test]
fn no_fault_forwards_every_split_unchanged() {
    let stream = client_stream();
    for (a, b) in splits(&stream) {
        let mut p = pipe(Direction::ToServer);
        let mut now = Instant::now();
        let w = feed(&mut p, &[a, b], &mut now, &EventLog::new());
        assert_eq!(w.bytes, stream);
    }
}

#[test]
fn a_partial_write_queues_the_rest_in_order() {
    let stream = client_stream();
    let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
    let out = p.on_chunk(&stream, now, &log).unwrap();
    p.unsent(&out[10..], now, &log);
    let mut w = Wire {
        bytes: stream[..10].to_vec(),
        ..Wire::default()
    };
    // While the rest is queued, new bytes queue behind it.
    let more = encode_frame(0x1, true, b"more", MASK);
    assert!(p.on_chunk(&more, now, &log).is_none());
    drain(&mut p, &mut now, &mut w);
    assert_eq!(w.bytes, [stream, more].concat());
}

#[test]
fn with_no_stage_a_backlog_stops_reading_until_written() {
    let stream = client_stream();
    let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
    assert!(p.wants_read());
    let out = p.on_chunk(&stream, now, &log).unwrap();
    p.unsent(&out[10..], now, &log);
    // The destination is full: the source waits (its bytes stay in the
    // kernel's buffers), as with a copying relay.
    assert!(!p.wants_read());
    let mut w = Wire::default();
    drain(&mut p, &mut now, &mut w);
    assert!(p.wants_read());
    assert_eq!(w.bytes, stream[10..]);
}

#[test]
fn a_delaying_stage_keeps_reading_while_it_queues() {
    let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
    p.add_stage(
        Arc::from("slow"),
        stage_of("kind: delay\nlatency: 1s", Direction::ToServer),
    );
    let frame = encode_frame(0x1, true, b"hello", MASK);
    for _ in 0..100 {
        assert!(p.on_chunk(&frame, now, &log).is_none());
        assert!(
            p.wants_read(),
            "a delay queues like a long link, up to the cap"
        );
    }
    let mut w = Wire::default();
    now += Duration::from_secs(2);
    drain(&mut p, &mut now, &mut w);
    assert_eq!(w.bytes, frame.repeat(100));
}

#[test]
fn partition_holds_everything_then_flushes_in_order() {
    let stream = client_stream();
    for (a, b) in splits(&stream) {
        let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
        let name: Arc<str> = Arc::from("cut");
        p.add_stage(
            name.clone(),
            stage_of("kind: partition", Direction::ToServer),
        );
        let mut w = feed(&mut p, &[a, b], &mut now, &log);
        p.on_src_end(false, now, &log);
        drain(&mut p, &mut now, &mut w);
        assert!(w.bytes.is_empty() && !w.fin);
        assert!(!p.wants_write(now) && p.next_timer().is_none());
        assert_eq!(p.remove_fault(&name, now, &log), Ended::Done);
        drain(&mut p, &mut now, &mut w);
        assert_eq!(w.bytes, stream);
        assert!(w.fin);
        let k = kinds(&log);
        assert!(k.iter().any(|k| matches!(k, EventKind::Held { .. })));
        assert!(k
            .iter()
            .any(|k| matches!(k, EventKind::Released { fin: true, .. })));
    }
}

#[test]
fn partition_reset_discards_what_it_held() {
    let stream = client_stream();
    let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
    let name: Arc<str> = Arc::from("cut");
    p.add_stage(
        name.clone(),
        stage_of("kind: partition\non_end: reset", Direction::ToServer),
    );
    let w = feed(&mut p, &[&stream], &mut now, &log);
    assert!(w.bytes.is_empty());
    assert_eq!(p.remove_fault(&name, now, &log), Ended::Reset);
    assert!(kinds(&log)
        .iter()
        .any(|k| matches!(k, EventKind::Discarded { bytes, .. } if *bytes == stream.len() as u64)));
}

#[test]
fn delay_releases_after_the_latency_in_order() {
    let stream = client_stream();
    for (a, b) in splits(&stream) {
        let (mut p, log) = (pipe(Direction::ToServer), EventLog::new());
        let start = Instant::now();
        let mut now = start;
        p.add_stage(
            Arc::from("slow"),
            stage_of("kind: delay\nlatency: 200ms", Direction::ToServer),
        );
        // Both chunks read at once: both leave 200 ms later, in order.
        assert!(p.on_chunk(a, now, &log).is_none());
        assert!(p.on_chunk(b, now, &log).is_none());
        let mut w = Wire::default();
        drain(&mut p, &mut now, &mut w);
        assert_eq!(w.bytes, stream);
        assert_eq!(now - start, Duration::from_millis(200));
    }
}

#[test]
fn throttle_and_slice_keep_bytes_in_small_writes() {
    let stream = client_stream();
    for (yaml, most) in [
        ("kind: throttle\nrate: 1000B/s", 10),
        ("kind: slice\nsize: 1..7\ngap: 1ms", 7),
    ] {
        for (a, b) in splits(&stream) {
            let (mut p, log, mut now) =
                (pipe(Direction::ToServer), EventLog::new(), Instant::now());
            p.add_stage(Arc::from("f"), stage_of(yaml, Direction::ToServer));
            let w = feed(&mut p, &[a, b], &mut now, &log);
            assert_eq!(w.bytes, stream, "{yaml}");
            assert!(
                w.writes.iter().all(|n| *n <= most),
                "{yaml}: {:?}",
                w.writes
            );
        }
    }
}

#[test]
fn drop_removes_whole_matching_frames() {
    let stream = client_stream();
    let f = frames(&stream);
    let expected = [&stream[..f[2].start], &stream[f[2].end..]].concat();
    for (a, b) in splits(&stream) {
        let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
        p.add_stage(
            Arc::from("f"),
            stage_of("kind: drop\nmatch: {opcode: pong}", Direction::ToServer),
        );
        let w = feed(&mut p, &[a, b], &mut now, &log);
        assert_eq!(w.bytes, expected);
        let dropped: Vec<_> = kinds(&log)
            .into_iter()
            .filter(|k| {
                matches!(
                    k,
                    EventKind::Dropped {
                        opcode: Opcode::Pong,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(dropped.len(), 1);
    }
}

#[test]
fn corrupt_flips_the_first_payload_byte_of_matching_frames() {
    let stream = client_stream();
    let f = frames(&stream);
    let mut expected = stream.clone();
    // The first frame: 2 header bytes, 4 mask bytes, then the payload.
    expected[f[0].start + 6] ^= 0x80;
    for (a, b) in splits(&stream) {
        let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
        p.add_stage(
            Arc::from("f"),
            stage_of("kind: corrupt\nmatch: {text: hello}", Direction::ToServer),
        );
        let w = feed(&mut p, &[a, b], &mut now, &log);
        assert_eq!(w.bytes, expected);
    }
}

#[test]
fn limit_cuts_after_its_budget_even_inside_a_frame() {
    let stream = client_stream();
    for (a, b) in splits(&stream) {
        let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
        p.add_stage(
            Arc::from("f"),
            stage_of("kind: limit\nbytes: 20\nthen: fin", Direction::ToServer),
        );
        let w = feed(&mut p, &[a, b], &mut now, &log);
        assert_eq!(w.bytes, stream[..20]);
        assert_eq!(w.cut, Some(CutHow::Fin));
    }
}

#[test]
fn lose_fin_holds_from_the_close_frame_for_good() {
    let stream = client_stream();
    let f = frames(&stream);
    for (a, b) in splits(&stream) {
        let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
        let name: Arc<str> = Arc::from("lost");
        p.add_stage(
            name.clone(),
            stage_of("kind: lose_fin\nfrom: client", Direction::ToServer),
        );
        let mut w = feed(&mut p, &[a, b], &mut now, &log);
        p.on_src_end(false, now, &log);
        drain(&mut p, &mut now, &mut w);
        // Bytes read before the close frame was seen may pass; the whole
        // close frame never does.
        assert!(stream.starts_with(&w.bytes));
        assert!(w.bytes.len() < f[4].end, "{}", w.bytes.len());
        if a.len() <= f[4].start {
            assert!(w.bytes.len() >= a.len());
        }
        assert!(!w.fin);
        assert_eq!(p.remove_fault(&name, now, &log), Ended::Done);
        let before = w.bytes.len();
        drain(&mut p, &mut now, &mut w);
        assert_eq!(w.bytes.len(), before);
        assert!(!w.fin);
        // New bytes stay held too (the fast path is not taken).
        assert!(p.on_chunk(b"late", now, &log).is_none());
    }
}

#[test]
fn the_response_status_follows_the_head_bytes() {
    let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    let frame = encode_frame(0x1, true, b"hi", None);
    let stream = [&head[..], &frame[..]].concat();
    for (a, b) in splits(&stream) {
        let (mut p, log, mut now) = (pipe(Direction::ToClient), EventLog::new(), Instant::now());
        let w = feed(&mut p, &[a, b], &mut now, &log);
        assert_eq!(w.bytes, stream);
        assert_eq!(w.statuses, [101]);
        assert!(kinds(&log).iter().any(|k| matches!(k, EventKind::Frame(_))));
    }
}

#[test]
fn injections_wait_for_a_frame_boundary() {
    let stream = client_stream();
    let f = frames(&stream);
    let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
    // Mid-frame: the injection goes behind the frame in progress.
    let cut = f[3].start + 50;
    let mut w = feed(&mut p, &[&stream[..cut]], &mut now, &log);
    p.inject(b"INJ".to_vec(), now, &log);
    drain(&mut p, &mut now, &mut w);
    assert_eq!(w.bytes, stream[..cut]);
    let rest = feed(&mut p, &[&stream[cut..]], &mut now, &log);
    w.bytes.extend(rest.bytes);
    let at = f[3].end;
    assert_eq!(w.bytes, [&stream[..at], b"INJ", &stream[at..]].concat());
}

#[test]
fn a_closed_destination_loses_bytes_and_logs_them() {
    let stream = client_stream();
    let (mut p, log, now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
    assert!(p.close_dst("gone", &log));
    assert!(p.on_chunk(&stream, now, &log).is_none());
    p.on_src_end(false, now, &log);
    assert!(p.finished());
    p.discard("closed", &log);
    assert!(kinds(&log)
        .iter()
        .any(|k| matches!(k, EventKind::Discarded { bytes, .. } if *bytes == stream.len() as u64)));
}

/// The frames of `bytes` toward the server, with their unmasked previews.
fn scanned(bytes: &[u8]) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let (mut start, mut preview) = (0, String::new());
    FrameScanner::new(Direction::ToServer).feed(bytes, |f| match f {
        Scan::Start(p) => start = p,
        Scan::Info(_, i) => preview = i.info().preview,
        Scan::End(p) => out.push((start..p, std::mem::take(&mut preview))),
        Scan::Violation(v) => panic!("{v}"),
    });
    out
}

#[test]
fn replace_swaps_a_whole_matching_frame_at_every_split() {
    let stream = client_stream();
    let f = frames(&stream);
    for (a, b) in splits(&stream) {
        let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
        p.add_stage(
            Arc::from("f"),
            stage_of(
                "kind: replace\nmatch: {text: hello}\nwith: bye",
                Direction::ToServer,
            ),
        );
        let w = feed(&mut p, &[a, b], &mut now, &log);
        let out = scanned(&w.bytes);
        assert_eq!(out.len(), 5);
        assert_eq!(out[0].1, "bye");
        assert_eq!(w.bytes[out[0].0.end..], stream[f[0].end..]);
    }
}

#[test]
fn inject_goes_in_at_a_frame_boundary_at_every_split() {
    let stream = client_stream();
    for (a, b) in splits(&stream) {
        let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
        p.opened();
        p.add_stage(
            Arc::from("f"),
            stage_of(
                "kind: inject\nside: server\ntext: INJECTED",
                Direction::ToServer,
            ),
        );
        let mut w = feed(&mut p, &[a], &mut now, &log);
        p.tick(now, &log);
        let rest = feed(&mut p, &[b], &mut now, &log);
        w.bytes.extend(rest.bytes);
        drain(&mut p, &mut now, &mut w);
        let out = scanned(&w.bytes);
        assert_eq!(out.len(), 6);
        let (range, _) = out.iter().find(|(_, t)| t == "INJECTED").expect("injected");
        let without = [&w.bytes[..range.start], &w.bytes[range.end..]].concat();
        assert_eq!(without, stream);
        assert!(kinds(&log)
            .iter()
            .any(|k| matches!(k, EventKind::Injected { .. })));
    }
}

#[test]
fn inject_waits_for_the_handshake() {
    let (mut p, log, now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
    p.add_stage(
        Arc::from("f"),
        stage_of("kind: inject\nside: server\ntext: hi", Direction::ToServer),
    );
    assert_eq!(p.next_timer(), None);
    p.tick(now, &log);
    assert_eq!(p.next(now), Next::Idle);
    p.opened();
    assert!(p.next_timer().is_some());
}

#[test]
fn a_fin_action_waits_for_the_frame_boundary_at_every_split() {
    let stream = client_stream();
    let f = frames(&stream);
    for (a, b) in splits(&stream) {
        let (mut p, log, mut now) = (pipe(Direction::ToServer), EventLog::new(), Instant::now());
        let mut w = feed(&mut p, &[a], &mut now, &log);
        p.fin_at_boundary(now, &log);
        drain(&mut p, &mut now, &mut w);
        // The FIN goes out after the frame in progress, never inside it.
        let end = f.iter().map(|r| r.end).find(|e| *e >= a.len()).unwrap_or(0);
        if a.is_empty() || f.iter().any(|r| r.end == a.len()) {
            assert!(w.fin, "at {}", a.len());
            assert_eq!(w.bytes, a);
            continue;
        }
        assert!(!w.fin, "at {}", a.len());
        let rest = feed(&mut p, &[b], &mut now, &log);
        assert_eq!(rest.fin_at.map(|n| w.bytes.len() + n), Some(end));
        assert_eq!([w.bytes, rest.bytes].concat()[..end], stream[..end]);
    }
}
