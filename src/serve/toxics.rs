//! Toxiproxy's toxics as flatline faults.
//!
//! Toxiproxy's types map onto flatline's faults with Toxiproxy's semantics
//! (`stream: upstream` is flatline's `to_server`, `downstream` is
//! `to_client`); flatline's own kinds are extra types whose attributes are
//! the kind's parameters, read by the scenario loader. `toxicity` picks the
//! connections a toxic covers, per connection, from the session's seed.

use super::error::{json_type, ApiError};
use crate::faults::delay::Delay;
use crate::faults::limit::{Limit, LimitThen};
use crate::faults::partition::{OnEnd, Partition};
use crate::faults::slice::Slice;
use crate::faults::slow_close::SlowClose;
use crate::faults::throttle::Throttle;
use crate::scenario::{
    ByteSize, ConnWhich, Connections, Directions, Dur, FaultKind, Rate, RefBase, Reference,
    SizeRange,
};
use crate::timeline::LiveFault;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Toxiproxy's types, with their attributes (all integers).
const TOXIPROXY_TYPES: &[(&str, &[&str])] = &[
    ("latency", &["latency", "jitter"]),
    ("bandwidth", &["rate"]),
    ("slow_close", &["delay"]),
    ("timeout", &["timeout"]),
    ("reset_peer", &["timeout"]),
    ("slicer", &["average_size", "size_variation", "delay"]),
    ("limit_data", &["bytes"]),
];

/// flatline's kinds offered as extra types.
const EXTRA_TYPES: &[&str] = &[
    "partition",
    "drop",
    "corrupt",
    "lose_fin",
    "close",
    "half_close",
    "reset",
    "refuse",
    "delay",
    "throttle",
    "slice",
    "limit",
    "inject",
    "replace",
];

/// Largest integer attribute (ms, bytes, KB/s): about 31 years in ms.
const MAX_ATTRIBUTE: f64 = 1e12;

/// Connection numbers a partial `toxicity` is decided for.
const SAMPLED_CONNS: u32 = 65_536;

/// Every type name, for "did you mean".
pub fn type_names() -> Vec<&'static str> {
    TOXIPROXY_TYPES
        .iter()
        .map(|(t, _)| *t)
        .chain(EXTRA_TYPES.iter().copied())
        .collect()
}

/// `upstream` (client to server) or `downstream` (server to client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Client to server.
    Upstream,
    /// Server to client.
    Downstream,
}

