//! Expectations: one module per kind, each judged from the event log alone.
//!
//! Every expectation implements [`Expectation`]. The runner calls
//! [`Expectation::judge`] whenever the log grows (and once more when the run
//! is over); an expectation returns `None` while later events could still
//! change its verdict, so the run can end as soon as every verdict is known.

use crate::events::Event;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The verdict on one expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The expectation's name (`<kind>-<index>` by default).
    pub name: String,
    /// Its kind (`detects`, `reconnects`…).
    pub kind: String,
    /// Whether it passed.
    pub passed: bool,
    /// The measured value, when there is one (e.g. time to detection).
    #[serde(
        rename = "observed_ms",
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_millis"
    )]
    pub observed: Option<Duration>,
    /// One sentence naming connections and times.
    pub detail: String,
}

/// `Option<Duration>` as fractional milliseconds.
pub mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    /// Serialise.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64((d.as_micros() as f64) / 1000.0),
            None => s.serialize_none(),
        }
    }
    /// Deserialise.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0)))
    }
}

/// What an expectation sees when it judges.
#[derive(Debug, Clone, Copy)]
pub struct JudgeCtx<'a> {
    /// Every event so far, in order.
    pub events: &'a [Event],
    /// The run's clock now.
    pub now: Duration,
    /// True once the run is over: the expectation must decide.
    pub finished: bool,
}

/// One expectation kind.
pub trait Expectation: Send {
    /// The verdict if it is decided, `None` while later events could change it.
    /// Must return `Some` when `ctx.finished`.
    fn judge(&self, ctx: &JudgeCtx<'_>) -> Option<Verdict>;
}
