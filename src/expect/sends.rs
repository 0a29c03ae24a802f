//! `sends`: `from` sends at least `count` frames matching `match` in
//! `(ref, ref + within]` (on any connection). Passes as soon as the count is
//! reached; fails once the deadline passed. Observed: when the last needed
//! frame came, after the reference.

use super::common::{plural, secs, verdict};
use super::refs;
use super::{Expectation, JudgeCtx, Verdict};
use crate::events::{EventKind, Side};
use crate::matcher::Matcher;
use crate::scenario::{Dur, Reference};
use std::time::Duration;

const KIND: &str = "sends";

/// The `sends` expectation.
#[derive(Debug, Clone)]
pub struct Sends {
    name: String,
    from: Side,
    matcher: Matcher,
    after: Reference,
    within: Duration,
    count: u32,
}

impl Sends {
    /// From the scenario parameters.
    pub fn new(
        name: &str,
        from: Side,
        matcher: Matcher,
        after: &Reference,
        within: Dur,
        count: u32,
    ) -> Sends {
        Sends {
            name: name.to_string(),
            from,
            matcher,
            after: after.clone(),
            within: within.0,
            count,
        }
    }
}

impl Expectation for Sends {
    fn judge(&self, ctx: &JudgeCtx<'_>) -> Option<Verdict> {
        let ctx = &super::common::before_stopping(ctx);
        let ev = ctx.events;
        let from = self.from;
        let what = refs::describe(&self.after);
        let limit = Dur(self.within);
        let out =
            |passed, observed, detail| Some(verdict(&self.name, KIND, passed, observed, detail));
        let at = match super::common::locate_or_fail(
            &self.after,
            ctx,
            &self.name,
            KIND,
            "nothing sent after it could be counted",
        ) {
            Ok(at) => at,
            Err(v) => return v,
        };
        let deadline = at.t + self.within;
        let mut seen = 0u32;
        let mut conns: Vec<u32> = Vec::new();
        for e in ev.iter().skip(at.pos) {
            if e.t > deadline {
                break;
            }
            let EventKind::Frame(f) = &e.kind else {
                continue;
            };
            if f.dir != from.sending() || !self.matcher.matches(f) {
                continue;
            }
            seen += 1;
            if let Some(c) = e.conn {
                if !conns.contains(&c) {
                    conns.push(c);
                }
            }
            if seen >= self.count.max(1) {
                let took = e.t.saturating_sub(at.t);
                let which = if self.count <= 1 {
                    "a matching frame".to_string()
                } else {
                    format!("{} matching frames", self.count)
                };
                return out(
                    true,
                    Some(took),
                    format!(
                        "the {from} sent {which} on connection {} {} after {what} at t={}; limit {limit}",
                        super::common::conn_list(&conns),
                        secs(took),
                        secs(at.t)
                    ),
                );
            }
        }
        if !(ctx.finished || ctx.now > deadline) {
            return None;
        }
        let ended = if ctx.now < deadline {
            format!(" (the run ended at t={})", secs(ctx.now))
        } else {
            String::new()
        };
        out(
            false,
            None,
            format!(
                "the {from} sent {} within {limit} after {what} (t={}){ended}; at least {} needed",
                plural(seen as usize, "matching frame"),
                secs(at.t),
                self.count.max(1)
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
        assert!(judge(&*e, &log.events(), 5.1, false).is_none());
        let log = reconnected()
            .text(2, 5.1, Client, "subscribe a")
            .text(2, 5.2, Server, "subscribe echo")
            .text(2, 5.3, Client, "hello")
            .text(2, 5.5, Client, "subscribe b")
            .events();
        let v = judge(&*e, &log, 5.5, false).unwrap();
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
        let v = judge(&*e, &log, 8.5, false).unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.detail,
            "the client sent 1 matching frame within 3s after connection #2 opened (t=5.00 s); at least 2 needed"
        );
        let log = reconnected().text(2, 5.1, Client, "subscribe a").events();
        assert!(judge(&*e, &log, 7.9, false).is_none());
        assert!(!judge(&*e, &log, 8.1, false).unwrap().passed);
    }

    #[test]
    fn reference_never_happens() {
        let e = build(YAML);
        let log = Log::new().connect(1, 0.1).events();
        let v = judge(&*e, &log, 9.0, true).unwrap();
        assert!(!v.passed);
        assert!(v.detail.starts_with("connection #2 never opened"));
    }
}
