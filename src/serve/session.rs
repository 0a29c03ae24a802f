//! One session: a relay, its event log and a live timeline, isolated from
//! every other session. Faults reach the relay only through the timeline
//! (the same controller `flatline run` drives), expectations are judged by
//! the same expectation kinds, and reports are the run's reports.

use super::error::ApiError;
use crate::events::{Event, EventKind, EventLog};
use crate::expect::{self, Verdict};
use crate::relay::{Board, Relay, RelayConfig, Upstream};
use crate::report::{Report, RunSettings};
use crate::scenario::{ExpectSpec, FaultSpec, Scenario, Toward};
use crate::timeline::{Driver, FaultState, LiveFault, Timeline, TimelineCmd};
use crate::tls::{ServerTls, TlsSettings};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How long connections get to finish closing when a session ends.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How often a waiting expectation is judged again (time-based verdicts).
const JUDGE_EVERY: Duration = Duration::from_millis(20);

/// How a session's connections end when it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseHow {
    /// FIN toward both sides.
    Fin,
    /// RST toward both sides.
    Rst,
}

/// What a session is made from.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Where to connect.
    pub upstream: Upstream,
    /// As given, for reports.
    pub upstream_text: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Seeds every random choice.
    pub seed: u64,
    /// A scenario run on the session's timeline.
    pub scenario: Option<Scenario>,
    /// Relay connections that are not WebSocket as raw TCP.
    pub raw_fallback: bool,
    /// `wss://` toward the client, and how a `wss://` upstream is checked.
    pub tls: TlsSettings,
}

/// A verdict that may still be open: `passed` is `None` while undecided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveVerdict {
    /// The expectation's name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// `None` while later events could still change it.
    pub passed: Option<bool>,
    /// The measured value in milliseconds.
    pub observed_ms: Option<f64>,
    /// One sentence naming connections and times.
    pub detail: String,
}

impl LiveVerdict {
    fn decided(v: Verdict) -> LiveVerdict {
        LiveVerdict {
            name: v.name,
            kind: v.kind,
            passed: Some(v.passed),
            observed_ms: v.observed.map(|d| d.as_micros() as f64 / 1000.0),
            detail: v.detail,
        }
    }
}

/// What the session was given, in order.
#[derive(Default)]
struct Specs {
    faults: Vec<FaultSpec>,
    expect: Vec<ExpectSpec>,
}

struct Running {
    relay: Relay,
    timeline: Driver,
}

/// A live session.
pub struct Session {
    /// Its id.
    pub id: String,
    cfg: SessionConfig,
    url: String,
    addr: SocketAddr,
    log: EventLog,
    board: Arc<Board>,
    cmds: mpsc::UnboundedSender<TimelineCmd>,
    stop_timeline: CancellationToken,
    /// Cancelled once the session has stopped (ends followers).
    pub stopped: CancellationToken,
    running: tokio::sync::Mutex<Option<Running>>,
    specs: Mutex<Specs>,
    /// Kept for the session's life: a generated certificate's directory is
    /// removed when this is dropped.
    server_tls: Option<Arc<ServerTls>>,
}

