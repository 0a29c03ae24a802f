//! The timeline controller: turns the scenario's faults into starts and stops
//! at the right moments. References (`open#2 + 1s`, `outage.end`) are
//! resolved from the event log as events happen; a fault whose reference
//! never happens never starts. Faults due at the same instant are applied in
//! file order. The controller only acts through the relay's [`Board`] and
//! only records through the [`EventLog`].

use crate::events::{Event, EventLog};
use crate::faults::Fault;
use crate::relay::Board;
use crate::scenario::{FaultSpec, RefBase, Reference, Scenario};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

enum State {
    Pending,
    Active { until: Option<Duration> },
    Done,
}

struct Planned {
    name: String,
    spec: FaultSpec,
    fault: Arc<dyn Fault>,
    instant: bool,
    state: State,
}

/// The controller for one run.
pub struct Timeline {
    planned: Vec<Planned>,
    /// First time each reference base happened.
    known: HashMap<RefBase, Duration>,
}

impl Timeline {
    /// Build the faults of a scenario.
    pub fn new(s: &Scenario) -> Result<Timeline, String> {
        let mut planned = Vec::new();
        for (i, spec) in s.faults.iter().enumerate() {
            let name = s.fault_name(i);
            let fault: Arc<dyn Fault> = Arc::from(
                spec.kind
                    .build()
                    .map_err(|e| format!("fault `{name}`: {e}"))?,
            );
            planned.push(Planned {
                name,
                instant: spec.kind.is_instant(),
                spec: spec.clone(),
                fault,
                state: State::Pending,
            });
        }
        let mut known = HashMap::new();
        known.insert(RefBase::Start, Duration::ZERO);
        Ok(Timeline { planned, known })
    }

    /// Replace each fault by what `f` makes of it (in `--netns` mode, its
    /// kernel stand-in).
    pub fn map_faults(&mut self, f: impl Fn(Arc<dyn Fault>) -> Arc<dyn Fault>) {
        for p in &mut self.planned {
            p.fault = f(p.fault.clone());
        }
    }

    /// Record when a reference base first happened; whether it was new.
    fn note(&mut self, e: &Event) -> bool {
        match crate::expect::refs::base_of(e) {
            Some(b) if !self.known.contains_key(&b) => {
                self.known.insert(b, e.t);
                true
            }
            _ => false,
        }
    }

    fn due(&self, r: &Option<Reference>) -> Option<Duration> {
        match r {
            None => Some(Duration::ZERO),
            Some(r) => self.known.get(&r.base).map(|t| *t + r.offset),
        }
    }

    /// Start and stop what is due at `now`; returns the next moment something
    /// is due, if known.
    fn step(&mut self, now: Duration, board: &Board, log: &EventLog) -> Option<Duration> {
        // Repeat: starting one fault can make another's reference happen now.
        loop {
            let mut fired = false;
            for i in 0..self.planned.len() {
                let due = self.due(&self.planned[i].spec.at);
                let p = &mut self.planned[i];
                match p.state {
                    State::Pending => {
                        let Some(due) = due else { continue };
                        if due > now {
                            continue;
                        }
                        board.start_fault(&p.name, p.fault.clone(), &p.spec.connections, p.instant);
                        fired = true;
                        let t = log.now();
                        let name = p.name.clone();
                        if p.instant {
                            p.state = State::Done;
                            self.known
                                .entry(RefBase::FaultEnd(name.clone()))
                                .or_insert(t);
                        } else {
                            p.state = State::Active {
                                until: p.spec.duration.map(|d| t + d.0),
                            };
                        }
                        self.known.entry(RefBase::FaultStart(name)).or_insert(t);
                    }
                    State::Active { until: Some(until) } if until <= now => {
                        board.stop_fault(&p.name);
                        p.state = State::Done;
                        fired = true;
                        let t = log.now();
                        let name = p.name.clone();
                        self.known.entry(RefBase::FaultEnd(name)).or_insert(t);
                    }
                    _ => {}
                }
            }
            if !fired {
                break;
            }
        }
        let mut next: Option<Duration> = None;
        for p in &self.planned {
            let t = match p.state {
                State::Pending => self.due(&p.spec.at),
                State::Active { until } => until,
                State::Done => None,
            };
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Duration| n.min(t)));
            }
        }
        next
    }

    /// Drive the timeline until `stop` is cancelled. Active faults are left
    /// as they are when it stops (the run is ending).
    ///
    /// The controller wakes for every logged event (a reference may have
    /// happened) but only recomputes when one did, and keeps one timer armed
    /// for the next due moment: under traffic the relay logs tens of
    /// thousands of frames a second. The runtime's timer has a 1 ms
    /// granularity and rounds up, so it is asked to wake the controller
    /// [`TIMER_SLACK`] early and the rest is slept on a blocking thread with
    /// the OS's finer timer.
    pub async fn drive(mut self, board: Arc<Board>, log: EventLog, stop: CancellationToken) {
        let (past, mut rx) = log.snapshot_and_subscribe();
        for e in &past {
            self.note(e);
        }
        let mut next = self.step(log.now(), &board, &log);
        let timer = tokio::time::sleep_until(coarse(&log, next.unwrap_or_default()));
        tokio::pin!(timer);
        let mut armed = next;
        loop {
            if next != armed {
                if let Some(t) = next {
                    timer.as_mut().reset(coarse(&log, t));
                }
                armed = next;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = timer.as_mut(), if armed.is_some() => {
                    if let Some(t) = armed {
                        let rest = t.saturating_sub(log.now());
                        if !rest.is_zero() {
                            let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
                        }
                    }
                    next = self.step(log.now(), &board, &log);
                    // Re-arm even when the next moment is the same one.
                    armed = None;
                }
                ev = rx.recv() => {
                    let learned = match ev {
                        Ok(e) => self.note(&e),
                        Err(RecvError::Lagged(_)) => {
                            let mut any = false;
                            for e in log.events() {
                                any |= self.note(&e);
                            }
                            any
                        }
                        Err(RecvError::Closed) => return,
                    };
                    if learned {
                        next = self.step(log.now(), &board, &log);
                    }
                }
            }
        }
    }
}

/// How early the runtime's timer is asked to wake the controller.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// When to wake for something due at `t`: [`TIMER_SLACK`] early.
fn coarse(log: &EventLog, t: Duration) -> tokio::time::Instant {
    (log.start() + t.saturating_sub(TIMER_SLACK)).into()
}
