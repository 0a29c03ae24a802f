//! The event log: the single record of a run. Pipes, the listener and the
//! timeline controller only *emit* events; expectations, reports and
//! transcripts only *read* them. Every event carries its time relative to the
//! start of the run (monotonic clock) and, where it belongs to one, the
//! connection number (`#1`, `#2`… in accept order).

use serde::{Deserialize, Serialize};
use std::time::Duration;

mod log;
mod summary;
pub use log::{EventLog, EventSink, Retention};
pub use summary::{ConnSummary, DirSummary, Tally};

/// The two ends of a relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The WebSocket client (the program under test, usually).
    Client,
    /// The upstream WebSocket server.
    Server,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
    /// The direction in which bytes sent by this side travel.
    pub fn sending(self) -> Direction {
        match self {
            Side::Client => Direction::ToServer,
            Side::Server => Direction::ToClient,
        }
    }
    /// Lower-case name, as in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The direction bytes travel through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client's bytes going up to the server.
    ToServer,
    /// Server's bytes coming down to the client.
    ToClient,
}

impl Direction {
    /// The side whose bytes travel in this direction.
    pub fn from_side(self) -> Side {
        match self {
            Direction::ToServer => Side::Client,
            Direction::ToClient => Side::Server,
        }
    }
    /// The side that receives bytes travelling in this direction.
    pub fn to_side(self) -> Side {
        self.from_side().other()
    }
    /// Both directions, `to_server` first.
    pub const BOTH: [Direction; 2] = [Direction::ToServer, Direction::ToClient];
    /// Index 0 for `to_server`, 1 for `to_client`.
    pub fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
    /// Name as in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToServer => "to_server",
            Direction::ToClient => "to_client",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket opcodes (RFC 6455 §5.2), plus the reserved ones kept by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Opcode {
    /// 0x0
    Continuation,
    /// 0x1
    Text,
    /// 0x2
    Binary,
    /// 0x8
    Close,
    /// 0x9
    Ping,
    /// 0xA
    Pong,
    /// 0x3-0x7, 0xB-0xF: a protocol violation, still forwarded.
    Reserved(u8),
}

impl Opcode {
    /// Decode the low four bits of a frame's first byte.
    pub fn from_u8(op: u8) -> Opcode {
        match op & 0x0f {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            n => Opcode::Reserved(n),
        }
    }
    /// Control frames (close, ping, pong) may not be fragmented and carry at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
    /// Name for messages and transcripts.
    pub fn name(self) -> String {
        match self {
            Opcode::Reserved(n) => format!("reserved-0x{n:x}"),
            op => op.known_name().unwrap_or_default().into(),
        }
    }

    /// The name of a defined opcode (`None` for a reserved one).
    pub fn known_name(self) -> Option<&'static str> {
        Some(match self {
            Opcode::Continuation => "continuation",
            Opcode::Text => "text",
            Opcode::Binary => "binary",
            Opcode::Close => "close",
            Opcode::Ping => "ping",
            Opcode::Pong => "pong",
            Opcode::Reserved(_) => return None,
        })
    }
}

/// One WebSocket frame seen by the relay's scanner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameInfo {
    /// Which way the frame travelled.
    pub dir: Direction,
    /// Frame opcode.
    pub opcode: Opcode,
    /// The FIN bit (last fragment of a message).
    pub fin: bool,
    /// RSV1..3 bits as the low three bits (rsv1 = 0b100).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rsv: u8,
    /// Whether the payload was masked (it must be toward the server only).
    pub masked: bool,
    /// Payload length in bytes.
    pub len: u64,
    /// Up to [`crate::frame::PREVIEW_BYTES`] bytes of unmasked payload, as lossy
    /// UTF-8 (for text, ping, pong and close frames; empty for binary).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preview: String,
    /// Close frames: the status code, if the payload carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_code: Option<u16>,
    /// Close frames: the reason text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    /// Seen in a packet the kernel dropped (`--netns` partitions), when it
    /// was sent: the relay gets these bytes only after the heal, if ever,
    /// and does not log the frame again then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
}

