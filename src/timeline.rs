//! The timeline controller: turns the scenario's faults into starts and stops
//! at the right moments. References (`open#2 + 1s`, `outage.end`) are
//! resolved from the event log as events happen; a fault whose reference
//! never happens never starts. Faults due at the same instant are applied in
//! file order. The controller only acts through the relay's [`Board`] and
//! only records through the [`EventLog`].

use crate::events::{Event, EventLog};
use crate::faults::Fault;
use crate::relay::Board;
use crate::scenario::{Connections, FaultSpec, RefBase, Reference, Scenario};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

enum State {
    Pending,
    Active { until: Option<Duration> },
    Done,
}

struct Planned {
    name: String,
    at: Option<Reference>,
    duration: Option<Duration>,
    connections: Connections,
    fault: Arc<dyn Fault>,
    instant: bool,
    state: State,
}

/// A fault added to a running timeline (a live session): when it starts
/// (`at`: `None` is now), how long it lasts (`None`: until stopped) and the
/// connections it covers.
pub struct LiveFault {
    /// Unique name.
    pub name: String,
    /// When it starts; `None` means now.
    pub at: Option<Reference>,
    /// How long it is active; `None` means until [`TimelineCmd::Stop`].
    pub duration: Option<Duration>,
    /// Which connections.
    pub connections: Connections,
    /// The fault.
    pub fault: Arc<dyn Fault>,
    /// Acts once (reset, close…).
    pub instant: bool,
}

impl LiveFault {
    /// From a scenario fault; the error says what could not be built.
    pub fn from_spec(name: &str, spec: &FaultSpec) -> Result<LiveFault, String> {
        Ok(LiveFault {
            name: name.to_string(),
            at: spec.at.clone(),
            duration: spec.duration.map(|d| d.0),
            connections: spec.connections.clone(),
            fault: Arc::from(spec.kind.build()?),
            instant: spec.kind.is_instant(),
        })
    }
}

/// Where a fault of a running timeline stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultState {
    /// Waiting for its `at`.
    Pending,
    /// Active, until the given time if it has a duration.
    Active {
        /// When it ends, if it has a duration.
        until: Option<Duration>,
    },
    /// Ended (or an instant fault that acted).
    Done,
}