impl Session {
    /// Start the relay and the timeline (with the scenario's faults, if any).
    pub async fn start(id: String, cfg: SessionConfig) -> Result<Arc<Session>, ApiError> {
        let timeline = match &cfg.scenario {
            Some(s) => Timeline::new(s).map_err(|e| ApiError::field("scenario", e))?,
            None => Timeline::new(&empty_scenario()).map_err(ApiError::bad)?,
        };
        let log = EventLog::new();
        let server_tls = cfg
            .tls
            .prepare()
            .map_err(|e| ApiError::field("tls", e.to_string()))?;
        let relay = Relay::start(
            RelayConfig {
                listen: cfg.listen,
                upstream: cfg.upstream.clone(),
                keep_extensions: cfg
                    .scenario
                    .as_ref()
                    .is_some_and(|s| s.extensions == crate::scenario::Extensions::Keep),
                seed: cfg.seed,
                raw_fallback: cfg.raw_fallback,
                sockets: None,
                tls: server_tls.clone(),
                upstream_trust: cfg.tls.upstream.clone(),
            },
            log.clone(),
        )
        .await
        .map_err(|e| ApiError::field("listen", e.to_string()))?;
        let board = relay.board().clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let stop_timeline = CancellationToken::new();
        let task = match timeline
            .start_live(board.clone(), log.clone(), stop_timeline.clone(), rx)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                relay.stop().await;
                return Err(ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot start the timeline's thread: {e}"),
                ));
            }
        };
        let specs = Specs {
            faults: cfg
                .scenario
                .as_ref()
                .map(|s| {
                    let mut f = s.faults.clone();
                    for (i, spec) in f.iter_mut().enumerate() {
                        spec.name = Some(s.fault_name(i));
                    }
                    f
                })
                .unwrap_or_default(),
            expect: cfg
                .scenario
                .as_ref()
                .map(|s| {
                    let mut e = s.expect.clone();
                    for (i, spec) in e.iter_mut().enumerate() {
                        spec.name = Some(s.expect_name(i));
                    }
                    e
                })
                .unwrap_or_default(),
        };
        Ok(Arc::new(Session {
            id,
            url: relay.url(),
            addr: relay.addr(),
            cfg,
            log,
            board,
            cmds: tx,
            stop_timeline,
            stopped: CancellationToken::new(),
            running: tokio::sync::Mutex::new(Some(Running {
                relay,
                timeline: task,
            })),
            specs: Mutex::new(specs),
            server_tls,
        }))
    }

    /// The listener's certificate, when the session serves `wss://`.
    pub fn server_tls(&self) -> Option<&ServerTls> {
        self.server_tls.as_deref()
    }

    /// The relay's `ws://` (or `wss://`) URL (its address plus the upstream's path).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The relay's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.cfg.seed
    }

    /// The upstream as given.
    pub fn upstream(&self) -> &str {
        &self.cfg.upstream_text
    }

    /// The event log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    fn specs(&self) -> std::sync::MutexGuard<'_, Specs> {
        self.specs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The faults given so far (scenario and API), for references.
    pub fn fault_specs(&self) -> Vec<FaultSpec> {
        self.specs().faults.clone()
    }

    /// How many expectations were given so far.
    pub fn expect_count(&self) -> usize {
        self.specs().expect.len()
    }

    /// The expectation named `name`, if given before.
    pub fn expectation(&self, name: &str) -> Option<ExpectSpec> {
        self.specs()
            .expect
            .iter()
            .find(|e| e.name.as_deref() == Some(name))
            .cloned()
    }

    /// Whether a fault of that name was ever added.
    pub fn has_fault(&self, name: &str) -> bool {
        self.specs()
            .faults
            .iter()
            .any(|f| f.name.as_deref() == Some(name))
    }

    /// Add a fault given in the scenario format (named already).
    pub async fn add_fault(&self, spec: FaultSpec) -> Result<FaultState, ApiError> {
        let name = spec.name.clone().unwrap_or_default();
        let live = LiveFault::from_spec(&name, &spec).map_err(ApiError::bad)?;
        self.specs().faults.push(spec);
        self.add_live(live).await
    }

    /// Add a fault built by the caller (Toxiproxy's toxics).
    pub async fn add_live(&self, fault: LiveFault) -> Result<FaultState, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(TimelineCmd::Add(fault, tx))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// End a fault now (or cancel it if pending); whether it was pending or active.
    pub async fn stop_fault(&self, name: &str) -> Result<bool, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(TimelineCmd::Stop(name.to_string(), tx))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Every fault and where it stands.
    pub async fn faults(&self) -> Result<Vec<(String, FaultState)>, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(TimelineCmd::List(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Remember an expectation (named already) for the reports.
    pub fn add_expectation(&self, spec: ExpectSpec) {
        self.specs().expect.push(spec);
    }

    /// Judge `spec` as a run does: a fresh judge shown every event so far
    /// (the session's log keeps them all), then asked for its verdict.
    fn verdict_of(
        spec: &ExpectSpec,
        events: &[Event],
        now: Duration,
        finished: bool,
    ) -> Result<Option<Verdict>, String> {
        let name = spec.name.clone().unwrap_or_default();
        let mut e = expect::Expect::new(&name, &spec.kind)?;
        for ev in events {
            e.observe(ev);
        }
        Ok(e.verdict(events, now, finished))
    }

    /// Judge one expectation against the log so far.
    pub fn judge(&self, spec: &ExpectSpec, finished: bool) -> Result<LiveVerdict, ApiError> {
        let name = spec.name.clone().unwrap_or_default();
        let events = self.log.events();
        let verdict =
            Self::verdict_of(spec, &events, self.log.now(), finished).map_err(ApiError::bad)?;
        Ok(match verdict {
            Some(v) => LiveVerdict::decided(v),
            None => LiveVerdict {
                name,
                kind: spec.kind.name().to_string(),
                passed: None,
                observed_ms: None,
                detail: "not decided yet: later events can still change the verdict".into(),
            },
        })
    }

    /// Judge until decided or until `wait` has passed (then the verdict
    /// stays open).
    pub async fn judge_waiting(
        &self,
        spec: &ExpectSpec,
        wait: Duration,
    ) -> Result<LiveVerdict, ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        // Judged on a tick rather than on every event: each judgement reads
        // the whole log, and a busy session logs thousands of frames a second.
        loop {
            let v = self.judge(spec, false)?;
            if v.passed.is_some() {
                return Ok(v);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    let mut v = self.judge(spec, false)?;
                    if v.passed.is_none() {
                        v.detail = format!(
                            "not decided after waiting {:.1} s: later events can still change the verdict",
                            wait.as_secs_f64()
                        );
                    }
                    return Ok(v);
                }
                _ = self.stopped.cancelled() => return self.judge(spec, true),
                _ = tokio::time::sleep(JUDGE_EVERY) => {}
            }
        }
    }

    /// Events from index `since` on.
    pub fn events_since(&self, since: usize) -> Vec<Event> {
        let all = self.log.events();
        all.get(since..).map(<[Event]>::to_vec).unwrap_or_default()
    }

    /// The report so far: every expectation judged as if the session ended now.
    pub fn report(&self) -> Report {
        let specs = self.specs();
        let events = self.log.events();
        let now = self.log.now();
        let mut expectations = Vec::new();
        for e in &specs.expect {
            let name = e.name.clone().unwrap_or_default();
            match Self::verdict_of(e, &events, now, true) {
                Ok(v) => expectations.extend(v),
                Err(detail) => expectations.push(Verdict {
                    name,
                    kind: e.kind.name().to_string(),
                    passed: false,
                    observed: None,
                    detail,
                }),
            }
        }
        let mut scenario = self.cfg.scenario.clone().unwrap_or_else(empty_scenario);
        scenario.faults = specs.faults.clone();
        scenario.expect = specs.expect.clone();
        Report {
            scenario: scenario.name.clone(),
            seed: self.cfg.seed,
            passed: expectations.iter().all(|v| v.passed),
            duration: now,
            warnings: expect::warnings(&events),
            expectations,
            commands: Vec::new(),
            connections: self.log.summaries(),
            events,
            scenario_spec: Some(scenario),
            settings: RunSettings {
                upstream: Some(self.cfg.upstream_text.clone()),
                listen: Some(self.addr.to_string()),
                ..RunSettings::default()
            },
        }
    }

    /// Stop: end every connection (FIN or RST), the listener and every task.
    /// Idempotent.
    pub async fn stop(&self, how: CloseHow) {
        let Some(running) = self.running.lock().await.take() else {
            return;
        };
        self.log.emit(None, EventKind::Stopping);
        self.stop_timeline.cancel();
        running.timeline.join().await;
        let mut open = self.board.live_conns();
        if how == CloseHow::Rst && !open.is_empty() {
            let reset = crate::scenario::FaultKind::Reset(crate::faults::reset::Reset {
                toward: Toward::Both,
            });
            if let Ok(f) = reset.build() {
                self.board.start_fault(
                    "session-reset",
                    Arc::from(f),
                    &crate::scenario::Connections::default(),
                    true,
                );
                self.log
                    .wait_for(CLOSE_GRACE, |e| {
                        if let (Some(n), EventKind::Closed { .. }) = (e.conn, &e.kind) {
                            open.retain(|c| *c != n);
                        }
                        open.is_empty()
                    })
                    .await;
            }
        }
        running.relay.stop().await;
        self.stopped.cancel();
    }
}

fn gone() -> ApiError {
    ApiError::not_found("the session has ended")
}

/// The scenario of a session created without one.
fn empty_scenario() -> Scenario {
    Scenario {
        name: "session".into(),
        description: "a live session of flatline serve".into(),
        duration: crate::scenario::Dur(Duration::from_secs(100_000 * 3600)),
        seed: 0,
        upstream: None,
        extensions: Default::default(),
        resolution: None,
        faults: Vec::new(),
        expect: Vec::new(),
        demo_client: Vec::new(),
        network: Default::default(),
        clients: None,
    }
}