/// A run of similar frames on one connection, recorded at its first frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRun {
    /// The first frame of the run.
    #[serde(flatten)]
    pub frame: FrameInfo,
    /// How many frames the run holds (the first one included).
    pub count: u64,
    /// When the last one came.
    #[serde(rename = "last_ms", with = "millis")]
    pub last: Duration,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

/// How a connection ended, from the relay's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Both directions ended with FIN.
    Fin,
    /// One side reset, or the relay reset.
    Reset,
    /// The relay ended it because the run stopped.
    Shutdown,
    /// The handshake never completed (bad request, upstream failure, rejection).
    Failed,
}

/// What happened. Serialised with `kind` as the tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The relay listens (also logged when it listens again after `refuse: refused`).
    Listening {
        /// Address with the port actually bound.
        addr: String,
    },
    /// The relay stopped listening (`refuse: refused`).
    StoppedListening {
        /// The fault that made it stop.
        fault: String,
    },
    /// A TCP connection from a client was accepted.
    Accept {
        /// The client's address (varies between runs; never in transcripts).
        peer: String,
    },
    /// The client's HTTP upgrade request head was read.
    Request {
        /// Request target (path and query) as the client sent it.
        path: String,
        /// Whether a `Sec-WebSocket-Extensions` header was removed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        extensions_removed: bool,
    },
    /// The request head was malformed or too large; the client got HTTP 400.
    BadRequest {
        /// Why.
        reason: String,
    },
    /// TCP connection to the upstream established.
    UpstreamConnected,
    /// The upstream could not be reached; the client got HTTP 502.
    UpstreamFailed {
        /// The OS error or a timeout.
        error: String,
    },
    /// The server answered 101: the WebSocket is open.
    Open,
    /// The server answered something other than 101 (forwarded unchanged).
    Rejected {
        /// HTTP status code.
        status: u16,
    },
    /// One WebSocket frame (logged when the relay read its header and preview).
    Frame(FrameInfo),
    /// Similar frames folded into one record, where a run keeps only what it
    /// judges ([`Retention::Fold`]): the first frame of a run of frames with
    /// the same direction and preview class on one connection, between two
    /// of that connection's other events, with how many there were.
    Frames(FrameRun),
    /// A frame broke RFC 6455 (still forwarded unchanged).
    ProtocolError {
        /// Direction of the offending bytes.
        dir: Direction,
        /// What was wrong.
        reason: String,
    },
    /// A side half-closed (TCP FIN read as EOF).
    Fin {
        /// Who sent it.
        from: Side,
    },
    /// A side reset the connection (ECONNRESET).
    Rst {
        /// Who sent it.
        from: Side,
    },
    /// The relay passed a FIN on (shutdown of the write half toward `to`).
    FinSent {
        /// Who received it.
        to: Side,
    },
    /// The relay sent an RST toward `to` (close with SO_LINGER 0).
    RstSent {
        /// Who received it.
        to: Side,
    },
    /// Writing toward a side failed; the bytes could not be delivered.
    WriteFailed {
        /// Who could not be written to.
        to: Side,
        /// Bytes that were not delivered.
        bytes: u64,
        /// OS error.
        error: String,
    },
    /// The connection is fully closed at the relay.
    Closed {
        /// How it ended.
        how: Ending,
    },
    /// A fault became active.
    FaultStart {
        /// Fault name.
        fault: String,
        /// Connections it applies to at its start.
        conns: Vec<u32>,
    },
    /// A fault stopped being active (instant faults log start and end together).
    FaultEnd {
        /// Fault name.
        fault: String,
        /// Connections it applied to.
        conns: Vec<u32>,
    },
    /// A fault started applying to a connection accepted while it was active.
    FaultJoin {
        /// Fault name.
        fault: String,
    },
    /// Bytes (and possibly FIN/RST) were held back by a fault.
    Held {
        /// Fault name.
        fault: String,
        /// Direction held.
        dir: Direction,
        /// What was held first in this stretch: `data`, `fin` or `rst`
        /// (logged once, when the stretch starts).
        what: String,
    },
    /// Held data was delivered (a healed partition).
    Released {
        /// Fault name.
        fault: String,
        /// Direction.
        dir: Direction,
        /// Bytes delivered.
        bytes: u64,
        /// Whether a held FIN was delivered too.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fin: bool,
    },
    /// Held data was thrown away (the connection was reset or the run ended).
    Discarded {
        /// Fault name (or `shutdown`).
        fault: String,
        /// Direction.
        dir: Direction,
        /// Bytes never delivered.
        bytes: u64,
    },
    /// A whole frame was removed from the stream by a fault.
    Dropped {
        /// Fault name.
        fault: String,
        /// Direction.
        dir: Direction,
        /// Opcode of the removed frame.
        opcode: Opcode,
        /// Its payload length.
        len: u64,
    },
    /// A frame's payload bits were flipped by a fault.
    Corrupted {
        /// Fault name.
        fault: String,
        /// Direction.
        dir: Direction,
        /// Opcode of the frame.
        opcode: Opcode,
    },
    /// The relay injected something of its own (a close frame, FIN, RST, HTTP answer).
    Injected {
        /// Fault name.
        fault: String,
        /// Toward which side.
        to: Side,
        /// What, in words (`close frame 1001 "going away"`, `fin`, `rst`, `http 503`).
        what: String,
    },
    /// A connection attempt was refused by a `refuse` fault.
    Refused {
        /// Fault name.
        fault: String,
        /// How (`reset`, `close`, `stall`, `http`).
        how: String,
    },
    /// `--netns`: a fault was carried out by the kernel (nftables rules on
    /// the links) rather than by the relay.
    Kernel {
        /// Fault name.
        fault: String,
        /// What was done, in words (`drop to_server on #1`).
        what: String,
    },
    /// `--netns`: a side gave a connection up where the relay could not see
    /// it (a kernel fault kept its packets from the relay), observed in that
    /// side's namespace.
    KernelGaveUp {
        /// Who gave it up.
        from: Side,
        /// How (`FIN`, `RST`, `abandoned after 5 retransmissions`).
        what: String,
        /// How it was observed (`socket table`, `dropped packet`).
        seen: String,
    },
    /// The run is over and flatline starts stopping the commands and closing
    /// connections: what peers do from here on is a reaction to being stopped.
    Stopping,
    /// A free-form note from the relay (run start/end, commands).
    Note {
        /// The text.
        text: String,
    },
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Time since the run started.
    #[serde(rename = "t_ms", with = "millis")]
    pub t: Duration,
    /// Connection number, if the event belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<u32>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Serialise a `Duration` as fractional milliseconds.