impl Stream {
    fn parse(s: &str) -> Option<Stream> {
        match s {
            "upstream" => Some(Stream::Upstream),
            "downstream" => Some(Stream::Downstream),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
    fn directions(self) -> Directions {
        match self {
            Stream::Upstream => Directions::ToServer,
            Stream::Downstream => Directions::ToClient,
        }
    }
    /// The side whose bytes travel in this stream, and the side receiving them.
    fn sides(self) -> (&'static str, &'static str) {
        match self {
            Stream::Upstream => ("client", "server"),
            Stream::Downstream => ("server", "client"),
        }
    }
}

/// One toxic as Toxiproxy shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique within its proxy.
    pub name: String,
    /// `latency`, `partition`…
    pub kind: String,
    /// Which way.
    pub stream: Stream,
    /// Share of connections covered, 0 to 1.
    pub toxicity: f64,
    /// The type's attributes.
    pub attributes: Map<String, Value>,
}

fn number(v: &Value, field: &str) -> Result<f64, ApiError> {
    v.as_f64().ok_or_else(|| {
        ApiError::field(
            field,
            format!("`{field}` must be a number, found {}", json_type(v)),
        )
    })
}

/// What a toxic's type maps to.
enum Mapped {
    /// A Toxiproxy type: this flatline fault, with when it acts (if not at
    /// once) and how long it lasts (if bounded).
    Fault(FaultKind, Option<Duration>, Option<Duration>),
    /// A Toxiproxy type that does nothing with these attributes.
    Nothing,
    /// Not a Toxiproxy type: a flatline kind.
    Extra,
}

impl Toxic {
    /// From a create request (Toxiproxy's defaults: `downstream`,
    /// toxicity 1, name `<type>_<stream>`).
    pub fn create(obj: &Map<String, Value>) -> Result<Toxic, ApiError> {
        super::native::check_keys(obj, &["name", "type", "stream", "toxicity", "attributes"])?;
        let kind = match obj.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(v) => {
                return Err(ApiError::field(
                    "type",
                    format!("`type` must be a string, found {}", json_type(v)),
                ))
            }
            None => return Err(ApiError::field("type", "missing required field: type")),
        };
        if !type_names().contains(&kind.as_str()) {
            return Err(
                ApiError::field("type", format!("invalid toxic type: `{kind}`"))
                    .with_hint(Some(crate::scenario::hint_for(&kind, &type_names()))),
            );
        }
        let mut t = Toxic {
            name: String::new(),
            kind,
            stream: Stream::Downstream,
            toxicity: 1.0,
            attributes: Map::new(),
        };
        if let Some(v) = obj.get("stream") {
            t.stream = v.as_str().and_then(Stream::parse).ok_or_else(|| {
                ApiError::field(
                    "stream",
                    "stream was invalid, can be either upstream or downstream",
                )
            })?;
        }
        t.name = match obj.get("name") {
            None | Some(Value::Null) => format!("{}_{}", t.kind, t.stream.as_str()),
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            Some(Value::String(_)) => format!("{}_{}", t.kind, t.stream.as_str()),
            Some(v) => {
                return Err(ApiError::field(
                    "name",
                    format!("`name` must be a string, found {}", json_type(v)),
                ))
            }
        };
        t.update(obj)?;
        Ok(t)
    }

    /// Apply an update request: `toxicity` and the given attributes (the
    /// others keep their values).
    pub fn update(&mut self, obj: &Map<String, Value>) -> Result<(), ApiError> {
        if let Some(v) = obj.get("toxicity") {
            let x = number(v, "toxicity")?;
            if !(0.0..=1.0).contains(&x) {
                return Err(ApiError::field(
                    "toxicity",
                    format!("`toxicity` is a share of connections from 0 to 1, found {x}"),
                ));
            }
            self.toxicity = x;
        }
        match obj.get("attributes") {
            None | Some(Value::Null) => {}
            Some(Value::Object(a)) => {
                for (k, v) in a {
                    self.attributes.insert(k.clone(), v.clone());
                }
            }
            Some(v) => {
                return Err(ApiError::field(
                    "attributes",
                    format!("`attributes` must be an object, found {}", json_type(v)),
                ))
            }
        }
        if let Some((_, keys)) = TOXIPROXY_TYPES.iter().find(|(t, _)| *t == self.kind) {
            super::native::check_keys(&self.attributes, keys).map_err(|mut e| {
                e.field = e.field.map(|f| format!("attributes.{f}"));
                e
            })?;
            for k in *keys {
                let v = self.attributes.get(*k).cloned().unwrap_or(json!(0));
                let x = number(&v, &format!("attributes.{k}"))?;
                if x < 0.0 {
                    return Err(ApiError::field(
                        &format!("attributes.{k}"),
                        format!("`{k}` cannot be negative"),
                    ));
                }
                if x > MAX_ATTRIBUTE {
                    return Err(ApiError::field(
                        &format!("attributes.{k}"),
                        format!("`{k}` is too large (at most {MAX_ATTRIBUTE})"),
                    ));
                }
                self.attributes.insert(k.to_string(), json!(x as i64));
            }
        }
        // Check now that the faults can be built.
        self.faults("check", Duration::ZERO, 0).map(|_| ())
    }

