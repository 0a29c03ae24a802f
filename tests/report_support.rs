//! Hand-written event logs shared by the report tests (included with
//! `#[path = "report_support.rs"] mod support;`). It has no tests of its own.
#![allow(dead_code)]

use flatline::events::{Direction, Ending, Event, EventKind, FrameInfo, Opcode, Side};
use flatline::expect::Verdict;
use flatline::report::{CommandOutcome, Report, RunSettings};
use flatline::scenario::Scenario;
use std::time::Duration;

/// The scenario the hand-written log pretends to have run.
pub const SILENT_DROP_YAML: &str = r#"
name: silent-drop
description: >
  Three seconds after the first connection opens the network silently stops
  carrying anything, in both directions, for 15 s. A client with heartbeat
  detection notices within its timeout and reconnects after the network heals.
duration: 40s
seed: 7
faults:
  - name: outage
    kind: partition
    at: open#1 + 3s
    duration: 15s
expect:
  - name: client notices the dead link
    kind: detects
    after: outage
    within: 12s
  - kind: reconnects
    after: outage.end
    within: 10s
  - name: re-subscribes
    kind: sends
    match: {opcode: text, text: subscribe}
    after: outage.end
    within: 10s
  - kind: heartbeat
    match: {opcode: text, text: ping}
    every: 1s
    tolerance: 500ms
    after: outage.end
    for: 5s
  - kind: closes_with
    code: 1000
"#;

/// How a variant of the log differs from the base one.
#[derive(Debug, Clone, Default)]
pub struct Variation {
    /// Delay of the client's first connection (client start-up time); every
    /// time from accept#1 on is shifted by it.
    pub startup: Duration,
    /// Per-event jitter in ms, cycled over the events after accept#1.
    pub jitter_ms: Vec<i64>,
    /// One more heartbeat (ping + pong) on connection 2.
    pub extra_heartbeat: bool,
    /// Added to every port number.
    pub port_offset: u16,
}

impl Variation {
    /// Jitter of ±30 ms, one extra heartbeat, other ports, a slower client start.
    pub fn jittery() -> Variation {
        Variation {
            startup: Duration::from_millis(260),
            jitter_ms: vec![30, -30, 17, -23, 5, 0, -11, 29, -30, 12, 30, -7],
            extra_heartbeat: true,
            port_offset: 1111,
        }
    }
}

struct Log {
    events: Vec<(i64, Option<u32>, EventKind)>,
}

impl Log {
    fn at(&mut self, rel_ms: i64, conn: Option<u32>, kind: EventKind) {
        self.events.push((rel_ms, conn, kind));
    }
    fn frame(&mut self, rel_ms: i64, conn: u32, dir: Direction, opcode: Opcode, text: &str) {
        let (close_code, close_reason, preview) = if opcode == Opcode::Close {
            let (code, reason) = text.split_once(' ').unwrap_or((text, ""));
            (code.parse().ok(), Some(reason.to_string()), String::new())
        } else {
            (None, None, text.to_string())
        };
        let len = if opcode == Opcode::Close {
            2 + close_reason.as_ref().map_or(0, |r| r.len()) as u64
        } else {
            text.len() as u64
        };
        self.at(
            rel_ms,
            Some(conn),
            EventKind::Frame(FrameInfo {
                dir,
                opcode,
                fin: true,
                rsv: 0,
                masked: dir == Direction::ToServer,
                len,
                preview,
                close_code,
                close_reason,
                dropped: false,
            }),
        );
    }
    fn text(&mut self, rel_ms: i64, conn: u32, dir: Direction, text: &str) {
        self.frame(rel_ms, conn, dir, Opcode::Text, text)
    }
}

const UP: Direction = Direction::ToServer;
const DOWN: Direction = Direction::ToClient;

