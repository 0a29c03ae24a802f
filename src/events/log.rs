//! The shared event log, and what it keeps.
//!
//! Memory depends on what is judged, not on how many frames pass
//! ([`Retention`]): `flatline relay` keeps nothing and streams; `run` keeps
//! every event except the frames nobody judges one by one, which fold into
//! runs of similar frames ([`EventKind::Frames`]) and per-connection
//! [`ConnSummary`]s. The full per-frame log goes to an [`EventSink`] (a JSON
//! lines file) when one is asked for.
//!
//! Locks: a frame is counted under its connection's own lock (taken by that
//! connection's task only); the log's shared lock is taken only for what is
//! kept: every event that is not a frame, close frames, frames a `match`
//! keeps, and the first frame of each run. Every frame reaches the run's
//! feed (where expectations judge frames as they come, without keeping them)
//! through a lock-free channel.

use super::summary::{ConnCounters, Counted, RecentClosed, Tally};
use super::{ConnSummary, Direction, Event, EventKind, FrameRun, Opcode};
use crate::matcher::Matcher;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

/// What the log keeps in memory.
#[derive(Debug, Clone, Default)]
pub enum Retention {
    /// Every event (the library's default; tests read whole logs).
    #[default]
    All,
    /// Everything but frames, plus close frames and frames matching `keep`;
    /// other frames fold into runs and per-connection summaries (and still
    /// go, one by one, to the feed).
    Fold {
        /// Frames kept one by one.
        keep: Vec<Matcher>,
    },
    /// Nothing kept: events go to subscribers (frames only as counters and
    /// to the sink). What `flatline relay` uses.
    Stream,
}

/// A run of similar frames being counted.
#[derive(Debug)]
struct RunStats {
    count: AtomicU64,
    last_us: AtomicU64,
}

/// One connection's counters and open runs, touched by its own task.
#[derive(Debug)]
struct ConnSlot {
    id: u32,
    /// Bumped when an event of this connection is kept: its runs end.
    epoch: AtomicU64,
    state: Mutex<ConnState>,
}

#[derive(Debug, Default)]
struct ConnState {
    counters: ConnCounters,
    runs: HashMap<String, Arc<RunStats>>,
    seen: (u64, u64),
    /// The label of the frame being folded (one buffer, reused).
    label: String,
}

struct Inner {
    events: Vec<Event>,
    /// Index in `events` of each run's record, and its live counts.
    runs: Vec<(usize, Arc<RunStats>)>,
    conns: BTreeMap<u32, Arc<ConnSlot>>,
    last: Duration,
    /// Subscribers that want only some events ([`EventLog::snapshot_and_watch`]).
    watchers: Vec<Watcher>,
    /// Streaming: the last closed connections' summaries.
    closed: RecentClosed,
}

/// Which events a watcher wants, and where they go.
type Watcher = (fn(&Event) -> bool, mpsc::UnboundedSender<Event>);

struct Shared {
    retention: Retention,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Event>,
    feed: Option<mpsc::UnboundedSender<Event>>,
    sink: Option<EventSink>,
    /// Bumped when an event of no connection is kept: every run ends.
    epoch: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The shared, append-only event log of a run. Cheap to clone (an `Arc`).
/// Subscribers get every kept event through a broadcast channel.
#[derive(Clone)]
pub struct EventLog {
    start: Instant,
    shared: Arc<Shared>,
    /// Set on the clone a connection's task uses ([`EventLog::for_conn`]).
    conn: Option<Arc<ConnSlot>>,
    /// [`EventLog::counts_only`], read for every relayed chunk: kept here,
    /// next to the handle's other fields, not behind the shared pointer.
    counts_only: bool,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("len", &self.len())
            .finish()
    }
}

impl EventLog {
    /// A new log that keeps everything, whose clock starts now.
    pub fn new() -> EventLog {
        Self::starting_at(Instant::now())
    }

    /// A new log that keeps everything, whose clock started at `start`.
    pub fn starting_at(start: Instant) -> EventLog {
        Self::build(start, Retention::All, None, None)
    }

    /// A new log keeping what `retention` says, writing every event to `sink`.
    pub fn with(retention: Retention, sink: Option<EventSink>) -> EventLog {
        Self::build(Instant::now(), retention, sink, None)
    }

