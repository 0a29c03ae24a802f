//! The log's retention: folding keeps transcripts, streaming keeps nothing,
//! the sink gets everything.

use super::*;
use crate::events::{Direction, FrameInfo, Side};
use crate::report::{Report, RunSettings};

fn frame(dir: Direction, opcode: Opcode, preview: &str) -> EventKind {
    EventKind::Frame(FrameInfo {
        dir,
        opcode,
        fin: true,
        rsv: 0,
        masked: dir == Direction::ToServer,
        len: preview.len() as u64,
        preview: preview.into(),
        close_code: (opcode == Opcode::Close).then_some(1000),
        close_reason: None,
        dropped: false,
    })
}

/// Two connections: pings, pongs and counters, a fault on one of them,
/// close frames, and the run stopping.
fn script() -> Vec<Event> {
    let mut v = Vec::new();
    let mut t = 0u64;
    let mut at = |conn: Option<u32>, kind: EventKind| {
        t += 7;
        v.push(Event {
            t: Duration::from_millis(t),
            conn,
            kind,
        });
    };
    for n in [1, 2] {
        at(Some(n), EventKind::Accept { peer: "p".into() });
        at(Some(n), EventKind::Open);
    }
    for i in 0..400u32 {
        let n = 1 + i % 2;
        at(Some(n), frame(Direction::ToServer, Opcode::Ping, "hb"));
        at(Some(n), frame(Direction::ToClient, Opcode::Pong, "hb"));
        at(
            Some(n),
            frame(Direction::ToClient, Opcode::Text, &format!("tick {i}")),
        );
        if i % 50 == 0 {
            at(Some(n), frame(Direction::ToServer, Opcode::Binary, "\u{1}"));
        }
        if i == 150 {
            at(
                None,
                EventKind::FaultStart {
                    fault: "f".into(),
                    conns: vec![1],
                },
            );
        }
        if i == 250 {
            at(
                None,
                EventKind::FaultEnd {
                    fault: "f".into(),
                    conns: vec![1],
                },
            );
        }
    }
    at(Some(2), frame(Direction::ToServer, Opcode::Close, ""));
    at(Some(2), EventKind::Fin { from: Side::Client });
    at(
        Some(2),
        EventKind::Closed {
            how: super::super::Ending::Fin,
        },
    );
    at(None, EventKind::Stopping);
    v
}

fn emit_all(log: &EventLog, events: &[Event]) {
    let conns = [log.for_conn(1), log.for_conn(2)];
    for e in events {
        match e.conn {
            Some(n) => conns[n as usize - 1].push(e.clone()),
            None => log.push(e.clone()),
        }
    }
}

fn transcript(events: Vec<Event>) -> Vec<String> {
    let r = Report {
        scenario: "t".into(),
        seed: 0,
        passed: true,
        duration: Duration::from_secs(10),
        expectations: Vec::new(),
        warnings: Vec::new(),
        commands: Vec::new(),
        events,
        connections: Vec::new(),
        scenario_spec: None,
        settings: RunSettings::default(),
    };
    r.transcript_with(Some(Duration::from_millis(100))).timeline
}

#[test]
fn folding_keeps_the_transcript_and_bounds_the_log() {
    let events = script();
    let full = EventLog::new();
    emit_all(&full, &events);
    let (folded, mut feed) = EventLog::with_feed(Retention::Fold { keep: Vec::new() }, None);
    emit_all(&folded, &events);
    assert_eq!(full.len(), events.len());
    assert!(
        folded.len() < 40,
        "folded log keeps {} events",
        folded.len()
    );
    assert_eq!(transcript(folded.events()), transcript(full.events()));
    // Every event reached the feed, frames included.
    let mut fed = 0;
    while feed.try_recv().is_ok() {
        fed += 1;
    }
    assert_eq!(fed, events.len());
    let s = folded.summaries();
    assert_eq!(s[0].to_server.opcodes.get("ping"), Some(&200));
    assert_eq!(s[1].to_client.frames, 400);
    assert_eq!(
        s[1].to_client.classes.get("server→client text \"tick #\""),
        Some(&200)
    );
}

