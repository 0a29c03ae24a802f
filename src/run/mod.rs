//! One run of one scenario: start the upstream (a `--server-cmd`, or the
//! built-in demo server), the relay, the timeline and the client (a
//! `--client-cmd`, the built-in demo client, or whoever connects), judge the
//! expectations as the log grows, and stop everything as soon as every
//! verdict is known or at `duration`. Every task, socket and child process
//! started here is stopped before [`run`] returns.

mod judge;
mod proc;
mod setup;
mod sides;

pub use sides::{client_url, CLIENT_QUERY};

use crate::events::{ConnSummary, Event, EventKind, EventLog, EventSink, Retention};
use crate::expect;
use crate::netns::{Netns, NetnsError};
use crate::report::{CommandOutcome, Report, RunSettings};
use crate::scenario::{Network, Scenario};
use crate::tls::{ServerTls, TlsSettings};
use judge::{Judge, WatchEnd};
use setup::{Running, Setup};
use sides::{Clients, ServerSide};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Settings of a run besides the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Overrides the scenario's upstream.
    pub upstream: Option<String>,
    /// Where the relay listens.
    pub listen: SocketAddr,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Shell command started first (the server under test).
    pub server_cmd: Option<String>,
    /// Shell command started at t = 0 with `FLATLINE_URL` (the client under test).
    pub client_cmd: Option<String>,
    /// Run the built-in demo client in-process.
    pub demo: bool,
    /// How many clients to start (overrides the scenario's `clients`; default 1).
    pub clients: Option<usize>,
    /// Extra arguments for the demo client (after the scenario's `demo_client`).
    pub demo_args: Vec<String>,
    /// Cancelled on Ctrl-C: the run stops early and still reports.
    pub interrupt: CancellationToken,
    /// `--netns`: the commands run in network namespaces and faults with a
    /// kernel equivalent are nftables rules (also `network: netns`).
    pub netns: bool,
    /// Where to write every event, frames included, as JSON lines
    /// (`--events`); the report keeps only what is judged.
    pub events: Option<std::path::PathBuf>,
    /// TLS on either leg (recorded in the report, for `replay`).
    pub tls: TlsSettings,
    /// The listener certificate already loaded from `tls.listen` (the CLI
    /// loads it once for all scenarios); `None`: [`run`] loads it.
    pub listen_tls: Option<Arc<ServerTls>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            upstream: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: None,
            server_cmd: None,
            client_cmd: None,
            demo: false,
            clients: None,
            demo_args: Vec::new(),
            interrupt: CancellationToken::new(),
            netns: false,
            events: None,
            tls: TlsSettings::default(),
            listen_tls: None,
        }
    }
}