    /// Like [`EventLog::with`], plus the feed: every kept event and every
    /// frame, in the order each connection emitted them, through an
    /// unbounded channel that never drops (its reader must keep up).
    pub fn with_feed(
        retention: Retention,
        sink: Option<EventSink>,
    ) -> (EventLog, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self::build(Instant::now(), retention, sink, Some(tx)), rx)
    }

    fn build(
        start: Instant,
        retention: Retention,
        sink: Option<EventSink>,
        feed: Option<mpsc::UnboundedSender<Event>>,
    ) -> EventLog {
        let (tx, _) = broadcast::channel(16384);
        let counts_only = sink.is_none() && matches!(retention, Retention::Stream);
        EventLog {
            counts_only,
            start,
            shared: Arc::new(Shared {
                retention,
                inner: Mutex::new(Inner {
                    events: Vec::new(),
                    runs: Vec::new(),
                    conns: BTreeMap::new(),
                    last: Duration::ZERO,
                    watchers: Vec::new(),
                    closed: RecentClosed::default(),
                }),
                tx,
                feed,
                sink,
                epoch: AtomicU64::new(0),
            }),
            conn: None,
        }
    }

    /// The handle connection `id`'s task emits through: its frames are
    /// counted under a lock of its own.
    pub fn for_conn(&self, id: u32) -> EventLog {
        let slot = self.slot(id);
        EventLog {
            start: self.start,
            shared: self.shared.clone(),
            conn: Some(slot),
            counts_only: self.counts_only,
        }
    }

    fn slot(&self, id: u32) -> Arc<ConnSlot> {
        if let Some(s) = self.conn.as_ref().filter(|s| s.id == id) {
            return s.clone();
        }
        lock(&self.shared.inner)
            .conns
            .entry(id)
            .or_insert_with(|| {
                Arc::new(ConnSlot {
                    id,
                    epoch: AtomicU64::new(0),
                    state: Mutex::new(ConnState::default()),
                })
            })
            .clone()
    }

    /// The instant `t = 0`.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Time since the start of the run.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Append an event stamped now.
    pub fn emit(&self, conn: Option<u32>, kind: EventKind) {
        self.push(Event {
            t: self.now(),
            conn,
            kind,
        });
    }

    /// Append an event that happened at `at`, a clock reading the caller
    /// already took (one reading per wake-up on the data path).
    pub fn emit_at(&self, conn: Option<u32>, kind: EventKind, at: Instant) {
        self.push(Event {
            t: at.saturating_duration_since(self.start),
            conn,
            kind,
        });
    }

    /// Whether frames other than close frames are only counted (streaming,
    /// no sink): the data path may then count them in a [`Tally`] per chunk
    /// ([`EventLog::tally_at`]) and build no event.
    pub fn counts_only(&self) -> bool {
        self.counts_only
    }

    /// Frames of connection `conn` travelling `dir`, all seen at `at`,
    /// counted under one lock. Only when [`EventLog::counts_only`].
    pub fn tally_at(&self, conn: u32, dir: Direction, t: &Tally, at: Instant) {
        self.with_slot(conn, |s| lock(&s.state).counters.add(dir, at, t));
    }

    /// A frame of connection `conn`, seen at `at`. When the log only counts
    /// frames (streaming, no sink) no event is built.
    pub fn frame_at(&self, conn: u32, f: &crate::frame::Frame<'_>, at: Instant) {
        if !self.counts_only() || f.opcode == Opcode::Close {
            return self.push(Event {
                t: at.saturating_duration_since(self.start),
                conn: Some(conn),
                kind: EventKind::Frame(f.info()),
            });
        }
        let c = Counted::of(f.dir, f.opcode, f.len);
        self.with_slot(conn, |s| lock(&s.state).counters.count(at, c, None));
    }

    /// Run `f` on connection `id`'s slot: this connection's own handle
    /// holds it (no refcount traffic per frame), any other looks it up.
    fn with_slot<R>(&self, id: u32, f: impl FnOnce(&ConnSlot) -> R) -> R {
        match self.conn.as_deref().filter(|s| s.id == id) {
            Some(s) => f(s),
            None => f(&self.slot(id)),
        }
    }

    /// Append an event with its own timestamp (kept monotonic: never earlier
    /// than the last kept one).
    pub fn push(&self, ev: Event) {
        if let Some(sink) = &self.shared.sink {
            sink.write(&ev);
        }
        match (&ev.kind, ev.conn, &self.shared.retention) {
            (_, _, Retention::All) => self.keep(ev),
            (EventKind::Frame(_), Some(n), _) => self.frame(n, ev),
            _ => self.keep(ev),
        }
    }

    /// Whether the log keeps `ev` as it is (not folded, not only counted).
    pub fn keeps(&self, ev: &Event) -> bool {
        match (&ev.kind, &self.shared.retention) {
            (_, Retention::All) => true,
            (_, Retention::Stream) => false,
            (EventKind::Frame(f), Retention::Fold { keep, .. }) => {
                f.opcode == Opcode::Close || ev.conn.is_none() || keep.iter().any(|m| m.matches(f))
            }
            (EventKind::Frames(_), _) => false,
            _ => true,
        }
    }

    /// A frame under [`Retention::Fold`] or [`Retention::Stream`]: counted,
    /// then kept (close frames, `keep` matches), folded, or only passed on.
    fn frame(&self, n: u32, ev: Event) {
        if !matches!(ev.kind, EventKind::Frame(_)) {
            return self.keep(ev);
        }
        self.with_slot(n, |slot| self.fold_frame(slot, ev));
    }

    /// [`EventLog::frame`] on the frame's connection slot.
    fn fold_frame(&self, slot: &ConnSlot, ev: Event) {
        let EventKind::Frame(f) = &ev.kind else {
            return self.keep(ev);
        };
        let close = f.opcode == Opcode::Close;
        let keep = match &self.shared.retention {
            Retention::Fold { keep } => keep,
            _ => {
                lock(&slot.state)
                    .counters
                    .count(self.start + ev.t, Counted::of_info(f), None);
                // Close frames still reach subscribers (`flatline relay` says
                // who closed).
                if close {
                    self.keep(ev);
                }
                return;
            }
        };
        let mut guard = lock(&slot.state);
        let st = &mut *guard;
        // The label goes into the connection's buffer: no allocation per
        // frame, only per new run.
        crate::report::transcript::frame_label_into(f, &mut st.label);
        st.counters
            .count(self.start + ev.t, Counted::of_info(f), Some(&st.label));
        if close || keep.iter().any(|m| m.matches(f)) {
            drop(guard);
            return self.keep(ev);
        }
        let epoch = (
            self.shared.epoch.load(Ordering::Acquire),
            slot.epoch.load(Ordering::Acquire),
        );
        if st.seen != epoch {
            st.runs.clear();
            st.seen = epoch;
        }
        if let Some(run) = st.runs.get(st.label.as_str()) {
            run.count.fetch_add(1, Ordering::Relaxed);
            run.last_us
                .store(ev.t.as_micros() as u64, Ordering::Relaxed);
            drop(guard);
            if let Some(feed) = &self.shared.feed {
                let _ = feed.send(ev);
            }
            return;
        }
        let run = Arc::new(RunStats {
            count: AtomicU64::new(1),
            last_us: AtomicU64::new(ev.t.as_micros() as u64),
        });
        st.runs.insert(st.label.clone(), run.clone());
        // Lock order: a connection's slot, then the shared log.
        let mut inner = lock(&self.shared.inner);
        let t = ev.t.max(inner.last);
        inner.last = t;
        let idx = inner.events.len();
        inner.events.push(Event {
            t,
            conn: ev.conn,
            kind: EventKind::Frames(FrameRun {
                frame: f.clone(),
                count: 1,
                last: t,
            }),
        });
        inner.runs.push((idx, run));
        self.publish(&mut inner, ev);
    }

    /// Send to the feed, the watchers and the subscribers (under the shared
    /// lock, so that they see the log's order).
    fn publish(&self, inner: &mut Inner, ev: Event) {
        if !inner.watchers.is_empty() {
            inner
                .watchers
                .retain(|(wants, tx)| !wants(&ev) || tx.send(ev.clone()).is_ok());
        }
        if let Some(feed) = &self.shared.feed {
            if self.shared.tx.receiver_count() == 0 {
                let _ = feed.send(ev);
                return;
            }
            let _ = feed.send(ev.clone());
        }
        if self.shared.tx.receiver_count() > 0 {
            let _ = self.shared.tx.send(ev);
        }
    }

    /// Keep `ev` (or, streaming, only pass it on).
    fn keep(&self, mut ev: Event) {
        // Streaming, a closed connection's counters go with its slot: its
        // summary is taken first (lock order: slot, then the shared log).
        let closed = match (&self.shared.retention, &ev.kind, ev.conn) {
            (Retention::Stream, EventKind::Closed { .. }, Some(n)) => {
                Some(self.with_slot(n, |s| lock(&s.state).counters.summary(n, self.start)))
            }
            _ => None,
        };
        let mut inner = lock(&self.shared.inner);
        if ev.t < inner.last {
            ev.t = inner.last;
        }
        inner.last = ev.t;
        // Any kept event of a connection ends its runs of frames.
        match ev.conn {
            Some(n) => {
                if let Some(s) = inner.conns.get(&n) {
                    s.epoch.fetch_add(1, Ordering::AcqRel);
                }
            }
            None => {
                self.shared.epoch.fetch_add(1, Ordering::AcqRel);
            }
        }
        if matches!(self.shared.retention, Retention::Stream) {
            if let Some(summary) = closed {
                inner.conns.remove(&summary.conn);
                inner.closed.push(summary);
            }
        } else {
            inner.events.push(ev.clone());
        }
        // Subscribing takes this lock in `snapshot_and_subscribe`, so nobody
        // who got a snapshot can miss the event.
        self.publish(&mut inner, ev);
    }

    /// Subscribe to events kept from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.tx.subscribe()
    }

    /// [`EventLog::snapshot_and_subscribe`] for a subscriber that wants only
    /// the events `wants` picks: it is not woken for the others (the
    /// timeline wants lifecycle and fault events, not the runs of frames a
    /// busy relay logs thousands of times a second).
    pub fn snapshot_and_watch(
        &self,
        wants: fn(&Event) -> bool,
    ) -> (Vec<Event>, mpsc::UnboundedReceiver<Event>) {
        let mut inner = lock(&self.shared.inner);
        let (tx, rx) = mpsc::unbounded_channel();
        inner.watchers.push((wants, tx));
        (materialise(&inner), rx)
    }

    /// Subscribe and get a snapshot of everything kept so far, atomically.
    pub fn snapshot_and_subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let inner = lock(&self.shared.inner);
        (materialise(&inner), self.shared.tx.subscribe())
    }

    /// A copy of every event kept so far (runs of frames with their counts).
    pub fn events(&self) -> Vec<Event> {
        materialise(&lock(&self.shared.inner))
    }

    /// The frame summaries of the connections seen (those still open when
    /// streaming), by connection number.
    pub fn summaries(&self) -> Vec<ConnSummary> {
        let slots: Vec<Arc<ConnSlot>> = lock(&self.shared.inner).conns.values().cloned().collect();
        slots
            .iter()
            .map(|s| lock(&s.state).counters.summary(s.id, self.start))
            .collect()
    }

    /// Streaming: the frame summary of connection `conn`, once it closed
    /// (taken: asked again, `None`). The last 256 closed are kept.
    pub fn closed_summary(&self, conn: u32) -> Option<ConnSummary> {
        lock(&self.shared.inner).closed.take(conn)
    }

    /// Number of events kept so far.
    pub fn len(&self) -> usize {
        lock(&self.shared.inner).events.len()
    }

    /// Whether nothing was kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write what the sink has queued and close it (no-op without a sink).
    pub fn finish_sink(&self) -> std::io::Result<()> {
        match &self.shared.sink {
            Some(s) => s.finish(),
            None => Ok(()),
        }
    }

    /// Wait (bounded) until an event satisfying `pred` is in the log; returns it.
    pub async fn wait_for<F>(&self, timeout: Duration, mut pred: F) -> Option<Event>
    where
        F: FnMut(&Event) -> bool,
    {
        let (past, mut rx) = self.snapshot_and_subscribe();
        if let Some(e) = past.into_iter().find(|e| pred(e)) {
            return Some(e);
        }
        let fut = async {
            loop {
                match rx.recv().await {
                    Ok(e) if pred(&e) => return Some(e),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                            return Some(e);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.ok().flatten()
    }

    /// Serialise as JSON lines, one event per line.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for e in self.events() {
            if let Ok(s) = serde_json::to_string(&e) {
                out.push_str(&s);
                out.push('\n');
            }
        }
        out
    }
}

/// The kept events with each run's count and last time filled in.
fn materialise(inner: &Inner) -> Vec<Event> {
    let mut events = inner.events.clone();
    for (i, run) in &inner.runs {
        if let Some(EventKind::Frames(r)) = events.get_mut(*i).map(|e| &mut e.kind) {
            r.count = run.count.load(Ordering::Relaxed);
            r.last = Duration::from_micros(run.last_us.load(Ordering::Relaxed)).max(r.last);
        }
    }
    events
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

mod sink;
pub use sink::EventSink;

#[cfg(test)]
mod tests;