#[test]
fn keep_matchers_keep_frames_one_by_one() {
    let events = script();
    let m =
        crate::matcher::Matcher::new(&serde_yaml::from_str("{opcode: ping}").expect("match yaml"))
            .expect("matcher");
    let log = EventLog::with(Retention::Fold { keep: vec![m] }, None);
    emit_all(&log, &events);
    let pings = log
        .events()
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Frame(f) if f.opcode == Opcode::Ping))
        .count();
    assert_eq!(pings, 400);
}

#[test]
fn streaming_keeps_nothing_and_forgets_closed_connections() {
    let log = EventLog::with(Retention::Stream, None);
    emit_all(&log, &script());
    assert!(log.is_empty());
    let s = log.summaries();
    assert_eq!(s.len(), 1, "only #1 is still open");
    assert_eq!(s[0].to_server.frames, 200 + 8);
    // #2's counters left with it, its summary is there once for the taking.
    let closed = log.closed_summary(2).expect("#2 closed");
    assert_eq!(
        closed.to_server.frames,
        200 + 1,
        "pings and the close frame"
    );
    assert_eq!(closed.to_client.frames, 400, "pongs and ticks");
    assert_eq!(log.closed_summary(2), None, "taken");
    assert_eq!(log.closed_summary(1), None, "still open");
}

#[test]
fn streaming_keeps_only_the_last_closed_summaries() {
    let log = EventLog::with(Retention::Stream, None);
    let n = crate::events::summary::RECENT_CLOSED as u32 + 10;
    for c in 1..=n {
        log.push(Event {
            t: Duration::ZERO,
            conn: Some(c),
            kind: frame(Direction::ToServer, Opcode::Text, "hi"),
        });
        log.push(Event {
            t: Duration::ZERO,
            conn: Some(c),
            kind: EventKind::Closed {
                how: super::super::Ending::Fin,
            },
        });
    }
    assert!(log.summaries().is_empty(), "no open connection left");
    assert_eq!(log.closed_summary(10), None, "dropped, oldest first");
    let last = log.closed_summary(n).expect("the last one");
    assert_eq!(
        (last.to_server.frames, last.to_server.payload_bytes),
        (1, 2)
    );
    assert!(log.closed_summary(11).is_some(), "the oldest kept");
}

#[test]
fn the_sink_gets_every_event() {
    let dir = std::env::temp_dir().join(format!("flatline-sink-{}", std::process::id()));
    let log = EventLog::with(
        Retention::Stream,
        Some(EventSink::append(&dir).expect("sink")),
    );
    let events = script();
    emit_all(&log, &events);
    log.finish_sink().expect("flushed");
    let text = std::fs::read_to_string(&dir).expect("written");
    let _ = std::fs::remove_file(&dir);
    assert_eq!(text.lines().count(), events.len());
    let first: Event = serde_json::from_str(text.lines().next().unwrap_or("")).expect("json");
    assert_eq!(first, events[0]);
}

fn lifecycle(e: &Event) -> bool {
    !matches!(e.kind, EventKind::Frame(_) | EventKind::Frames(_))
}

#[test]
fn a_watcher_gets_only_what_it_wants_in_order_and_misses_nothing() {
    for retention in [Retention::Stream, Retention::Fold { keep: Vec::new() }] {
        let log = EventLog::with(retention, None);
        let events = script();
        let (first, rest) = events.split_at(events.len() / 2);
        emit_all(&log, first);
        let (mut seen, mut rx) = log.snapshot_and_watch(lifecycle);
        seen.retain(lifecycle);
        emit_all(&log, rest);
        let mut woken = 0;
        while let Ok(e) = rx.try_recv() {
            assert!(lifecycle(&e), "a frame reached the watcher: {e:?}");
            seen.push(e);
            woken += 1;
        }
        let want: Vec<Event> = events.iter().filter(|e| lifecycle(e)).cloned().collect();
        let kept = !matches!(log.shared.retention, Retention::Stream);
        if kept {
            // The snapshot held the first half's, the watcher the rest.
            assert_eq!(seen, want);
        } else {
            // Streaming keeps nothing: the watcher alone saw the second half.
            let second: Vec<Event> = rest.iter().filter(|e| lifecycle(e)).cloned().collect();
            assert_eq!(seen, second);
        }
        assert!(
            woken > 0 && woken < rest.len() / 10,
            "{woken} of {}",
            rest.len()
        );
    }
}
