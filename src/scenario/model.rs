//! The typed scenario model: plain data, deserialised from YAML. Value types
//! (durations, sizes, rates, references, selectors) parse from strings in
//! `values.rs`; cross-field validation lives in `validate.rs`.

use super::values::{Dur, Reference};
use crate::events::{Direction, Side};
use serde::{Deserialize, Serialize};

pub use crate::faults::FaultKind;

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `[a-z0-9-]+`
    pub name: String,
    /// What it simulates and what a good client does.
    pub description: String,
    /// Upper bound of the run.
    pub duration: Dur,
    /// Seeds every random choice.
    #[serde(default)]
    pub seed: u64,
    /// `ws://host:port/path`; the CLI's `--upstream` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// `strip` (default) removes `Sec-WebSocket-Extensions`; `keep` keeps it.
    #[serde(default)]
    pub extensions: Extensions,
    /// Transcript time resolution (default 100ms); `0s` shows ordering only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Dur>,
    /// Faults on the timeline.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Expectations judged from the event log.
    #[serde(default)]
    pub expect: Vec<ExpectSpec>,
    /// Extra arguments for the built-in demo client when the run uses
    /// `--demo` (e.g. `["--close-after", "3s"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub demo_client: Vec<String>,
}

/// Whether the relay strips `Sec-WebSocket-Extensions` from the upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Extensions {
    /// Remove the header (payloads stay readable).
    #[default]
    Strip,
    /// Keep it (payload matching becomes unavailable).
    Keep,
}

/// Which directions a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Directions {
    /// Client's bytes going up.
    ToServer,
    /// Server's bytes coming down.
    ToClient,
    /// Both directions (the default).
    #[default]
    Both,
}

impl Directions {
    /// Whether `dir` is covered.
    pub fn covers(self, dir: Direction) -> bool {
        matches!(
            (self, dir),
            (Directions::Both, _)
                | (Directions::ToServer, Direction::ToServer)
                | (Directions::ToClient, Direction::ToClient)
        )
    }
}

/// `toward: client|server|both`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Toward {
    /// Only the client side of the connection.
    Client,
    /// Only the server side of the connection.
    Server,
    /// The client and the server, at the same moment.
    Both,
}

impl Toward {
    /// Whether `side` is targeted.
    pub fn covers(self, side: Side) -> bool {
        matches!(
            (self, side),
            (Toward::Both, _) | (Toward::Client, Side::Client) | (Toward::Server, Side::Server)
        )
    }
}

/// Which connections a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Connections {
    /// `all`, `open` or `new`.
    Which(ConnWhich),
    /// Explicit connection numbers.
    List(Vec<u32>),
}

/// Named connection selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnWhich {
    /// Every connection open while active, including ones accepted during it.
    All,
    /// Those open when it starts.
    Open,
    /// Only those accepted while it is active.
    New,
}

impl Default for Connections {
    fn default() -> Self {
        Connections::Which(ConnWhich::All)
    }
}

/// A frame filter (`match:`). All given conditions must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// One opcode name or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcode: Option<OneOrMany<OpcodeName>>,
    /// Substring of the payload (as UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Regex on the payload (as UTF-8, unmasked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Minimum payload length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_len: Option<u64>,
    /// Maximum payload length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u64>,
    /// Holds when one alternative holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<Match>>,
}

/// One value or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A YAML list of values (`[ping, pong]`).
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// As a vector.
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Opcode names usable in `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpcodeName {
    /// Opcode 0x1 (UTF-8 text).
    Text,
    /// Opcode 0x2.
    Binary,
    /// Opcode 0x9.
    Ping,
    /// Opcode 0xA.
    Pong,
    /// Opcode 0x8 (the payload starts with a two-byte close code).
    Close,
    /// Opcode 0x0: a later fragment of a text or binary message.
    Continuation,
}

/// A fault: common fields plus the kind-specific parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Unique name; default `<kind>-<index>` (index from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it starts (default `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Reference>,
    /// How long it is active (omitted: until the run ends). Not for instant kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// Which connections it applies to (default `all`: those open when it
    /// starts and those accepted while it is active).
    #[serde(default)]
    pub connections: Connections,
    /// The kind and its parameters.
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// An expectation: common fields plus the kind-specific parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectSpec {
    /// Name; default `<kind>-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The kind and its parameters.
    #[serde(flatten)]
    pub kind: ExpectKind,
}

