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
    /// `relay` (default): the relay alone makes the faults. `netns`: the
    /// client (and a `--server-cmd`) run in network namespaces and faults
    /// with a kernel equivalent become nftables rules (like `--netns`).
    #[serde(default, skip_serializing_if = "Network::is_relay")]
    pub network: Network,
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
    /// How many clients the run starts (client commands or demo clients;
    /// default 1). The CLI's `--clients` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<usize>,
}

/// Which clients an expectation judges (`clients:` on an expectation): with
/// several clients, the expectation is judged on each client's own
/// connections, and passes when enough clients pass.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ClientScope {
    /// Every client must pass (`all`, the default). With one client, the
    /// expectation is judged on the whole log, as always.
    #[default]
    All,
    /// At least this percentage of the clients must pass (`90%`).
    AtLeast(f64),
}

impl ClientScope {
    /// How many of `n` clients must pass.
    pub fn needed(self, n: usize) -> usize {
        match self {
            ClientScope::All => n,
            ClientScope::AtLeast(p) => ((p / 100.0 * n as f64) - 1e-9).ceil().max(0.0) as usize,
        }
    }
}

impl std::fmt::Display for ClientScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientScope::All => f.write_str("all"),
            ClientScope::AtLeast(p) => write!(f, "{p}%"),
        }
    }
}

impl std::str::FromStr for ClientScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "all" {
            return Ok(ClientScope::All);
        }
        let bad =
            || format!("`{s}` is not a client scope: expected `all` or a percentage such as `90%`");
        let p: f64 = t
            .strip_suffix('%')
            .ok_or_else(bad)?
            .trim()
            .parse()
            .map_err(|_| bad())?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!(
                "`{s}`: the percentage must be above 0% and at most 100%"
            ));
        }
        Ok(ClientScope::AtLeast(p))
    }
}

impl Serialize for ClientScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClientScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
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

/// Where the network path of a run is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Peers on loopback; the relay makes every fault.
    #[default]
    Relay,
    /// Peers in network namespaces joined to the relay by veth pairs; faults
    /// with a kernel equivalent are nftables rules on those links.
    Netns,
}

impl Network {
    /// Whether this is the default.
    pub fn is_relay(&self) -> bool {
        *self == Network::Relay
    }
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
    /// Which clients it judges when the run has several (default `all`).
    #[serde(default, skip_serializing_if = "is_all")]
    pub clients: ClientScope,
    /// The kind and its parameters.
    #[serde(flatten)]
    pub kind: ExpectKind,
}

fn is_all(c: &ClientScope) -> bool {
    *c == ClientScope::All
}

/// Kind-specific expectation parameters: declared once per kind in
/// [`crate::expect::registry`].
pub use crate::expect::ExpectKind;

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
