//! Many clients: which client each connection belongs to, and the one
//! mechanism that judges an expectation per client.
//!
//! A run with several clients gives client `i` a URL with
//! `flatline_client=i` in its query ([`crate::run::client_url`]); the relay
//! logs the request target, so the log alone says which client opened which
//! connection. [`Population`] splits the log into one log per client as it
//! grows (events of no connection, such as faults, go to every client's
//! log), and [`judge_scoped`] judges an expectation on each of them and
//! folds the verdicts by the expectation's [`ClientScope`]: every client must
//! pass (`all`), or at least a percentage of them.

use super::{Expect, Verdict};
use crate::events::{Event, EventKind};
use crate::run::CLIENT_QUERY;
use crate::scenario::ClientScope;
use std::collections::HashMap;

/// The client index a request target names (`...?flatline_client=3`).
pub fn client_in_target(target: &str) -> Option<usize> {
    let (_, query) = target.split_once('?')?;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == CLIENT_QUERY).then(|| v.parse().ok()).flatten()
    })
}

/// Which client each connection belongs to, from the logged request targets.
pub fn attribute(events: &[Event]) -> HashMap<u32, usize> {
    events
        .iter()
        .filter_map(|e| match (&e.kind, e.conn) {
            (EventKind::Request { path, .. }, Some(n)) => client_in_target(path).map(|c| (n, c)),
            _ => None,
        })
        .collect()
}

/// The log split per client, kept up to date as events arrive.
#[derive(Debug, Default)]
pub struct Population {
    /// Each client's log, in log order.
    logs: Vec<Vec<Event>>,
    /// The position in the whole log of each event of `logs`.
    seqs: Vec<Vec<usize>>,
    /// The client of each attributed connection.
    owner: HashMap<u32, usize>,
    /// Events of connections whose client is not known yet (an accept
    /// before its request; a connection refused before its request stays here).
    pending: HashMap<u32, Vec<(usize, bool, Event)>>,
    next: usize,
}

impl Population {
    /// An empty population of `n` clients.
    pub fn new(n: usize) -> Population {
        Population {
            logs: vec![Vec::new(); n],
            seqs: vec![Vec::new(); n],
            ..Population::default()
        }
    }

    /// A population built from a whole log.
    pub fn from_log(n: usize, events: &[Event]) -> Population {
        let mut p = Population::new(n);
        for e in events {
            p.push(e);
        }
        p
    }

