//! The runner's side of every expectation: its name and `clients:` scope,
//! the prologue every kind shares (locating the reference or window,
//! cutting the log at `Stopping`, wording the verdict), and, with several
//! clients, one judge per client.

use super::common::{before_stopping, locate_or_fail};
use super::kind::{Anchor, Ctx, Judge, Outcome};
use super::scope::{self, Population};
use super::{ExpectKind, JudgeCtx, Verdict};
use crate::events::Event;
use crate::scenario::{ClientScope, Scenario};
use std::time::Duration;

/// One expectation of a run: its name, kind, scope and judges.
pub struct Expect {
    /// The effective name.
    pub name: String,
    /// The kind name.
    pub kind: &'static str,
    /// Which clients it judges when there are several.
    pub scope: ClientScope,
    spec: ExpectKind,
    /// Judges the whole log (one client, or a kind that judges all together).
    judge: Box<dyn Judge>,
    /// One judge per client when there are several ([`Expect::per_client`]).
    clients: Vec<Box<dyn Judge>>,
}

impl std::fmt::Debug for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expect")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

/// Run `judge` with the shared prologue over `ctx`.
fn outcome_of(judge: &dyn Judge, ctx: &JudgeCtx<'_>) -> Option<Outcome> {
    fn whole<'a>(ctx: &JudgeCtx<'a>) -> Ctx<'a> {
        Ctx {
            events: ctx.events,
            now: ctx.now,
            finished: ctx.finished,
            at: None,
            window: None,
        }
    }
    match judge.anchor() {
        Anchor::Whole => judge.judge(&whole(ctx)),
        Anchor::After(r, consequence) => {
            let ctx = before_stopping(ctx);
            match locate_or_fail(r, &ctx, &consequence) {
                Ok(at) => judge.judge(&Ctx {
                    at: Some(at),
                    ..whole(&ctx)
                }),
                Err(o) => o,
            }
        }
        Anchor::Span(span) => match span.locate_or_fail(ctx) {
            Ok(w) => judge.judge(&Ctx {
                window: Some(&w),
                ..whole(ctx)
            }),
            Err(o) => o,
        },
    }
}

impl Expect {
    /// Build the expectation `name` of kind `kind` (judging every client);
    /// the error names it and what is wrong (an invalid regex in `match`).
    pub fn new(name: &str, kind: &ExpectKind) -> Result<Expect, String> {
        Ok(Expect {
            name: name.to_string(),
            kind: kind.name(),
            scope: ClientScope::All,
            spec: kind.clone(),
            judge: kind
                .judge()
                .map_err(|e| format!("expectation `{name}`: {e}"))?,
            clients: Vec::new(),
        })
    }

    /// Judge each of `n` clients on its own (unless the kind judges all
    /// clients together).
    pub fn per_client(&mut self, n: usize) -> Result<(), String> {
        if n < 2 || self.judge.across_clients() {
            return Ok(());
        }
        self.clients = (0..n)
            .map(|_| self.spec.judge())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("expectation `{}`: {e}", self.name))?;
        Ok(())
    }

    /// Whether it is judged per client.
    pub fn is_per_client(&self) -> bool {
        !self.clients.is_empty()
    }

    /// Show the judge an event as it is logged (frames the log folds too).
    pub fn observe(&mut self, e: &Event) {
        self.judge.observe(e);
    }

    /// Show client `i`'s judge an event of that client (or of none).
    pub fn observe_client(&mut self, i: usize, e: &Event) {
        if let Some(j) = self.clients.get_mut(i) {
            j.observe(e);
        }
    }

    fn verdict_from(&self, o: Outcome) -> Verdict {
        Verdict {
            name: self.name.clone(),
            kind: self.kind.to_string(),
            passed: o.passed,
            observed: o.observed,
            detail: o.detail,
        }
    }

    /// The verdict over the kept `events` at `now`, if decided (always when
    /// `finished`).
    pub fn verdict(&self, events: &[Event], now: Duration, finished: bool) -> Option<Verdict> {
        let ctx = JudgeCtx {
            events,
            now,
            finished,
        };
        outcome_of(self.judge.as_ref(), &ctx).map(|o| self.verdict_from(o))
    }

    /// Client `i`'s verdict over its own kept events.
    pub fn client_verdict(
        &self,
        i: usize,
        events: &[Event],
        now: Duration,
        finished: bool,
    ) -> Option<Verdict> {
        let ctx = JudgeCtx {
            events,
            now,
            finished,
        };
        let judge = self.clients.get(i)?;
        outcome_of(judge.as_ref(), &ctx).map(|o| self.verdict_from(o))
    }
}

/// Every expectation of the scenario, with its effective name
/// ([`Scenario::expect_name`]) and scope, in file order.
pub fn build(s: &Scenario) -> Result<Vec<Expect>, String> {
    (0..s.expect.len())
        .map(|i| {
            let spec = &s.expect[i];
            let mut e = Expect::new(&s.expect_name(i), &spec.kind)?;
            e.scope = spec.clients;
            Ok(e)
        })
        .collect()
}

/// Judge every expectation against the kept log at `now`; `None` for those
/// still undecided (never when `finished`). With several clients (`pop`, the
/// kept log split per client), an expectation judged per client is folded by
/// its scope ([`scope::judge_scoped`]).
pub fn judge_all(
    exps: &[Expect],
    events: &[Event],
    now: Duration,
    finished: bool,
    pop: Option<&Population>,
) -> Vec<Option<Verdict>> {
    exps.iter()
        .map(|e| match pop {
            Some(p) if p.len() > 1 && e.is_per_client() => scope::judge_scoped(e, p, now, finished),
            _ => e.verdict(events, now, finished),
        })
        .collect()
}

/// Show every expectation an event as it is logged, and route it to the
/// clients it belongs to (kept in their logs if `keep`).
pub fn observe_all(exps: &mut [Expect], pop: Option<&mut Population>, e: &Event, keep: bool) {
    for x in exps.iter_mut() {
        x.observe(e);
    }
    if let Some(p) = pop {
        p.route(e, keep, |c, ev| {
            for x in exps.iter_mut() {
                x.observe_client(c, ev);
            }
        });
    }
}