/// Kind-specific expectation parameters, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExpectKind {
    /// The side gives up every affected connection within `within`.
    Detects {
        /// Who must notice (default client).
        #[serde(default = "client")]
        side: Side,
        /// Reference (usually a fault name).
        after: Reference,
        /// Deadline.
        within: Dur,
    },
    /// A new connection opens within `within` after the reference.
    Reconnects {
        /// Reference.
        after: Reference,
        /// Deadline.
        within: Dur,
        /// Maximum attempts allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempts: Option<u32>,
    },
    /// No new TCP connection for `for` after the reference.
    NoReconnect {
        /// Reference.
        after: Reference,
        /// Window.
        #[serde(rename = "for")]
        for_: Dur,
    },
    /// No connection given up by `side` in the window.
    StaysConnected {
        /// Who must not give up (default client).
        #[serde(default = "client")]
        side: Side,
        /// A fault name: its active window.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        during: Option<String>,
        /// Window start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Reference>,
        /// Window length.
        #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
        for_: Option<Dur>,
    },
    /// Heartbeat frames from `from` at least every `every + tolerance`.
    Heartbeat {
        /// Who sends heartbeats (default client).
        #[serde(default = "client")]
        from: Side,
        /// Which frames count.
        #[serde(rename = "match")]
        matches: Match,
        /// Interval.
        every: Dur,
        /// Slack.
        #[serde(default)]
        tolerance: Dur,
        /// Window start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Reference>,
        /// Window length.
        #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
        for_: Option<Dur>,
    },
    /// Gaps between connection attempts within bounds.
    Backoff {
        /// A fault name: its active window.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        during: Option<String>,
        /// Window start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Reference>,
        /// Window length.
        #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
        for_: Option<Dur>,
        /// Smallest allowed gap.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_gap: Option<Dur>,
        /// Largest allowed gap.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_gap: Option<Dur>,
        /// Gaps must not shrink.
        #[serde(default)]
        increasing: bool,
        /// Cap on attempts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_attempts: Option<u32>,
    },
    /// `from` sends at least `count` matching frames in the window.
    Sends {
        /// Who sends (default client).
        #[serde(default = "client")]
        from: Side,
        /// Which frames count.
        #[serde(rename = "match")]
        matches: Match,
        /// Window start.
        after: Reference,
        /// Window length.
        within: Dur,
        /// At least this many (default 1).
        #[serde(default = "one_u32")]
        count: u32,
    },
    /// The side's close frames carry `code`.
    ClosesWith {
        /// Whose close frames (default client).
        #[serde(default = "client")]
        side: Side,
        /// Expected code.
        code: u16,
        /// Which connections.
        #[serde(default)]
        connections: Connections,
    },
}

fn client() -> Side {
    Side::Client
}

fn one_u32() -> u32 {
    1
}

impl ExpectKind {
    /// The `kind` string.
    pub fn name(&self) -> &'static str {
        match self {
            ExpectKind::Detects { .. } => "detects",
            ExpectKind::Reconnects { .. } => "reconnects",
            ExpectKind::NoReconnect { .. } => "no_reconnect",
            ExpectKind::StaysConnected { .. } => "stays_connected",
            ExpectKind::Heartbeat { .. } => "heartbeat",
            ExpectKind::Backoff { .. } => "backoff",
            ExpectKind::Sends { .. } => "sends",
            ExpectKind::ClosesWith { .. } => "closes_with",
        }
    }

    /// Every expectation kind name, for suggestions.
    pub const KINDS: &'static [&'static str] = &[
        "detects",
        "reconnects",
        "no_reconnect",
        "stays_connected",
        "heartbeat",
        "backoff",
        "sends",
        "closes_with",
    ];
}

impl Scenario {
    /// The effective name of fault `i` (0-based).
    pub fn fault_name(&self, i: usize) -> String {
        let f = &self.faults[i];
        f.name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", f.kind.name(), i + 1))
    }

    /// The effective name of expectation `i` (0-based).
    pub fn expect_name(&self, i: usize) -> String {
        let e = &self.expect[i];
        e.name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", e.kind.name(), i + 1))
    }
}