/// Commands to a timeline driven by [`Timeline::drive_live`].
pub enum TimelineCmd {
    /// Add a fault; the reply comes once what is due now has been applied.
    Add(LiveFault, oneshot::Sender<FaultState>),
    /// End an active fault now, or cancel a pending one; replies whether the
    /// name was pending or active.
    Stop(String, oneshot::Sender<bool>),
    /// The faults and where each stands, in the order they were added.
    List(oneshot::Sender<Vec<(String, FaultState)>>),
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
                at: spec.at.clone(),
                duration: spec.duration.map(|d| d.0),
                connections: spec.connections.clone(),
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
    fn step(&mut self, now: Duration, board: &Board) -> Option<Duration> {
        // Repeat: starting one fault can make another's reference happen now.
        loop {
            let mut fired = false;
            for i in 0..self.planned.len() {
                let due = self.due(&self.planned[i].at);
                let p = &mut self.planned[i];
                match p.state {
                    State::Pending => {
                        let Some(due) = due else { continue };
                        if due > now {
                            continue;
                        }
                        // The time the fault took effect: its stages went to
                        // the connections at the moment its start was logged.
                        let t =
                            board.start_fault(&p.name, p.fault.clone(), &p.connections, p.instant);
                        fired = true;
                        let name = p.name.clone();
                        if p.instant {
                            p.state = State::Done;
                            self.known
                                .entry(RefBase::FaultEnd(name.clone()))
                                .or_insert(t);
                        } else {
                            p.state = State::Active {
                                until: p.duration.map(|d| t + d),
                            };
                        }
                        self.known.entry(RefBase::FaultStart(name)).or_insert(t);
                    }
                    State::Active { until: Some(until) } if until <= now => {
                        let t = board.stop_fault(&p.name);
                        p.state = State::Done;
                        fired = true;
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
                State::Pending => self.due(&p.at),
                State::Active { until } => until,
                State::Done => None,
            };
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Duration| n.min(t)));
            }
        }
        next
    }

    /// Drive the timeline on a thread of its own until `stop` is
    /// cancelled. Active faults are left as they are when it stops (the run
    /// is ending). The error says the thread could not be started.
    ///
    /// The controller never shares a thread with the relay's connections: on
    /// the runtime's workers, a fault due while the relay was busy waited
    /// for a worker to come back to it (p99 3.2 ms late when saturated). Its
    /// thread runs a current-thread runtime with a timer of its own and
    /// wakes for the next due moment, for every lifecycle or fault event
    /// logged (a reference may have happened; it only recomputes when one
    /// did; frames do not wake it: a busy relay logs thousands of runs of
    /// frames a second, and each wake-up cost the thread CPU time that made
    /// the scheduler run it later when a fault was due) and for live
    /// commands. That timer has a 1 ms granularity and rounds up, so it is
    /// asked to wake the controller [`TIMER_SLACK`] early and the rest is
    /// slept with the OS's finer timer, on the same thread. On a saturated
    /// machine a thread that wakes still waits for a CPU, so the thread asks
    /// to be run as soon as it wakes ([`prompt_wakeups`]).
    pub async fn start(
        self,
        board: Arc<Board>,
        log: EventLog,
        stop: CancellationToken,
    ) -> std::io::Result<Driver> {
        self.spawn(board, log, stop, None).await
    }

    /// [`Timeline::start`], also taking faults added, stopped and listed
    /// while it runs (a live session). Faults are applied by the same step
    /// as the scenario's.
    pub async fn start_live(
        self,
        board: Arc<Board>,
        log: EventLog,
        stop: CancellationToken,
        cmds: mpsc::UnboundedReceiver<TimelineCmd>,
    ) -> std::io::Result<Driver> {
        self.spawn(board, log, stop, Some(cmds)).await
    }

    async fn spawn(
        self,
        board: Arc<Board>,
        log: EventLog,
        stop: CancellationToken,
        cmds: Option<mpsc::UnboundedReceiver<TimelineCmd>>,
    ) -> std::io::Result<Driver> {
        // Dropping the driver unheard stops the thread too.
        let stop = stop.child_token();
        let guard = stop.clone().drop_guard();
        let (ready_tx, ready) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("flatline-timeline".into())
            .spawn(move || {
                prompt_wakeups();
                // Only a timer: no I/O driver, no file descriptor.
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                rt.block_on(self.drive(board, log, stop, cmds));
                drop(rt);
                let _ = done_tx.send(());
            })?;
        match ready.await {
            Ok(Ok(())) => Ok(Driver {
                done,
                thread,
                _stop: guard,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other("the timeline thread ended at start")),
        }
    }

    /// Apply one live command; returns whether the schedule may have changed.
    fn command(&mut self, cmd: TimelineCmd, board: &Board, log: &EventLog) -> bool {
        match cmd {
            TimelineCmd::Add(f, reply) => {
                let name = f.name.clone();
                self.planned.push(Planned {
                    name: f.name,
                    at: f.at,
                    duration: f.duration,
                    connections: f.connections,
                    fault: f.fault,
                    instant: f.instant,
                    state: State::Pending,
                });
                self.step(log.now(), board);
                let _ = reply.send(self.state_of(&name));
                true
            }
            TimelineCmd::Stop(name, reply) => {
                let found = self.planned.iter_mut().find(|p| {
                    p.name == name && matches!(p.state, State::Pending | State::Active { .. })
                });
                let Some(p) = found else {
                    let _ = reply.send(false);
                    return false;
                };
                if matches!(p.state, State::Active { .. }) {
                    let t = board.stop_fault(&p.name);
                    self.known
                        .entry(RefBase::FaultEnd(name.clone()))
                        .or_insert(t);
                }
                p.state = State::Done;
                let _ = reply.send(true);
                true
            }
            TimelineCmd::List(reply) => {
                let all = self
                    .planned
                    .iter()
                    .map(|p| (p.name.clone(), Self::public_state(&p.state)))
                    .collect();
                let _ = reply.send(all);
                false
            }
        }
    }

    fn public_state(s: &State) -> FaultState {
        match s {
            State::Pending => FaultState::Pending,
            State::Active { until } => FaultState::Active { until: *until },
            State::Done => FaultState::Done,
        }
    }

    fn state_of(&self, name: &str) -> FaultState {
        self.planned
            .iter()
            .rev()
            .find(|p| p.name == name)
            .map_or(FaultState::Done, |p| Self::public_state(&p.state))
    }

    /// The controller's loop, on its own thread (it sleeps the last part of
    /// each wait there).
    async fn drive(
        mut self,
        board: Arc<Board>,
        log: EventLog,
        stop: CancellationToken,
        mut cmds: Option<mpsc::UnboundedReceiver<TimelineCmd>>,
    ) {
        // Only what a reference can name: lifecycle and fault events.
        let (past, mut rx) = log.snapshot_and_watch(|e| crate::expect::refs::base_of(e).is_some());
        for e in &past {
            self.note(e);
        }
        let mut next = self.step(log.now(), &board);
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
                            std::thread::sleep(rest);
                        }
                    }
                    next = self.step(log.now(), &board);
                    // Re-arm even when the next moment is the same one.
                    armed = None;
                }
                cmd = async {
                    match cmds.as_mut() {
                        Some(c) => c.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    match cmd {
                        Some(cmd) => {
                            if self.command(cmd, &board, &log) {
                                next = self.step(log.now(), &board);
                            }
                        }
                        // Every sender is gone: no more commands.
                        None => cmds = None,
                    }
                }
                ev = rx.recv() => {
                    let Some(e) = ev else { return };
                    if self.note(&e) {
                        next = self.step(log.now(), &board);
                    }
                }
            }
        }
    }
}

