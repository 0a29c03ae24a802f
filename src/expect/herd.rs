//! `herd`: after the reference, the clients' connection attempts (TCP
//! connections the relay accepted) are spread out. At most `max_attempts`
//! fall in any `window`, and, with `min_spread`, the clients' first attempts
//! after the reference lie at least that far apart between the 10th and the
//! 90th percentile. Judges all clients together (its `clients:` scope does
//! not apply). Clients are told apart by their request targets
//! ([`super::scope`]); an attempt refused before its request was read
//! counts toward the peak but is nobody's first attempt. Fails as soon as the cap is exceeded; passes once `for` is
//! over (or at the end of the run).

use super::common::{outcome, secs};
use super::kind::{Anchor, Checks, Ctx, Invalid, Judge, Kind, Outcome, Timing};
use super::refs;
use super::scope::attribute;
use crate::events::{Event, EventKind};
use crate::scenario::{Dur, Reference};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The `herd` expectation: reconnection attempts after the reference are
/// spread out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Herd {
    /// Reference (usually a fault's end).
    pub after: Reference,
    /// At most this many attempts in any `window`.
    pub max_attempts: u32,
    /// The sliding window (default 100ms).
    #[serde(default = "herd_window")]
    pub window: Dur,
    /// Least time between the 10th and 90th percentile of first attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_spread: Option<Dur>,
    /// How long after the reference attempts are counted (default: until the run ends).
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<Dur>,
}

fn herd_window() -> Dur {
    Dur(Duration::from_millis(100))
}

impl Kind for Herd {
    const NAME: &'static str = "herd";
    fn validate(&self, v: &mut dyn Checks) -> Result<(), Invalid> {
        v.reference("after", &self.after)?;
        v.positive("window", self.window)?;
        if let Some(f) = self.for_ {
            v.positive("for", f)?;
        }
        if self.max_attempts == 0 {
            let message = format!(
                "{}.max_attempts: 0 attempts in any window always fails",
                v.path()
            );
            return Err(v.fail("max_attempts", message, Some("expected 1 or more".into())));
        }
        Ok(())
    }
    fn judge(&self) -> Result<Box<dyn Judge>, String> {
        Ok(Box::new(self.clone()))
    }
    fn timing(&self) -> Timing<'_> {
        Timing {
            after: Some(&self.after),
            len: self.for_.map(|d| d.0),
            deadline: false,
        }
    }
}

/// The densest window: how many attempts, from when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peak {
    /// Attempts in the window.
    pub count: usize,
    /// When the window starts (its first attempt).
    pub at: Duration,
}

/// The most `times` (sorted) that fall in any half-open window of `window`.
pub fn peak(times: &[Duration], window: Duration) -> Peak {
    let mut best = Peak {
        count: 0,
        at: Duration::ZERO,
    };
    let mut j = 0;
    for (i, t) in times.iter().enumerate() {
        if j < i {
            j = i;
        }
        while j < times.len() && times[j] < *t + window {
            j += 1;
        }
        if j - i > best.count {
            best = Peak {
                count: j - i,
                at: *t,
            };
        }
    }
    best
}

/// The time between the 10th and the 90th percentile of `times` (sorted;
/// nearest rank), `None` with fewer than two.
pub fn spread(times: &[Duration]) -> Option<Duration> {
    if times.len() < 2 {
        return None;
    }
    let rank =
        |q: f64| times[((q * (times.len() - 1) as f64).round() as usize).min(times.len() - 1)];
    Some(rank(0.9).saturating_sub(rank(0.1)))
}

impl Herd {
    /// The attempts after `from` up to `end`, and each client's first one.
    fn attempts(events: &[Event], pos: usize, end: Duration) -> (Vec<Duration>, Vec<Duration>) {
        let owner = attribute(events);
        let mut all = Vec::new();
        let mut first: BTreeMap<usize, Duration> = BTreeMap::new();
        for e in events[pos..].iter().take_while(|e| e.t <= end) {
            if let (EventKind::Accept { .. }, Some(n)) = (&e.kind, e.conn) {
                all.push(e.t);
                // With one client nothing is attributed: its connections
                // are all its own. With several, a connection refused
                // before its request was read belongs to no known client
                // and counts only toward the peak.
                let who = match owner.get(&n) {
                    Some(c) => Some(*c),
                    None if owner.is_empty() => Some(0),
                    None => None,
                };
                if let Some(c) = who {
                    first.entry(c).or_insert(e.t);
                }
            }
        }
        let mut firsts: Vec<Duration> = first.into_values().collect();
        firsts.sort();
        (all, firsts)
    }
}

