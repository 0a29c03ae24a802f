//! The scanner's tests: findings, offsets, violations, and the in-place
//! path against the byte-by-byte one.

use super::*;

fn scan_all(dir: Direction, chunks: &[&[u8]]) -> (Vec<FrameInfo>, Vec<String>) {
    let mut s = FrameScanner::new(dir);
    let (mut infos, mut v) = (vec![], vec![]);
    for c in chunks {
        s.feed(c, |e| match e {
            Scan::Info(_, i) => infos.push(i.info()),
            Scan::Violation(r) => v.push(r),
            _ => {}
        });
    }
    (infos, v)
}

#[test]
fn split_at_every_offset() {
    let mut stream = encode_frame(1, true, b"hello", Some([1, 2, 3, 4]));
    stream.extend(encode_frame(9, true, b"", Some([9, 9, 9, 9])));
    stream.extend(encode_frame(2, true, &vec![7u8; 70000], Some([5, 6, 7, 8])));
    stream.extend(encode_frame(
        8,
        true,
        &close_payload(1000, "bye"),
        Some([0, 1, 0, 1]),
    ));
    for cut in 0..=stream.len().min(200) {
        let (a, b) = stream.split_at(cut);
        let (infos, v) = scan_all(Direction::ToServer, &[a, b]);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(infos.len(), 4, "cut {cut}");
        assert_eq!(infos[0].preview, "hello");
        assert_eq!(infos[1].opcode, Opcode::Ping);
        assert_eq!(infos[2].len, 70000);
        assert_eq!(infos[3].close_code, Some(1000));
        assert_eq!(infos[3].close_reason.as_deref(), Some("bye"));
    }
    // One byte at a time.
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let (infos, _) = scan_all(Direction::ToServer, &bytes);
    assert_eq!(infos.len(), 4);
}

/// Every finding of `stream` fed in pieces cut at `cuts`, with absolute
/// offsets (an `Info`'s offset depends on the cuts: it is left out).
fn findings(dir: Direction, stream: &[u8], cuts: &[usize]) -> Vec<Scan> {
    let mut s = FrameScanner::new(dir);
    let mut out = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain([&stream.len()]) {
        s.feed(&stream[from..to], |e| {
            out.push(match e.owned() {
                Scan::Start(p) => Scan::Start(from + p),
                Scan::End(p) => Scan::End(from + p),
                Scan::Info(_, i) => Scan::Info(0, i),
                v => v,
            })
        });
        from = to;
    }
    out
}

#[test]
fn whole_frames_in_a_chunk_are_found_as_byte_by_byte() {
    let long_text = "x".repeat(300);
    let mut stream = Vec::new();
    for (op, fin, payload, mask) in [
        (1, true, b"hello".to_vec(), Some([1, 2, 3, 4])),
        (2, true, vec![7; 64], Some([9, 8, 7, 6])),
        (1, false, long_text.as_bytes().to_vec(), Some([5, 6, 7, 8])),
        (9, true, vec![], Some([0; 4])),
        (0, true, b"end".to_vec(), Some([1, 1, 1, 1])),
        (2, true, vec![3; 70000], Some([2, 2, 2, 2])),
        // Violations: unmasked toward the server, reserved opcode.
        (1, true, b"plain".to_vec(), None),
        (3, true, vec![], Some([4; 4])),
        (8, true, close_payload(1001, "away"), Some([0, 1, 0, 1])),
    ] {
        stream.extend(encode_frame(op, fin, &payload, mask));
    }
    let dir = Direction::ToServer;
    let whole = findings(dir, &stream, &[]);
    let bytes: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(whole, findings(dir, &stream, &bytes));
    assert_eq!(
        whole.iter().filter(|s| matches!(s, Scan::Info(..))).count(),
        9
    );
    assert_eq!(
        whole
            .iter()
            .filter(|s| matches!(s, Scan::Violation(_)))
            .count(),
        2
    );
    // Cuts at pseudo-random places (a fixed sequence).
    let mut x = 7u64;
    for _ in 0..50 {
        let mut cuts: Vec<usize> = (0..4)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) as usize % stream.len()
            })
            .collect();
        cuts.sort();
        assert_eq!(whole, findings(dir, &stream, &cuts), "cuts {cuts:?}");
    }
}

#[test]
fn offsets_bound_frames() {
    let f1 = encode_frame(1, true, b"ab", None);
    let f2 = encode_frame(1, true, b"cd", None);
    let stream = [f1.clone(), f2].concat();
    let mut s = FrameScanner::new(Direction::ToClient);
    let mut ev = vec![];
    s.feed(&stream, |e| ev.push(e.owned()));
    let starts: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Scan::Start(p) => Some(*p),
            _ => None,
        })
        .collect();
    let ends: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Scan::End(p) => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![0, f1.len()]);
    assert_eq!(ends, vec![f1.len(), stream.len()]);
}

#[test]
fn violations_are_reported() {
    let (_, v) = scan_all(Direction::ToServer, &[&[0x83, 0x80, 0, 0, 0, 0]]);
    assert!(v.iter().any(|r| r.contains("reserved opcode")), "{v:?}");
    let (_, v) = scan_all(Direction::ToServer, &[&encode_frame(1, true, b"x", None)]);
    assert!(v.iter().any(|r| r.contains("unmasked")), "{v:?}");
    let (_, v) = scan_all(Direction::ToClient, &[&encode_frame(9, false, b"x", None)]);
    assert!(v.iter().any(|r| r.contains("fragmented ping")), "{v:?}");
}
