//! What a run prepares before anything starts (expectations, timeline,
//! seed, the demo client's options, network namespaces), and what it holds
//! while it runs (relay, timeline, namespaces, server) until its teardown.

use super::sides::ServerSide;
use super::{RunError, RunOptions};
use crate::events::{EventKind, EventLog};
use crate::expect;
use crate::netns::{session::Session, Netns};
use crate::peers::client::DemoClientOpts;
use crate::relay::{Relay, RelayConfig, Upstream};
use crate::report::CommandOutcome;
use crate::scenario::{Extensions, Network, Scenario};
use crate::timeline::{Driver, Timeline};
use crate::tls::{ServerTls, UpstreamTrust};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long connections get to finish their closing handshakes at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a run decides before it starts anything: the expectations, the
/// timeline, the seed, the demo client's options (checked first) and the
/// network namespaces (`--netns`).
pub(super) struct Setup {
    pub(super) seed: u64,
    pub(super) exps: Vec<expect::Expect>,
    /// Taken when the run starts.
    pub(super) timeline: Option<Timeline>,
    pub(super) clients: usize,
    pub(super) demo_args: Vec<String>,
    pub(super) demo: Option<DemoClientOpts>,
    pub(super) netns: Option<Netns>,
    pub(super) tls: RunTls,
}

/// TLS of a run: the listener certificate, how the upstream is checked,
/// and the in-process demo server's own certificate (kept until the end).
pub(super) struct RunTls {
    pub(super) listen: Option<Arc<ServerTls>>,
    pub(super) upstream_trust: UpstreamTrust,
    pub(super) demo: Option<ServerTls>,
}

impl RunTls {
    /// `FLATLINE_TLS_CERT`, `FLATLINE_TLS_KEY`, `FLATLINE_TLS_SPKI` and the
    /// variables common stacks read to trust the certificate (client), or
    /// only the former (server).
    pub(super) fn env(&self, client: bool) -> Vec<(&'static str, String)> {
        let Some(t) = &self.listen else {
            return Vec::new();
        };
        t.client_env()
            .into_iter()
            .filter(|(k, _)| client || k.starts_with("FLATLINE_TLS_"))
            .collect()
    }
}

impl Setup {
    pub(super) fn new(
        scenario: &Scenario,
        opts: &RunOptions,
        upstream_url: Option<&str>,
    ) -> Result<Setup, RunError> {
        let seed = opts.seed.unwrap_or(scenario.seed);
        let exps = expect::build(scenario).map_err(RunError::Setup)?;
        let mut timeline = Timeline::new(scenario).map_err(RunError::Setup)?;
        let netns = make_netns(scenario, opts, upstream_url)?;
        if let Some(n) = &netns {
            timeline.map_faults(|f| crate::netns::session::wrap_fault(n, f));
        }
        // The demo client's jitter comes from the run's seed too (an explicit
        // `--seed` in the scenario's `demo_client` or `--demo-arg` wins: the
        // last one counts); client i adds i to it.
        let demo_args: Vec<String> = ["--seed".to_string(), seed.to_string()]
            .into_iter()
            .chain(scenario.demo_client.iter().cloned())
            .chain(opts.demo_args.iter().cloned())
            .collect();
        let demo = if opts.demo {
            Some(DemoClientOpts::from_args(&demo_args).map_err(|e| {
                RunError::Setup(format!("demo client arguments {demo_args:?}: {e}"))
            })?)
        } else {
            None
        };
        let clients = opts.clients.or(scenario.clients).unwrap_or(1).max(1);
        let tls = RunTls {
            listen: match &opts.listen_tls {
                Some(t) => Some(t.clone()),
                None => opts.tls.listener()?,
            },
            upstream_trust: opts.tls.upstream.clone(),
            demo: None,
        };
        Ok(Setup {
            seed,
            exps,
            timeline: Some(timeline),
            clients,
            demo_args,
            demo,
            netns,
            tls,
        })
    }
}