    /// How many clients.
    pub fn len(&self) -> usize {
        self.logs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// Client `i`'s log.
    pub fn log(&self, i: usize) -> &[Event] {
        &self.logs[i]
    }

    /// Take in the next event of the log (kept).
    pub fn push(&mut self, e: &Event) {
        self.route(e, true, |_, _| {});
    }

    /// Take in the next event: `to(client, event)` for each client it
    /// belongs to (every client for an event of no connection; a
    /// connection's events wait until its request names its client), and
    /// keep it in their logs if `keep` (frames the log folds are only routed).
    pub fn route(&mut self, e: &Event, keep: bool, mut to: impl FnMut(usize, &Event)) {
        let seq = self.next;
        self.next += 1;
        let Some(n) = e.conn else {
            for (c, (log, seqs)) in self.logs.iter_mut().zip(&mut self.seqs).enumerate() {
                to(c, e);
                if keep {
                    log.push(e.clone());
                    seqs.push(seq);
                }
            }
            return;
        };
        if let Some(&c) = self.owner.get(&n) {
            to(c, e);
            if keep {
                self.logs[c].push(e.clone());
                self.seqs[c].push(seq);
            }
            return;
        }
        let client = match &e.kind {
            EventKind::Request { path, .. } => {
                client_in_target(path).filter(|c| *c < self.logs.len())
            }
            _ => None,
        };
        let Some(c) = client else {
            self.pending
                .entry(n)
                .or_default()
                .push((seq, keep, e.clone()));
            return;
        };
        self.owner.insert(n, c);
        // The connection's earlier events (its accept) go in at their place.
        for (s, kept, ev) in self.pending.remove(&n).unwrap_or_default() {
            to(c, &ev);
            if kept {
                let at = self.seqs[c].partition_point(|x| *x < s);
                self.seqs[c].insert(at, s);
                self.logs[c].insert(at, ev);
            }
        }
        to(c, e);
        if keep {
            self.logs[c].push(e.clone());
            self.seqs[c].push(seq);
        }
    }
}

/// Judge `exp` on each client's log and fold the verdicts by its scope:
/// decided as soon as enough clients passed, or too many failed.
pub fn judge_scoped(
    exp: &Expect,
    pop: &Population,
    now: std::time::Duration,
    finished: bool,
) -> Option<Verdict> {
    let scope = exp.scope;
    let n = pop.len();
    let needed = scope.needed(n);
    let mut passed: Vec<(usize, Verdict)> = Vec::new();
    let mut failed: Vec<(usize, Verdict)> = Vec::new();
    let mut undecided = 0;
    for i in 0..n {
        match exp.client_verdict(i, pop.log(i), now, finished) {
            Some(v) if v.passed => passed.push((i, v)),
            Some(v) => failed.push((i, v)),
            None => undecided += 1,
        }
    }
    let ok = passed.len() >= needed;
    if !ok && passed.len() + undecided >= needed && !finished {
        return None;
    }
    let need = match scope {
        ClientScope::All => format!("all {n} needed"),
        ClientScope::AtLeast(p) => format!("at least {needed} ({p}%) needed"),
    };
    let mut observed: Vec<_> = passed.iter().filter_map(|(_, v)| v.observed).collect();
    observed.sort();
    let detail = if ok {
        let slowest = passed.iter().max_by_key(|(_, v)| v.observed);
        let mut d = format!("{} of {n} clients passed ({need})", passed.len());
        if let Some((i, v)) = slowest.filter(|(_, v)| v.observed.is_some()) {
            d.push_str(&format!("; slowest, client {i}: {}", v.detail));
        }
        d
    } else {
        let (i, v) = &failed[0];
        format!(
            "{} of {n} clients passed ({need}), {} failed; first, client {i}: {}",
            passed.len(),
            failed.len(),
            v.detail
        )
    };
    // The measured value: the worst among the clients counted to pass.
    let obs = if ok {
        observed
            .get(
                needed
                    .saturating_sub(1)
                    .min(observed.len().saturating_sub(1)),
            )
            .copied()
    } else {
        failed[0].1.observed
    };
    Some(Verdict {
        name: exp.name.clone(),
        kind: exp.kind.to_string(),
        passed: ok,
        observed: obs,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testlog::Log;
    use super::*;
    use crate::scenario::Scenario;
    use std::time::Duration;

    fn request(log: Log, conn: u32, t: f64, client: usize) -> Log {
        log.push(
            Some(conn),
            t,
            EventKind::Request {
                path: format!("/feed?x=1&flatline_client={client}"),
                extensions_removed: false,
            },
        )
    }

    #[test]
    fn targets_name_their_client() {
        assert_eq!(client_in_target("/feed?flatline_client=7"), Some(7));
        assert_eq!(client_in_target("/f?a=b&flatline_client=12&c"), Some(12));
        assert_eq!(client_in_target("/feed"), None);
        assert_eq!(client_in_target("/feed?flatline_client=x"), None);
        assert_eq!(client_in_target("/feed?my_flatline_client=3"), None);
    }

    #[test]
    fn the_log_splits_per_client_in_order() {
        // Client 1's accept comes before a fault starts, its request after:
        // the accept still goes in before the fault in client 1's log.
        let log = Log::new().accept(1, 0.1);
        let log = log.fault_start("f", &[], 0.15);
        let log = request(log, 1, 0.2, 1).accept(2, 0.3);
        let log = request(log, 2, 0.3, 0).accept(3, 0.4).events();
        let pop = Population::from_log(2, &log);
        let kinds = |i: usize| -> Vec<(Option<u32>, &'static str)> {
            pop.log(i)
                .iter()
                .map(|e| {
                    let k = match e.kind {
                        EventKind::Accept { .. } => "accept",
                        EventKind::Request { .. } => "request",
                        EventKind::FaultStart { .. } => "fault",
                        _ => "other",
                    };
                    (e.conn, k)
                })
                .collect()
        };
        assert_eq!(
            kinds(1),
            [(Some(1), "accept"), (None, "fault"), (Some(1), "request")]
        );
        assert_eq!(
            kinds(0),
            [(None, "fault"), (Some(2), "accept"), (Some(2), "request")]
        );
        // Connection 3 never said who it is: in no client's log.
    }

    fn reconnects_by_client(opened: &[(usize, Option<f64>)]) -> (Vec<Event>, usize) {
        let mut log = Log::new()
            .fault_start("outage", &[], 1.0)
            .fault_end("outage", &[], 2.0);
        for (i, (client, t)) in opened.iter().enumerate() {
            let n = i as u32 + 1;
            if let Some(t) = t {
                log = request(log.accept(n, *t), n, *t, *client).open(n, *t);
            }
        }
        (log.events(), opened.len())
    }

    fn scoped(scope: &str, log: &[Event], n: usize, now: f64, finished: bool) -> Option<Verdict> {
        let yaml = format!(
            "name: t\ndescription: d\nduration: 40s\nfaults:\n  - {{name: outage, kind: partition, at: 1s, duration: 1s}}\nexpect:\n  - {{kind: reconnects, after: outage.end, within: 2s, clients: '{scope}'}}\n"
        );
        let s: Scenario = serde_yaml::from_str(&yaml).expect("scenario");
        let mut exps = super::super::build(&s).unwrap();
        let mut pop = Population::new(n);
        for e in exps.iter_mut() {
            e.per_client(n).unwrap();
        }
        for ev in log {
            super::super::runner::observe_all(&mut exps, Some(&mut pop), ev, true);
        }
        super::super::judge_all(
            &exps,
            log,
            Duration::from_secs_f64(now),
            finished,
            Some(&pop),
        )
        .pop()
        .unwrap()
    }

    #[test]
    fn all_clients_must_pass_by_default() {
        let (log, n) = reconnects_by_client(&[(0, Some(2.5)), (1, Some(3.0)), (2, None)]);
        // Client 2 may still reconnect before 4 s: undecided.
        assert_eq!(scoped("all", &log, n, 3.5, false), None);
        let v = scoped("all", &log, n, 4.5, false).expect("decided at 4 s");
        assert!(!v.passed);
        assert!(
            v.detail
                .starts_with("2 of 3 clients passed (all 3 needed), 1 failed; first, client 2: "),
            "{}",
            v.detail
        );
    }

    #[test]
    fn a_fraction_passes_early_and_reports_the_slowest_counted() {
        let (log, n) = reconnects_by_client(&[(0, Some(2.5)), (1, Some(3.0)), (2, None)]);
        let v = scoped("60%", &log, n, 3.1, false).expect("2 of 3 is enough");
        assert!(v.passed, "{}", v.detail);
        assert_eq!(v.observed, Some(Duration::from_secs(1)));
        assert!(
            v.detail.starts_with(
                "2 of 3 clients passed (at least 2 (60%) needed); slowest, client 1: "
            ),
            "{}",
            v.detail
        );
    }

    #[test]
    fn scopes_parse_and_count() {
        assert_eq!("all".parse::<ClientScope>(), Ok(ClientScope::All));
        assert_eq!("90%".parse::<ClientScope>(), Ok(ClientScope::AtLeast(90.0)));
        assert!("0%".parse::<ClientScope>().is_err());
        assert!("150%".parse::<ClientScope>().is_err());
        assert!("most".parse::<ClientScope>().is_err());
        assert_eq!(ClientScope::AtLeast(90.0).needed(200), 180);
        assert_eq!(ClientScope::AtLeast(90.0).needed(3), 3);
        assert_eq!(ClientScope::AtLeast(50.0).needed(3), 2);
        assert_eq!(ClientScope::All.needed(7), 7);
    }
}
