//! Expectations: one module per kind, each judged from the event log alone.
//!
//! Every expectation implements [`Expectation`]. The runner calls
//! [`Expectation::judge`] whenever the log grows (and once more when the run
//! is over); an expectation returns `None` while later events could still
//! change its verdict, so the run can end as soon as every verdict is known.
//!
//! [`build`] turns a scenario's `expect:` list into boxed expectations,
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
mod no_reconnect;
mod reconnects;
pub mod refs;
pub mod scope;
mod sends;
mod stays_connected;
#[cfg(test)]
mod testlog;
mod warnings;

pub use backoff::Backoff;
pub use closes_with::ClosesWith;
pub use detects::Detects;
pub use heartbeat::Heartbeat;
pub use herd::Herd;
pub use no_reconnect::NoReconnect;
pub use reconnects::Reconnects;
pub use sends::Sends;
pub use stays_connected::StaysConnected;
pub use warnings::warnings;

use crate::events::Event;
use crate::matcher::Matcher;
use crate::scenario::{ClientScope, ExpectKind, Scenario};
use common::Span;
use scope::Population;
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

    /// True when the kind judges all the clients of a run together (`herd`):
    /// the runner then judges it on the whole log and ignores its
    /// `clients:` scope. Other kinds are judged on each client's own
    /// connections when there are several clients.
    fn across_clients(&self) -> bool {
        false
    }
}

/// Build one expectation from its kind and parameters; the error names the
/// expectation and what is wrong (an invalid regex in `match`).
pub fn build_one(name: &str, kind: &ExpectKind) -> Result<Box<dyn Expectation>, String> {
    let matcher = |m| Matcher::new(m).map_err(|e| format!("expectation `{name}`: {e}"));
    Ok(match kind {
        ExpectKind::Detects {
            side,
            after,
            within,
        } => Box::new(Detects::new(name, *side, after, *within)),
        ExpectKind::Reconnects {
            after,
            within,
            attempts,
        } => Box::new(Reconnects::new(name, after, *within, *attempts)),
        ExpectKind::NoReconnect { after, for_ } => Box::new(NoReconnect::new(name, after, *for_)),
        ExpectKind::StaysConnected {
            side,
            during,
            after,
            for_,
        } => Box::new(StaysConnected::new(
            name,
            *side,
            Span::new(during, after, for_),
        )),
        ExpectKind::Heartbeat {
            from,
            matches,
            every,
            tolerance,
            after,
            for_,
        } => Box::new(Heartbeat::new(
            name,
            *from,
            matcher(matches)?,
            *every,
            *tolerance,
            Span::new(&None, after, for_),
        )),
        ExpectKind::Backoff {
            during,
            after,
            for_,
            min_gap,
            max_gap,
            increasing,
            max_attempts,
        } => Box::new(Backoff::new(
            name,
            Span::new(during, after, for_),
            *min_gap,
            *max_gap,
            *increasing,
            *max_attempts,
        )),
        ExpectKind::Sends {
            from,
            matches,
            after,
            within,
            count,
        } => Box::new(Sends::new(
            name,
            *from,
            matcher(matches)?,
            after,
            *within,
            *count,
        )),
        ExpectKind::ClosesWith {
            side,
            code,
            connections,
        } => Box::new(ClosesWith::new(name, *side, *code, connections)),
        ExpectKind::Herd {
            after,
            max_attempts,
            window,
            min_spread,
            for_,
        } => Box::new(Herd::new(
            name,
            after,
            *max_attempts,
            *window,
            *min_spread,
            *for_,
        )),
    })
}

/// An expectation with its effective name, kind and client scope.
pub struct Named {
    /// Effective name ([`Scenario::expect_name`]).
    pub name: String,
    /// Its kind's name.
    pub kind: &'static str,
    /// Which clients it judges when there are several.
    pub scope: ClientScope,
    /// The expectation.
    pub exp: Box<dyn Expectation>,
}

/// Every expectation of the scenario, in file order.
pub fn build(s: &Scenario) -> Result<Vec<Named>, String> {
    (0..s.expect.len())
        .map(|i| {
            let name = s.expect_name(i);
            let spec = &s.expect[i];
            let exp = build_one(&name, &spec.kind)?;
            Ok(Named {
                name,
                kind: spec.kind.name(),
                scope: spec.clients,
                exp,
            })
        })
        .collect()
}

/// Judge every expectation against the log at `now`; `None` for those still
/// undecided (never when `finished`). With several clients (`pop`, the log
/// split per client), each expectation is judged per client and folded by
/// its scope ([`scope::judge_scoped`]), except kinds that judge all clients
/// together.
pub fn judge_all(
    exps: &[Named],
    events: &[Event],
    now: Duration,
    finished: bool,
    pop: Option<&Population>,
) -> Vec<Option<Verdict>> {
    let ctx = JudgeCtx {
        events,
        now,
        finished,
    };
    exps.iter()
        .map(|n| match pop {
            Some(p) if p.len() > 1 && !n.exp.across_clients() => {
                scope::judge_scoped(n.exp.as_ref(), (&n.name, n.kind), n.scope, p, &ctx)
            }
            _ => n.exp.judge(&ctx),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::testlog::Log;
    use super::*;
    use crate::events::Side::*;

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
        let names: Vec<&str> = exps.iter().map(|n| n.name.as_str()).collect();
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
        let err = build(&s).err().expect("invalid regex");
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
        for Named { name, exp: e, .. } in &exps {
            let ctx = JudgeCtx {
                events: &empty,
                now: Duration::from_secs(40),
                finished: true,
            };
            let v = e.judge(&ctx).unwrap_or_else(|| panic!("{name} undecided"));
            assert!(!v.passed, "{name} passed on an empty log: {}", v.detail);
            assert!(!v.detail.is_empty());
        }
    }
}