impl Judge for Herd {
    fn anchor(&self) -> Anchor<'_> {
        Anchor::After(
            &self.after,
            "the attempts after it could not be judged".into(),
        )
    }

    fn across_clients(&self) -> bool {
        true
    }

    fn judge(&self, ctx: &Ctx<'_>) -> Option<Outcome> {
        let at = ctx.at();
        let end = self.for_.map_or(Duration::MAX, |f| at.t + f.0);
        let (all, firsts) = Herd::attempts(ctx.events, at.pos, end);
        let p = peak(&all, self.window.0);
        let sp = spread(&firsts);
        let over = p.count > self.max_attempts as usize;
        if !over && !ctx.finished && ctx.now <= end {
            return None;
        }
        let short = match (self.min_spread, sp) {
            (Some(min), Some(s)) => s < min.0,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let what = refs::describe(&self.after);
        let win = self.window;
        let mut detail = format!(
            "{} attempts after {what} at t={}: at most {} in any {win} (from t={}; max {})",
            all.len(),
            secs(at.t),
            p.count,
            secs(p.at),
            self.max_attempts
        );
        match sp {
            Some(s) => detail.push_str(&format!(
                ", first attempts of {} clients spread {} between p10 and p90",
                firsts.len(),
                secs(s)
            )),
            None => detail.push_str(&format!(
                ", {} first attempt(s): no spread to measure",
                firsts.len()
            )),
        }
        if let Some(min) = self.min_spread {
            detail.push_str(&format!(" (min {min})"));
        }
        outcome(!over && !short, sp, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testlog::Log;
    use super::*;
    use crate::events::EventKind;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn peak_and_spread() {
        let t: Vec<Duration> = [0, 10, 20, 99, 100, 250].map(ms).to_vec();
        assert_eq!(
            peak(&t, ms(100)),
            Peak {
                count: 4,
                at: ms(0)
            }
        );
        assert_eq!(peak(&[], ms(100)).count, 0);
        let even: Vec<Duration> = (0..=10).map(|i| ms(i * 100)).collect();
        assert_eq!(spread(&even), Some(ms(800)));
        assert_eq!(spread(&[ms(5)]), None);
    }

    fn herd(min_spread: Option<u64>) -> super::super::ExpectKind {
        super::super::ExpectKind::Herd(Herd {
            after: "crash".parse().unwrap(),
            max_attempts: 3,
            window: Dur(ms(100)),
            min_spread: min_spread.map(|m| Dur(ms(m))),
            for_: Some(Dur(Duration::from_secs(5))),
        })
    }

    fn after_crash(times: &[f64]) -> Vec<Event> {
        let mut log = Log::new().connect(1, 0.1).fault_start("crash", &[1], 1.0);
        for (i, t) in times.iter().enumerate() {
            let n = i as u32 + 2;
            log = log.accept(n, *t).push(
                Some(n),
                *t,
                EventKind::Request {
                    path: format!("/feed?flatline_client={i}"),
                    extensions_removed: false,
                },
            );
        }
        log.events()
    }

    use super::super::testlog::judge;

    #[test]
    fn a_burst_fails_at_once_and_names_the_peak() {
        let ev = after_crash(&[1.5, 1.51, 1.52, 1.53, 3.0]);
        let v = judge(&herd(None), &ev, 3.0, false).expect("decided early");
        assert!(!v.passed);
        assert!(v.detail.contains("at most 4 in any 100ms"), "{}", v.detail);
        assert!(v.detail.contains("from t=1.50 s"), "{}", v.detail);
    }

    #[test]
    fn spread_out_attempts_pass_when_the_window_is_over() {
        let ev = after_crash(&[1.2, 1.5, 1.9, 2.4, 3.0, 3.7]);
        let h = herd(Some(1000));
        assert_eq!(
            judge(&h, &ev, 4.0, false),
            None,
            "undecided inside the window"
        );
        let v = judge(&h, &ev, 6.5, false).expect("decided after the window");
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.observed, Some(ms(2200)), "p10 1.5 s, p90 3.7 s");
        assert!(
            v.detail
                .contains("first attempts of 6 clients spread 2.20 s"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn too_narrow_a_spread_fails() {
        let ev = after_crash(&[1.2, 1.35, 1.5, 1.65]);
        let v = judge(&herd(Some(1000)), &ev, 6.5, false).expect("decided");
        assert!(!v.passed, "{}", v.detail);
        assert!(v.detail.contains("(min 1s)"), "{}", v.detail);
    }

    #[test]
    fn a_reference_that_never_happens_fails_at_the_end() {
        let ev = Log::new().connect(1, 0.1).events();
        assert_eq!(judge(&herd(None), &ev, 3.0, false), None);
        let v = judge(&herd(None), &ev, 9.0, true).expect("decided");
        assert!(!v.passed);
        assert!(v.detail.contains("never"), "{}", v.detail);
    }
}