/// The namespaces of a `--netns` run (checked and made before anything
/// starts), or `None` in the default mode.
fn make_netns(
    scenario: &Scenario,
    opts: &RunOptions,
    upstream_url: Option<&str>,
) -> Result<Option<Netns>, RunError> {
    if !opts.netns && scenario.network != Network::Netns {
        return Ok(None);
    }
    if opts.demo {
        return Err(RunError::Setup(
            "--netns runs the client in a namespace as a command: use --client-cmd (e.g. `flatline demo-client`) instead of --demo".into(),
        ));
    }
    // A server command gets a namespace of its own; its port is the upstream's.
    let server_port = match (&opts.server_cmd, upstream_url) {
        (Some(_), Some(u)) => Some(Upstream::parse(u)?.port),
        _ => None,
    };
    Ok(Some(Netns::create(server_port)?))
}

/// Everything a started run holds until its teardown.
pub(super) struct Running {
    pub(super) log: EventLog,
    pub(super) relay: Relay,
    server: ServerSide,
    session: Option<Session>,
    stop_timeline: CancellationToken,
    timeline: Option<Driver>,
}

impl Running {
    /// Start the relay on the upstream, the namespaces' session and the
    /// timeline; what started is stopped if something cannot.
    pub(super) async fn start(
        scenario: &Scenario,
        opts: &RunOptions,
        setup: &mut Setup,
        (upstream, server): (String, ServerSide),
        log: &EventLog,
    ) -> Result<Running, RunError> {
        let up = match Upstream::parse(&upstream) {
            Ok(up) => up,
            Err(e) => {
                server.stop().await;
                return Err(e.into());
            }
        };
        let cfg = RelayConfig {
            listen: match &setup.netns {
                Some(n) => SocketAddr::new(n.listen_addr().ip(), opts.listen.port()),
                None => opts.listen,
            },
            upstream: up,
            keep_extensions: scenario.extensions == Extensions::Keep,
            seed: setup.seed,
            sockets: setup.netns.as_ref().map(Netns::sockets),
            raw_fallback: false,
            tls: setup.tls.listen.clone(),
            upstream_trust: setup.tls.upstream_trust.clone(),
        };
        let relay = match Relay::start(cfg, log.clone()).await {
            Ok(r) => r,
            Err(e) => {
                server.stop().await;
                return Err(e.into());
            }
        };
        let port = relay.addr().port();
        let session = match setup
            .netns
            .take()
            .map(|n| Session::start(n, scenario, log, port))
        {
            Some(Err(e)) => {
                relay.stop().await;
                server.stop().await;
                return Err(e.into());
            }
            s => s.and_then(Result::ok),
        };
        let stop_timeline = CancellationToken::new();
        let board = relay.board().clone();
        let (l, stop) = (log.clone(), stop_timeline.clone());
        let mut running = Running {
            log: log.clone(),
            relay,
            server,
            session,
            stop_timeline,
            timeline: None,
        };
        if let Some(t) = setup.timeline.take() {
            match t.start(board, l, stop).await {
                Ok(d) => running.timeline = Some(d),
                Err(e) => {
                    // Everything else is up: the usual stop takes it down.
                    running.stop().await;
                    return Err(RunError::Setup(format!(
                        "cannot start the timeline's thread: {e}"
                    )));
                }
            }
        }
        Ok(running)
    }

    /// Stop the timeline, let closing handshakes finish (bounded), stop the
    /// relay, the namespaces' session and the server; the namespaces go
    /// last, once nothing runs in them. Returns the server command's outcome.
    pub(super) async fn stop(self) -> Option<CommandOutcome> {
        self.stop_timeline.cancel();
        if let Some(t) = self.timeline {
            t.join().await;
        }
        // Let closing handshakes the stop started finish (bounded), so a run
        // ends the same way each time instead of racing the relay's shutdown.
        let mut open = self.relay.board().live_conns();
        if !open.is_empty() {
            self.log
                .wait_for(CLOSE_GRACE, |e| {
                    if let (Some(n), EventKind::Closed { .. }) = (e.conn, &e.kind) {
                        open.retain(|c| *c != n);
                    }
                    open.is_empty()
                })
                .await;
        }
        self.relay.stop().await;
        let netns = match self.session {
            Some(s) => Some(s.finish().await),
            None => None,
        };
        let outcome = self.server.stop().await;
        drop(netns);
        outcome
    }
}