    /// As Toxiproxy shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.attributes,
        })
    }

    fn int(&self, key: &str) -> u64 {
        self.attributes
            .get(key)
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .max(0) as u64
    }

    /// What this toxic's Toxiproxy type maps to, added at `now`.
    fn toxiproxy(&self, now: Duration) -> Mapped {
        let dir = self.stream.directions();
        let ms = |k: &str| Duration::from_millis(self.int(k));
        let (kind, at, duration) = match self.kind.as_str() {
            "latency" => (
                FaultKind::Delay(Delay {
                    latency: Dur(ms("latency")),
                    jitter: Dur(ms("jitter")),
                    direction: dir,
                }),
                None,
                None,
            ),
            // Toxiproxy's rate is in KB/s; 0 means no cap.
            "bandwidth" if self.int("rate") == 0 => return Mapped::Nothing,
            "bandwidth" => (
                FaultKind::Throttle(Throttle {
                    rate: Rate {
                        bytes_per_sec: self.int("rate") * 1000,
                    },
                    direction: dir,
                }),
                None,
                None,
            ),
            "slow_close" => (
                FaultKind::SlowClose(SlowClose {
                    delay: Dur(ms("delay")),
                    direction: dir,
                }),
                None,
                None,
            ),
            // Data stops (held, not dropped); after `timeout` both sides
            // are reset. 0: until the toxic is removed.
            "timeout" => {
                let t = ms("timeout");
                let on_end = if t.is_zero() {
                    OnEnd::Flush
                } else {
                    OnEnd::Reset
                };
                let duration = (!t.is_zero()).then_some(t);
                (
                    FaultKind::Partition(Partition {
                        direction: dir,
                        on_end,
                    }),
                    None,
                    duration,
                )
            }
            // A budget of 0 bytes: the connections are reset (after `timeout`).
            "reset_peer" => {
                let t = ms("timeout");
                (
                    FaultKind::Limit(Limit {
                        bytes: ByteSize(0),
                        direction: dir,
                        then: LimitThen::Reset,
                    }),
                    (!t.is_zero()).then_some(now + t),
                    None,
                )
            }
            "slicer" => {
                let avg = self.int("average_size").max(1);
                let var = self.int("size_variation").min(avg - 1);
                (
                    FaultKind::Slice(Slice {
                        size: SizeRange {
                            min: avg - var,
                            max: avg + var,
                        },
                        gap: Dur(Duration::from_micros(self.int("delay"))),
                        direction: dir,
                    }),
                    None,
                    None,
                )
            }
            "limit_data" => (
                FaultKind::Limit(Limit {
                    bytes: ByteSize(self.int("bytes")),
                    direction: dir,
                    then: LimitThen::Fin,
                }),
                None,
                None,
            ),
            _ => return Mapped::Extra,
        };
        Mapped::Fault(kind, at, duration)
    }

    /// The faults this toxic is, named from `name`, added at `now` on a
    /// session seeded with `seed`.
    pub fn faults(&self, name: &str, now: Duration, seed: u64) -> Result<Vec<LiveFault>, ApiError> {
        let (kind, at, duration) = match self.toxiproxy(now) {
            Mapped::Fault(kind, at, duration) => (kind, at, duration),
            Mapped::Nothing => return Ok(Vec::new()),
            Mapped::Extra => return self.extra(name, seed),
        };
        let fault = crate::faults::build(&kind).map_err(|e| ApiError::field("attributes", e))?;
        let at = at.map(|offset| Reference {
            base: RefBase::Start,
            offset,
        });
        Ok(vec![self.live(
            name,
            Arc::from(fault),
            at,
            duration,
            kind.is_instant(),
            seed,
        )])
    }

    /// A flatline kind: the attributes are its parameters; `direction`,
    /// `from` and `toward` default from the stream.
    fn extra(&self, name: &str, seed: u64) -> Result<Vec<LiveFault>, ApiError> {
        let mut obj = self.attributes.clone();
        let (from, to) = self.stream.sides();
        let key = match self.kind.as_str() {
            "lose_fin" => Some(("from", json!(from))),
            "close" | "half_close" | "reset" => Some(("toward", json!(to))),
            "refuse" => None,
            _ => Some(("direction", json!(self.stream.directions()))),
        };
        if let Some((k, v)) = key {
            obj.entry(k).or_insert(v);
        }
        obj.insert("kind".into(), json!(self.kind));
        let spec = super::spec::fault(obj, &[]).map_err(|mut e| {
            e.field = e.field.map(|f| format!("attributes.{f}"));
            e
        })?;
        let live = LiveFault::from_spec(name, &spec).map_err(ApiError::bad)?;
        Ok(vec![self.live(
            name,
            live.fault,
            None,
            None,
            live.instant,
            seed,
        )])
    }

    fn live(
        &self,
        name: &str,
        fault: Arc<dyn crate::faults::Fault>,
        at: Option<Reference>,
        duration: Option<Duration>,
        instant: bool,
        seed: u64,
    ) -> LiveFault {
        LiveFault {
            name: name.to_string(),
            at,
            duration,
            connections: self.connections(name, seed),
            fault,
            instant,
        }
    }

    /// Every connection, or (toxicity below 1) those the seeded draw picks.
    fn connections(&self, name: &str, seed: u64) -> Connections {
        if self.toxicity >= 1.0 {
            return Connections::Which(ConnWhich::All);
        }
        let mut h = seed ^ 0x5bd1_e995;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let picked = (1..=SAMPLED_CONNS)
            .filter(|n| unit(h ^ (*n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) < self.toxicity)
            .collect();
        Connections::List(picked)
    }
}

