//! Expectations: one module per kind, each judged from the event log alone.
//!
//! A kind is a serde struct implementing [`Kind`] (its parameters and their
//! validation) whose [`Judge`] sees every event as it is logged
//! ([`Judge::observe`], where kinds that judge frames keep what they need,
//! since the log folds frames) and judges on demand. Kinds are registered
//! once in [`registry`]. The runner, [`Expect`], owns what every kind shares:
//! the name, locating the reference or window, cutting the log at
//! `Stopping`, and wording the verdict; a kind only judges. It returns `None`
//! while later events could still change its verdict, so the run can end as
//! soon as every verdict is known.
//!
//! With several clients, an expectation is judged on each client's own
//! connections and folded by its `clients:` scope ([`scope`]), except kinds
//! that judge all clients together (`herd`).
//!
//! [`build`] turns a scenario's `expect:` list into [`Expect`]s,
//! [`judge_all`] judges them all at once, and [`warnings`] reports what a
//! peer must never do (reserved close codes, reconnect storms) even when no
//! expectation asks. [`refs`] resolves references against the log and is
//! shared with the timeline controller.

mod backoff;
mod closes_with;
mod common;
mod detects;
mod heartbeat;
pub mod herd;
mod kind;
mod no_reconnect;
mod reconnects;
pub mod refs;
pub mod registry;
mod runner;
pub mod scope;
mod sends;
mod stays_connected;
#[cfg(test)]
mod testlog;
mod warnings;

pub use backoff::Backoff;
pub use closes_with::ClosesWith;
pub use common::{Span, Window};
pub use detects::Detects;
pub use heartbeat::Heartbeat;
pub use herd::Herd;
pub use kind::{Anchor, Checks, Ctx, Invalid, Judge, Kind, Outcome, Timing};
pub use no_reconnect::NoReconnect;
pub use reconnects::Reconnects;
pub use registry::ExpectKind;
pub use runner::{build, judge_all, observe_all, Expect};
pub use sends::Sends;
pub use stays_connected::StaysConnected;
pub use warnings::warnings;

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

/// The log and clock a verdict is asked for, before the runner's prologue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JudgeCtx<'a> {
    /// Every kept event so far, in order.
    pub events: &'a [Event],
    /// The run's clock now.
    pub now: Duration,
    /// True once the run is over: the expectation must decide.
    pub finished: bool,
}

#[cfg(test)]
mod tests {
    use super::testlog::Log;
    use super::*;
    use crate::events::Side::*;
    use crate::scenario::Scenario;

    fn scenario(expect: &str) -> Scenario {
        let yaml = format!(
            "name: t\ndescription: d\nduration: 40s\nfaults:\n  - {{name: outage, kind: partition, at: open#1 + 3s, duration: 15s}}\nexpect:\n{expect}"
        );
        serde_yaml::from_str(&yaml).expect("scenario yaml")
    }

    #[test]
    fn build_names_and_judge_all() {
        let s = scenario(
            "  - {name: notices, kind: detects, after: outage, within: 12s}\n  - {kind: reconnects, after: outage.end, within: 10s}\n",
        );
        let exps = build(&s).unwrap();
        let names: Vec<&str> = exps.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["notices", "reconnects-2"]);
        let log = Log::new()
            .connect(1, 0.1)
            .fault_start("outage", &[1], 3.1)
            .close_frame(1, 9.0, Client, Some(1000))
            .events();
        let v = judge_all(&exps, &log, Duration::from_secs(9), false, None);
        let first = v[0].as_ref().expect("detects decided");
        assert!(first.passed);
        assert_eq!(
            (first.name.as_str(), first.kind.as_str()),
            ("notices", "detects")
        );
        assert!(v[1].is_none());
        let v = judge_all(&exps, &log, Duration::from_secs(40), true, None);
        assert!(v.iter().all(Option::is_some), "finished forces a decision");
        let second = v[1].as_ref().unwrap();
        assert!(!second.passed);
        assert_eq!(second.name, "reconnects-2");
    }

    #[test]
    fn bad_regex_names_the_expectation() {
        let s = scenario("  - {kind: sends, after: open#1, within: 1s, match: {regex: '['}}\n");
        let err = build(&s).expect_err("invalid regex");
        assert!(
            err.starts_with("expectation `sends-1`: invalid regex `[`"),
            "{err}"
        );
    }

    #[test]
    fn every_kind_decides_when_finished() {
        let s = scenario(
            "  - {kind: detects, after: outage, within: 12s}
  - {kind: reconnects, after: outage.end, within: 10s}
  - {kind: no_reconnect, after: close#1, for: 5s}
  - {kind: stays_connected, during: outage}
  - {kind: heartbeat, match: {opcode: ping}, every: 5s}
  - {kind: backoff, during: outage}
  - {kind: sends, match: {}, after: open#1, within: 5s}
  - {kind: closes_with, code: 1000}
  - {kind: herd, after: outage.end, max_attempts: 50}
",
        );
        let exps = build(&s).unwrap();
        let empty: Vec<Event> = Vec::new();
        for e in &exps {
            let name = &e.name;
            let v = e
                .verdict(&empty, Duration::from_secs(40), true)
                .unwrap_or_else(|| panic!("{name} undecided"));
            assert!(!v.passed, "{name} passed on an empty log: {}", v.detail);
            assert!(!v.detail.is_empty());
        }
    }
}