/// A realistic silent-drop run. Times below are in ms relative to the
/// client's first TCP connection (accept#1), which the base run has at
/// t = 100 ms. Every base time is at least 30 ms away from a 50 ms rounding
/// boundary, as real heartbeat schedules relative to the connection are.
pub fn silent_drop_events(v: &Variation) -> Vec<Event> {
    let mut l = Log { events: Vec::new() };
    let port = |p: u16| p + v.port_offset;
    let tick = |seq: u32| format!("{{\"type\":\"tick\",\"seq\":{seq},\"price\":101.{seq}}}");
    let mut seq = 0;
    // Connection 1 opens and subscribes.
    l.at(
        0,
        Some(1),
        EventKind::Accept {
            peer: format!("127.0.0.1:{}", port(40122)),
        },
    );
    l.at(
        1,
        Some(1),
        EventKind::Request {
            path: "/feed?v=2".into(),
            extensions_removed: true,
        },
    );
    l.at(3, Some(1), EventKind::UpstreamConnected);
    l.at(10, Some(1), EventKind::Open);
    l.text(15, 1, UP, r#"{"op":"subscribe","channel":"ticker"}"#);
    l.text(18, 1, DOWN, r#"{"op":"subscribed","channel":"ticker"}"#);
    // Heartbeats every second, server data pushes every second.
    for k in 0..3 {
        seq += 1;
        l.text(610 + k * 1000, 1, DOWN, &tick(seq));
        if k < 2 {
            l.text(1300 + k * 1000, 1, UP, "ping");
            l.text(1302 + k * 1000, 1, DOWN, "pong");
        }
    }
    // The partition starts at open#1 + 3s: nothing arrives any more.
    l.at(
        3010,
        None,
        EventKind::FaultStart {
            fault: "outage".into(),
            conns: vec![1],
        },
    );
    l.text(3300, 1, UP, "ping");
    l.at(
        3300,
        Some(1),
        EventKind::Held {
            fault: "outage".into(),
            dir: UP,
            what: "6 bytes".into(),
        },
    );
    seq += 1;
    l.text(3610, 1, DOWN, &tick(seq));
    l.at(
        3610,
        Some(1),
        EventKind::Held {
            fault: "outage".into(),
            dir: DOWN,
            what: "40 bytes".into(),
        },
    );
    for k in 1..3 {
        l.text(3300 + k * 1000, 1, UP, "ping");
        seq += 1;
        l.text(3610 + k * 1000, 1, DOWN, &tick(seq));
    }
    // The client notices: no pong for three pings. Close frame and FIN, both held.
    l.frame(6300, 1, UP, Opcode::Close, "4000 heartbeat timeout");
    l.at(6301, Some(1), EventKind::Fin { from: Side::Client });
    // It reconnects at once; the new connection is caught by the partition.
    l.at(
        6400,
        Some(2),
        EventKind::Accept {
            peer: format!("127.0.0.1:{}", port(40188)),
        },
    );
    l.at(
        6400,
        Some(2),
        EventKind::FaultJoin {
            fault: "outage".into(),
        },
    );
    l.at(
        6401,
        Some(2),
        EventKind::Request {
            path: "/feed?v=2".into(),
            extensions_removed: true,
        },
    );
    l.at(6403, Some(2), EventKind::UpstreamConnected);
    l.at(
        6403,
        Some(2),
        EventKind::Held {
            fault: "outage".into(),
            dir: UP,
            what: "231 bytes".into(),
        },
    );
    // The server keeps pushing on #1 (it never got the FIN).
    for k in 0..12 {
        seq += 1;
        l.text(6610 + k * 1000, 1, DOWN, &tick(seq));
    }
    // The network heals: held data is delivered in order.
    l.at(
        18010,
        None,
        EventKind::FaultEnd {
            fault: "outage".into(),
            conns: vec![1, 2],
        },
    );
    l.at(
        18010,
        Some(1),
        EventKind::Released {
            fault: "outage".into(),
            dir: UP,
            bytes: 53,
            fin: true,
        },
    );
    l.at(
        18010,
        Some(1),
        EventKind::Released {
            fault: "outage".into(),
            dir: DOWN,
            bytes: 602,
            fin: false,
        },
    );
    l.at(18011, Some(1), EventKind::FinSent { to: Side::Server });
    l.at(
        18011,
        Some(2),
        EventKind::Released {
            fault: "outage".into(),
            dir: UP,
            bytes: 231,
            fin: false,
        },
    );
    l.frame(18012, 1, DOWN, Opcode::Close, "4000 heartbeat timeout");
    l.at(18013, Some(1), EventKind::Fin { from: Side::Server });
    l.at(18013, Some(1), EventKind::FinSent { to: Side::Client });
    l.at(18014, Some(1), EventKind::Closed { how: Ending::Fin });
    l.at(18015, Some(2), EventKind::Open);
    l.text(18020, 2, UP, r#"{"op":"subscribe","channel":"ticker"}"#);
    l.text(18022, 2, DOWN, r#"{"op":"subscribed","channel":"ticker"}"#);
    for k in 0..5 {
        seq += 1;
        l.text(18610 + k * 1000, 2, DOWN, &tick(seq));
        if k < 4 {
            l.text(19300 + k * 1000, 2, UP, "ping");
            l.text(19302 + k * 1000, 2, DOWN, "pong");
        }
    }
    if v.extra_heartbeat {
        l.text(22900, 2, UP, "ping");
        l.text(22902, 2, DOWN, "pong");
    }
    // Every verdict is known: the run stops and the client closes politely.
    l.at(23010, None, EventKind::Stopping);
    l.frame(23015, 2, UP, Opcode::Close, "1001 going away");
    l.at(23016, Some(2), EventKind::Fin { from: Side::Client });
    l.at(23016, Some(2), EventKind::FinSent { to: Side::Server });
    l.frame(23018, 2, DOWN, Opcode::Close, "1001 going away");
    l.at(23019, Some(2), EventKind::Fin { from: Side::Server });
    l.at(23019, Some(2), EventKind::FinSent { to: Side::Client });
    l.at(23020, Some(2), EventKind::Closed { how: Ending::Fin });

    let origin = 100 + v.startup.as_millis() as i64;
    let mut out = vec![Event {
        t: Duration::ZERO,
        conn: None,
        kind: EventKind::Listening {
            addr: format!("127.0.0.1:{}", port(38555)),
        },
    }];
    // Keep the log's order (the relay's order); jitter every event but the anchor.
    l.events.sort_by_key(|(t, _, _)| *t);
    for (i, (rel, conn, kind)) in l.events.into_iter().enumerate() {
        let j = if i == 0 || v.jitter_ms.is_empty() {
            0
        } else {
            v.jitter_ms[i % v.jitter_ms.len()]
        };
        let ms = (origin + rel + j).max(0) as u64;
        out.push(Event {
            t: Duration::from_millis(ms),
            conn,
            kind,
        });
    }
    out
}

fn verdict(
    name: &str,
    kind: &str,
    passed: bool,
    observed_ms: Option<u64>,
    detail: &str,
) -> Verdict {
    Verdict {
        name: name.into(),
        kind: kind.into(),
        passed,
        observed: observed_ms.map(Duration::from_millis),
        detail: detail.into(),
    }
}

/// The verdicts of the silent-drop run (the close-code check fails: the
/// client closed with 4000).
pub fn silent_drop_verdicts(v: &Variation) -> Vec<Verdict> {
    let shift = v.startup.as_millis() as u64;
    let at = |ms: u64| format!("{:.3}s", (ms + shift) as f64 / 1000.0);
    vec![
        verdict(
            "client notices the dead link",
            "detects",
            true,
            Some(3290),
            &format!("client gave up #1 at {} (close frame 4000), 3.290s after outage started at {}", at(6400), at(3110)),
        ),
        verdict(
            "reconnects-2",
            "reconnects",
            true,
            Some(5),
            &format!("#2 opened at {}, 0.005s after outage.end", at(18115)),
        ),
        verdict(
            "re-subscribes",
            "sends",
            true,
            Some(10),
            &format!("client sent 1 matching frame on #2 at {}", at(18120)),
        ),
        verdict(
            "heartbeat-4",
            "heartbeat",
            true,
            Some(1000),
            "longest gap between client heartbeats was 1.000s on #2 (allowed 1.500s)",
        ),
        verdict(
            "closes_with-5",
            "closes_with",
            false,
            None,
            "client closed #1 with code 4000 \"heartbeat timeout\", expected 1000 (#2's close 1001 came after the run started stopping and does not count)",
        ),
    ]
}

/// The whole report of the silent-drop run.
pub fn silent_drop_report(v: &Variation) -> Report {
    let scenario: Scenario = serde_yaml::from_str(SILENT_DROP_YAML).expect("test scenario parses");
    let events = silent_drop_events(v);
    let duration = events
        .last()
        .map(|e| e.t + Duration::from_millis(40))
        .unwrap_or_default();
    let expectations = silent_drop_verdicts(v);
    Report {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        passed: expectations.iter().all(|e| e.passed),
        duration,
        expectations,
        warnings: vec![
            "`closes_with-5` judges only close frames sent before the run started stopping".into(),
        ],
        commands: vec![CommandOutcome {
            role: "client".into(),
            command: "node client.js".into(),
            exit: None,
            signal: Some(15),
            output_tail: "connected\nheartbeat timeout, reconnecting\nconnected\n".into(),
        }],
        events,
        connections: Vec::new(),
        scenario_spec: Some(scenario),
        settings: RunSettings {
            upstream: Some("ws://127.0.0.1:9001/feed".into()),
            listen: Some("127.0.0.1:0".into()),
            client_cmd: Some("node client.js".into()),
            server_cmd: None,
            demo: false,
            netns: false,
            resolution: None,
            tls: None,
        },
    }
}