/// A number in [0, 1) from 64 bits (SplitMix64 finaliser).
fn unit(mut x: u64) -> f64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_follow_toxiproxy() {
        let t = Toxic::create(&obj(
            json!({"type": "latency", "attributes": {"latency": 100}}),
        ))
        .unwrap();
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(
            t.to_json()["attributes"],
            json!({"latency": 100, "jitter": 0})
        );
        assert_eq!(t.toxicity, 1.0);
    }

    #[test]
    fn bad_type_and_stream_are_named() {
        let e = Toxic::create(&obj(json!({"type": "latncy"}))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("type"));
        assert!(e.hint.unwrap().contains("`latency`"));
        let e = Toxic::create(&obj(json!({"type": "latency", "stream": "up"}))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("stream"));
        let e = Toxic::create(&obj(
            json!({"type": "latency", "attributes": {"latency": "x"}}),
        ))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("attributes.latency"));
    }

    #[test]
    fn negative_and_huge_attributes_are_refused() {
        for v in [json!(-1), json!(1e15)] {
            let e = Toxic::create(&obj(
                json!({"type": "latency", "attributes": {"jitter": v}}),
            ))
            .unwrap_err();
            assert_eq!(e.field.as_deref(), Some("attributes.jitter"), "{e:?}");
        }
    }

    #[test]
    fn extra_types_read_their_parameters() {
        let t = Toxic::create(&obj(json!({
            "type": "drop", "stream": "upstream",
            "attributes": {"match": {"opcode": "pong"}}
        })))
        .unwrap();
        assert_eq!(t.faults("d", Duration::ZERO, 0).unwrap().len(), 1);
        let e = Toxic::create(&obj(json!({
            "type": "partition", "attributes": {"on_end": "rest"}
        })))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("attributes.on_end"), "{e:?}");
    }

    #[test]
    fn toxicity_picks_a_share_of_connections_from_the_seed() {
        let mut t = Toxic::create(&obj(json!({"type": "latency", "toxicity": 0.25}))).unwrap();
        let Connections::List(a) = t.connections("x", 7) else {
            panic!("a list")
        };
        let share = a.len() as f64 / SAMPLED_CONNS as f64;
        assert!((0.2..0.3).contains(&share), "{share}");
        let Connections::List(b) = t.connections("x", 7) else {
            panic!("a list")
        };
        assert_eq!(a, b, "same seed, same picks");
        t.toxicity = 1.0;
        assert_eq!(t.connections("x", 7), Connections::Which(ConnWhich::All));
    }
}
