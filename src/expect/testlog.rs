//! A tiny builder for hand-written event logs in unit tests: times in seconds.

use crate::events::{Direction, Ending, Event, EventKind, FrameInfo, Opcode, Side};
use std::time::Duration;

/// A log under construction.
#[derive(Default)]
pub(crate) struct Log {
    events: Vec<Event>,
}

fn at(t: f64) -> Duration {
    Duration::from_secs_f64(t)
}

impl Log {
    pub fn new() -> Log {
        Log::default()
    }
    pub fn push(mut self, conn: Option<u32>, t: f64, kind: EventKind) -> Log {
        self.events.push(Event {
            t: at(t),
            conn,
            kind,
        });
        self
    }
    pub fn events(self) -> Vec<Event> {
        self.events
    }
    pub fn accept(self, conn: u32, t: f64) -> Log {
        self.push(
            Some(conn),
            t,
            EventKind::Accept {
                peer: "127.0.0.1:50000".into(),
            },
        )
    }
    pub fn open(self, conn: u32, t: f64) -> Log {
        self.push(Some(conn), t, EventKind::Open)
    }
    /// Accept and open at the same time.
    pub fn connect(self, conn: u32, t: f64) -> Log {
        self.accept(conn, t).open(conn, t)
    }
    pub fn closed(self, conn: u32, t: f64) -> Log {
        self.push(Some(conn), t, EventKind::Closed { how: Ending::Fin })
    }
    pub fn frame(self, conn: u32, t: f64, from: Side, opcode: Opcode, payload: &str) -> Log {
        let f = FrameInfo {
            dir: from.sending(),
            opcode,
            fin: true,
            rsv: 0,
            masked: from.sending() == Direction::ToServer,
            len: payload.len() as u64,
            preview: payload.to_string(),
            close_code: None,
            close_reason: None,
            dropped: false,
        };
        self.push(Some(conn), t, EventKind::Frame(f))
    }
    pub fn ping(self, conn: u32, t: f64, from: Side) -> Log {
        self.frame(conn, t, from, Opcode::Ping, "")
    }
    pub fn text(self, conn: u32, t: f64, from: Side, payload: &str) -> Log {
        self.frame(conn, t, from, Opcode::Text, payload)
    }
    pub fn close_frame(self, conn: u32, t: f64, from: Side, code: Option<u16>) -> Log {
        let f = FrameInfo {
            dir: from.sending(),
            opcode: Opcode::Close,
            fin: true,
            rsv: 0,
            masked: from.sending() == Direction::ToServer,
            len: if code.is_some() { 2 } else { 0 },
            preview: String::new(),
            close_code: code,
            close_reason: code.map(|_| String::new()),
            dropped: false,
        };
        self.push(Some(conn), t, EventKind::Frame(f))
    }
    pub fn fin(self, conn: u32, t: f64, from: Side) -> Log {
        self.push(Some(conn), t, EventKind::Fin { from })
    }
    pub fn rst(self, conn: u32, t: f64, from: Side) -> Log {
        self.push(Some(conn), t, EventKind::Rst { from })
    }
    pub fn held(self, conn: u32, t: f64, fault: &str, dir: Direction) -> Log {
        self.push(
            Some(conn),
            t,
            EventKind::Held {
                fault: fault.into(),
                dir,
                what: "fin".into(),
            },
        )
    }
    pub fn fault_start(self, fault: &str, conns: &[u32], t: f64) -> Log {
        self.push(
            None,
            t,
            EventKind::FaultStart {
                fault: fault.into(),
                conns: conns.to_vec(),
            },
        )
    }
    pub fn fault_end(self, fault: &str, conns: &[u32], t: f64) -> Log {
        self.push(
            None,
            t,
            EventKind::FaultEnd {
                fault: fault.into(),
                conns: conns.to_vec(),
            },
        )
    }
    pub fn join(self, fault: &str, conn: u32, t: f64) -> Log {
        self.push(
            Some(conn),
            t,
            EventKind::FaultJoin {
                fault: fault.into(),
            },
        )
    }
    pub fn stopping(self, t: f64) -> Log {
        self.push(None, t, EventKind::Stopping)
    }
}

/// Judge a fresh expectation of kind `e` over `events` at `now` (seconds):
/// it observes every event first, as in a run.
pub(crate) fn judge(
    e: &super::ExpectKind,
    events: &[Event],
    now: f64,
    finished: bool,
) -> Option<super::Verdict> {
    let mut x = super::Expect::new("test", e).expect("builds");
    for ev in events {
        x.observe(ev);
    }
    x.verdict(events, at(now), finished)
}

/// Parse one expectation from YAML.
pub(crate) fn build(yaml: &str) -> super::ExpectKind {
    let spec: crate::scenario::ExpectSpec = serde_yaml::from_str(yaml).expect("test yaml");
    spec.kind
}