pub mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    /// Serialise.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_micros() as f64) / 1000.0)
    }
    /// Deserialise.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_shape() {
        let e = Event {
            t: Duration::from_micros(1500),
            conn: Some(2),
            kind: EventKind::Fin { from: Side::Client },
        };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(s, r#"{"t_ms":1.5,"conn":2,"kind":"fin","from":"client"}"#);
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn frame_run_json_shape() {
        let e = Event {
            t: Duration::from_millis(3),
            conn: Some(1),
            kind: EventKind::Frames(FrameRun {
                frame: FrameInfo {
                    dir: Direction::ToServer,
                    opcode: Opcode::Ping,
                    fin: true,
                    rsv: 0,
                    masked: true,
                    len: 2,
                    preview: "hi".into(),
                    close_code: None,
                    close_reason: None,
                    dropped: false,
                },
                count: 7,
                last: Duration::from_millis(9),
            }),
        };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(
            s,
            r#"{"t_ms":3.0,"conn":1,"kind":"frames","dir":"to_server","opcode":"ping","fin":true,"masked":true,"len":2,"preview":"hi","count":7,"last_ms":9.0}"#
        );
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn frame_event_round_trips() {
        let e = Event {
            t: Duration::from_millis(3),
            conn: Some(1),
            kind: EventKind::Frame(FrameInfo {
                dir: Direction::ToServer,
                opcode: Opcode::Close,
                fin: true,
                rsv: 0,
                masked: true,
                len: 4,
                preview: String::new(),
                close_code: Some(1000),
                close_reason: Some("ok".into()),
                dropped: false,
            }),
        };
        let s = serde_json::to_string(&e).unwrap();
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
    }
}