/// A timeline running on its thread ([`Timeline::start`]).
pub struct Driver {
    /// Sent (or dropped) as the thread's last act.
    done: oneshot::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
    _stop: tokio_util::sync::DropGuard,
}

impl Driver {
    /// Wait until the thread has ended (once its `stop` token is cancelled).
    /// Dropping the driver instead stops the thread without waiting.
    pub async fn join(self) {
        let _ = self.done.await;
        // It has nothing left to do but return: joining does not block.
        let _ = self.thread.join();
    }
}

/// How early the runtime's timer is asked to wake the controller.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// When to wake for something due at `t`: [`TIMER_SLACK`] early.
fn coarse(log: &EventLog, t: Duration) -> tokio::time::Instant {
    (log.start() + t.saturating_sub(TIMER_SLACK)).into()
}

/// How the OS schedules the thread that called [`prompt_wakeups`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeups {
    /// Real-time (`SCHED_FIFO`, lowest priority): it runs as soon as it
    /// wakes, ahead of every normal thread.
    Realtime,
    /// A normal thread asking for the shortest time slice (0.1 ms; Linux
    /// 6.12 and later heed it), which lets it preempt busy threads sooner.
    ShortSlice,
    /// As any thread.
    Normal,
}

/// Ask the OS to run the calling thread as soon as it wakes, for a thread
/// that sleeps nearly all the time and works for microseconds when it
/// wakes (the timeline's). Real-time where the process may (root,
/// `CAP_SYS_NICE`, or an `RLIMIT_RTPRIO` of at least 1, as `ulimit -r`
/// shows), else the shortest time slice. Threads and processes it starts
/// get normal scheduling back (`SCHED_FLAG_RESET_ON_FORK`).
pub fn prompt_wakeups() -> Wakeups {
    #[cfg(target_os = "linux")]
    {
        let set = |policy: libc::c_int, priority: u32, runtime: u64| {
            // SAFETY: `sched_attr` is plain data; zeroed is a valid value.
            let mut a: libc::sched_attr = unsafe { std::mem::zeroed() };
            a.size = std::mem::size_of::<libc::sched_attr>() as u32;
            a.sched_policy = policy as u32;
            a.sched_flags = libc::SCHED_FLAG_RESET_ON_FORK as u64;
            a.sched_priority = priority;
            a.sched_runtime = runtime;
            // SAFETY: pid 0 is the calling thread; `a` outlives the call
            // and its `size` says how much the kernel may read.
            unsafe {
                libc::syscall(libc::SYS_sched_setattr, 0, &a as *const libc::sched_attr, 0) == 0
            }
        };
        if set(libc::SCHED_FIFO, 1, 0) {
            return Wakeups::Realtime;
        }
        if set(libc::SCHED_OTHER, 0, 100_000) {
            return Wakeups::ShortSlice;
        }
    }
    Wakeups::Normal
}