/// Why a run could not be carried out (exit status 3).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad upstream URL or listen address.
    #[error("{0}")]
    Relay(#[from] crate::relay::RelayError),
    /// A certificate, key or CA file could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The upstream did not accept TCP in time.
    #[error("upstream {addr} did not accept a TCP connection within {secs} s{why}")]
    UpstreamUnreachable {
        /// Address.
        addr: String,
        /// Seconds waited.
        secs: u64,
        /// Extra detail (the server command's fate).
        why: String,
    },
    /// A command could not be started.
    #[error("cannot start {role} command `{cmd}`: {err}")]
    Command {
        /// `server` or `client`.
        role: &'static str,
        /// Command line.
        cmd: String,
        /// OS error.
        err: std::io::Error,
    },
    /// `--netns` cannot be used here, or its namespaces could not be made.
    #[error("{0}")]
    Netns(#[from] NetnsError),
    /// The demo server could not start, or the scenario's faults or
    /// expectations could not be built.
    #[error("{0}")]
    Setup(String),
}

/// Run `scenario`; `on_event` sees every event as it is logged (for the live
/// terminal view) and `on_ready` gets the relay's URL once it listens.
pub async fn run(
    scenario: &Scenario,
    opts: &RunOptions,
    mut on_ready: impl FnMut(&str),
    mut on_event: impl FnMut(&Event),
) -> Result<Report, RunError> {
    let upstream_url = opts.upstream.clone().or_else(|| scenario.upstream.clone());
    let mut setup = Setup::new(scenario, opts, upstream_url.as_deref())?;
    // Opened before anything starts: a bad path stops nothing half-started.
    let sink = match &opts.events {
        Some(p) => Some(
            EventSink::append(p)
                .map_err(|e| RunError::Setup(format!("cannot open {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let upstream = ServerSide::start(
        upstream_url.as_deref(),
        opts,
        setup.netns.as_ref(),
        &mut setup.tls,
    )
    .await?;
    let client_ns = setup.netns.as_ref().map(Netns::client_path);

    // t = 0: the relay listens and the upstream is reachable. The log keeps
    // what is judged; every event reaches the judges through the feed.
    let (log, mut rx) = EventLog::with_feed(Retention::Fold { keep: Vec::new() }, sink);
    let running = Running::start(scenario, opts, &mut setup, upstream, &log).await?;
    let url = running.relay.url();
    on_ready(&url);
    let started = Clients::start(
        opts,
        setup.demo.take(),
        &setup.demo_args,
        (&url, setup.clients),
        client_ns.as_deref(),
        setup.tls.listen.as_deref(),
    )
    .await;
    let mut clients = match started {
        Ok(c) => c,
        Err(e) => {
            running.stop().await;
            return Err(e);
        }
    };

    // Judge as the log grows; stop when every verdict is known.
    let deadline = tokio::time::Instant::from_std(log.start() + scenario.duration.0);
    let mut judge =
        Judge::new(std::mem::take(&mut setup.exps), setup.clients).map_err(RunError::Setup)?;
    let end_how = judge
        .watch(
            &log,
            &mut rx,
            &mut clients,
            deadline,
            &opts.interrupt,
            &mut on_event,
        )
        .await;

    // Stop: mark the moment, then the clients, the timeline, the relay, the server.
    log.emit(None, EventKind::Stopping);
    let end = log.now();
    let mut commands = clients.stop().await;
    if let Some(c) = running.stop().await {
        commands.insert(0, c);
    }
    // Show and judge what was logged while stopping.
    while let Ok(e) = rx.try_recv() {
        on_event(&e);
        judge.take(&log, e);
    }
    if let Err(e) = log.finish_sink() {
        judge
            .warnings
            .push(format!("the events file could not be written: {e}"));
    }
    let events = log.events();
    let connections = log.summaries();
    let interrupted = matches!(end_how, WatchEnd::Interrupted);
    Ok(conclude(
        scenario,
        opts,
        judge,
        (events, connections),
        Ended {
            seed: setup.seed,
            end,
            interrupted,
            commands,
            upstream_url,
        },
    ))
}

/// How a run ended, for its report.
struct Ended {
    seed: u64,
    end: Duration,
    interrupted: bool,
    commands: Vec<CommandOutcome>,
    upstream_url: Option<String>,
}

/// The final verdicts, warnings and report.
fn conclude(
    scenario: &Scenario,
    opts: &RunOptions,
    mut judge: Judge,
    (events, connections): (Vec<Event>, Vec<ConnSummary>),
    ended: Ended,
) -> Report {
    let Ended {
        seed,
        end,
        interrupted,
        commands,
        upstream_url,
    } = ended;
    let warnings_early = std::mem::take(&mut judge.warnings);
    let expectations = judge.finish(&events, end);
    let mut warnings = expect::warnings(&events);
    warnings.extend(warnings_early);
    if interrupted {
        warnings.push(format!(
            "the run was interrupted at t={:.2} s",
            end.as_secs_f64()
        ));
    }
    if opts.client_cmd.is_none()
        && !opts.demo
        && !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Accept { .. }))
    {
        warnings.push("no client connected to the relay during the run".into());
    }
    let passed = !interrupted && expectations.iter().all(|v| v.passed);
    Report {
        scenario: scenario.name.clone(),
        seed,
        passed,
        duration: end,
        expectations,
        warnings,
        commands,
        events,
        connections,
        scenario_spec: Some(scenario.clone()),
        settings: RunSettings {
            upstream: upstream_url,
            listen: Some(opts.listen.to_string()),
            client_cmd: opts.client_cmd.clone(),
            server_cmd: opts.server_cmd.clone(),
            demo: opts.demo,
            netns: opts.netns || scenario.network == Network::Netns,
            resolution: None,
            tls: (!opts.tls.is_default()).then(|| opts.tls.clone()),
        },
    }
}
