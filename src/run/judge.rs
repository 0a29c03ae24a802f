//! The judging loop of a run: follow the log as it grows, judge the
//! expectations every [`JUDGE_EVERY`], and stop as soon as every verdict is
//! known, at the deadline, or on an interrupt.

use super::sides::Clients;
use crate::events::{Event, EventLog};
use crate::expect::{self, scope::Population, Verdict};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often verdicts are recomputed (and time-based ones decided).
const JUDGE_EVERY: Duration = Duration::from_millis(50);

/// The expectations of a run and what is decided so far.
pub(super) struct Judge {
    exps: Vec<expect::Expect>,
    /// The kept log split per client, when there are several.
    pop: Option<Population>,
    decided: Vec<Option<Verdict>>,
    /// The kept events so far, as received: judging reads this copy instead
    /// of cloning the whole log on every tick.
    seen: Vec<Event>,
    /// Warnings found while watching (a client command that exited).
    pub(super) warnings: Vec<String>,
}

/// How the watch ended.
pub(super) enum WatchEnd {
    /// Every verdict is known, or the deadline came.
    Done,
    /// Ctrl-C.
    Interrupted,
}

impl Judge {
    pub(super) fn new(mut exps: Vec<expect::Expect>, clients: usize) -> Result<Judge, String> {
        for e in exps.iter_mut() {
            e.per_client(clients)?;
        }
        Ok(Judge {
            decided: vec![None; exps.len()],
            exps,
            pop: (clients > 1).then(|| Population::new(clients)),
            seen: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// Take in one event from the feed: every judge sees it (each client's
    /// judges, those of its client); the kept ones are copied for judging.
    pub(super) fn take(&mut self, log: &EventLog, e: Event) {
        let keep = log.keeps(&e);
        expect::observe_all(&mut self.exps, self.pop.as_mut(), &e, keep);
        if keep {
            self.seen.push(e);
        }
    }

    /// Judge at `now`; true once every verdict is known.
    fn tick(&mut self, now: Duration) -> bool {
        if self.exps.is_empty() {
            return false;
        }
        let verdicts = expect::judge_all(&self.exps, &self.seen, now, false, self.pop.as_ref());
        for (d, v) in self.decided.iter_mut().zip(verdicts) {
            if d.is_none() {
                *d = v;
            }
        }
        self.decided.iter().all(Option::is_some)
    }

    /// Follow the log until every verdict is known, `deadline`, or `interrupt`.
    pub(super) async fn watch(
        &mut self,
        log: &EventLog,
        rx: &mut UnboundedReceiver<Event>,
        clients: &mut Clients,
        deadline: Instant,
        interrupt: &CancellationToken,
        mut on_event: impl FnMut(&Event),
    ) -> WatchEnd {
        let mut tick = tokio::time::interval(JUDGE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return WatchEnd::Done,
                _ = interrupt.cancelled() => return WatchEnd::Interrupted,
                ev = rx.recv() => match ev {
                    Some(e) => {
                        on_event(&e);
                        self.take(log, e);
                    }
                    None => return WatchEnd::Done,
                },
                _ = tick.tick() => {
                    let w = clients.poll_exits(log);
                    self.warnings.extend(w);
                    if self.tick(log.now()) {
                        return WatchEnd::Done;
                    }
                }
            }
        }
    }

    /// The final verdicts on the whole log (each client's judges on the
    /// kept events of that client): an early verdict stands, the others are
    /// decided now.
    pub(super) fn finish(self, events: &[Event], end: Duration) -> Vec<Verdict> {
        let finals = expect::judge_all(&self.exps, events, end, true, self.pop.as_ref());
        self.decided
            .into_iter()
            .zip(finals)
            .zip(&self.exps)
            .map(|((early, last), e)| {
                early.or(last).unwrap_or_else(|| Verdict {
                    name: e.name.clone(),
                    kind: e.kind.to_string(),
                    passed: false,
                    observed: None,
                    detail: "no verdict could be reached".into(),
                })
            })
            .collect()
    }
}
