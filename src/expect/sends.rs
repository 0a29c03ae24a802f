//! `sends`: `from` sends at least `count` frames matching `match` in
//! `(ref, ref + within]` (on any connection). Passes as soon as the count is
//! reached; fails once the deadline passed. Observed: when the last needed
//! frame came, after the reference.

use super::common::{outcome, plural, secs};
use super::kind::{Anchor, Checks, Ctx, Invalid, Judge, Kind, Outcome, Timing};
use super::refs;
use crate::events::{Event, EventKind, Side};
use crate::matcher::Matcher;
use crate::scenario::{Dur, Match, RefBase, Reference};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `sends` expectation: `from` sends at least `count` matching frames in
/// the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sends {
    /// Who sends (default client).
    #[serde(default = "super::common::client")]
    pub from: Side,
    /// Which frames count.
    #[serde(rename = "match")]
    pub matches: Match,
    /// Window start.
    pub after: Reference,
    /// Window length.
    pub within: Dur,
    /// At least this many (default 1).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

impl Kind for Sends {
    const NAME: &'static str = "sends";
    fn validate(&self, v: &mut dyn Checks) -> Result<(), Invalid> {
        v.reference("after", &self.after)?;
        v.positive("within", self.within)?;
        v.matcher("match", &self.matches)?;
        if self.count == 0 {
            let message = format!("{}.count: 0 frames always passes", v.path());
            return Err(v.fail("count", message, Some("expected 1 or more".into())));
        }
        Ok(())
    }
    fn judge(&self) -> Result<Box<dyn Judge>, String> {
        Ok(Box::new(Judging {
            matcher: Matcher::new(&self.matches)?,
            spec: self.clone(),
            since: None,
            stopped: false,
            seen: 0,
            conns: Vec::new(),
            done: None,
        }))
    }
    fn timing(&self) -> Timing<'_> {
        Timing {
            after: Some(&self.after),
            len: Some(self.within.0),
            deadline: true,
        }
    }
}

/// The judging: matching frames are counted as they come (none is kept).
struct Judging {
    spec: Sends,
    matcher: Matcher,
    /// When the reference happened, once seen.
    since: Option<Duration>,
    stopped: bool,
    /// Matching frames in the window so far, up to `count`.
    seen: u32,
    /// The connections they came on.
    conns: Vec<u32>,
    /// When the last needed one came.
    done: Option<Duration>,
}

impl Judge for Judging {
    fn anchor(&self) -> Anchor<'_> {
        Anchor::After(
            &self.spec.after,
            "nothing sent after it could be counted".into(),
        )
    }

    fn observe(&mut self, e: &Event) {
        let r = &self.spec.after;
        if matches!(e.kind, EventKind::Stopping) {
            self.stopped = true;
        }
        if self.since.is_none() && (r.base == RefBase::Start || refs::is_base(&r.base, e)) {
            let base = if r.base == RefBase::Start {
                Duration::ZERO
            } else {
                e.t
            };
            self.since = Some(base + r.offset);
            return;
        }
        let (Some(since), EventKind::Frame(f)) = (self.since, &e.kind) else {
            return;
        };
        // After the reference (with an offset, strictly later than it; with
        // none, logged after its base event) and by the deadline.
        let in_window = (r.offset.is_zero() || e.t > since) && e.t <= since + self.spec.within.0;
        if self.stopped
            || self.done.is_some()
            || !in_window
            || f.dir != self.spec.from.sending()
            || !self.matcher.matches(f)
        {
            return;
        }
        self.seen += 1;
        if let Some(c) = e.conn {
            if !self.conns.contains(&c) {
                self.conns.push(c);
            }
        }
        if self.seen >= self.spec.count.max(1) {
            self.done = Some(e.t);
        }
    }

    fn judge(&self, ctx: &Ctx<'_>) -> Option<Outcome> {
        let from = self.spec.from;
        let what = refs::describe(&self.spec.after);
        let limit = self.spec.within;
        let at = ctx.at();
        let deadline = at.t + self.spec.within.0;
        let count = self.spec.count;
        if let Some(t) = self.done {
            let took = t.saturating_sub(at.t);
            let which = if count <= 1 {
                "a matching frame".to_string()
            } else {
                format!("{count} matching frames")
            };
            return outcome(
                true,
                Some(took),
                format!(
                    "the {from} sent {which} on connection {} {} after {what} at t={}; limit {limit}",
                    super::common::conn_list(&self.conns),
                    secs(took),
                    secs(at.t)
                ),
            );
        }
        if !(ctx.finished || ctx.now > deadline) {
            return None;
        }
        let ended = if ctx.now < deadline {
            format!(" (the run ended at t={})", secs(ctx.now))
        } else {
            String::new()
        };
        outcome(
            false,
            None,
            format!(
                "the {from} sent {} within {limit} after {what} (t={}){ended}; at least {} needed",
                plural(self.seen as usize, "matching frame"),
                secs(at.t),
                count.max(1)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testlog::{build, judge, Log};
    use crate::events::Side::*;
    use std::time::Duration;

    const YAML: &str = r#"{kind: sends, after: open#2, within: 3s, count: 2, match: {opcode: text, text: subscribe}}"#;

    fn reconnected() -> Log {
        Log::new()
            .connect(1, 0.1)
            .text(1, 0.2, Client, "subscribe a")
            .closed(1, 2.0)
            .connect(2, 5.0)
    }

    #[test]
    fn passes_once_count_is_reached() {
        let e = build(YAML);
        let log = reconnected().text(2, 5.1, Client, "subscribe a");
        assert!(judge(&e, &log.events(), 5.1, false).is_none());
        let log = reconnected()
            .text(2, 5.1, Client, "subscribe a")
            .text(2, 5.2, Server, "subscribe echo")
            .text(2, 5.3, Client, "hello")
            .text(2, 5.5, Client, "subscribe b")
            .events();
        let v = judge(&e, &log, 5.5, false).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.observed, Some(Duration::from_millis(500)));
        assert_eq!(
            v.detail,
            "the client sent 2 matching frames on connection #2 0.50 s after connection #2 opened at t=5.00 s; limit 3s"
        );
    }

    #[test]
    fn fails_after_the_deadline_by_the_clock() {
        let e = build(YAML);
        let log = reconnected()
            .text(2, 5.1, Client, "subscribe a")
            .text(2, 8.5, Client, "subscribe late")
            .events();
        let v = judge(&e, &log, 8.5, false).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "the client sent 1 matching frame within 3s after connection #2 opened (t=5.00 s); at least 2 needed"
        );
        let log = reconnected().text(2, 5.1, Client, "subscribe a").events();
        assert!(judge(&e, &log, 7.9, false).is_none());
        assert!(!judge(&e, &log, 8.1, false).unwrap().passed);
    }

    #[test]
    fn reference_never_happens() {
        let e = build(YAML);
        let log = Log::new().connect(1, 0.1).events();
        let v = judge(&e, &log, 9.0, true).unwrap();
        assert!(!v.passed);
        assert!(v.detail.starts_with("connection #2 never opened"));
    }
}
