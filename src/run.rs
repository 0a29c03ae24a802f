//! One run of one scenario: start the upstream (a `--server-cmd`, or the
//! built-in demo server), the relay, the timeline and the client (a
//! `--client-cmd`, the built-in demo client, or whoever connects), judge the
//! expectations as the log grows, and stop everything as soon as every
//! verdict is known or at `duration`. Every task, socket and child process
//! started here is stopped before [`run`] returns.

use crate::events::{Event, EventKind, EventLog, EventSink, Retention};
use crate::expect::{self, Verdict};
use crate::netns::{session::Session, Netns, NetnsError};
use crate::peers::client::{run_client, DemoClientOpts};
use crate::peers::server::{spawn_demo_server, DemoServerHandle, DemoServerOpts};
use crate::relay::{Relay, RelayConfig, Sockets, Upstream};
use crate::report::{CommandOutcome, Report, RunSettings};
use crate::scenario::{Extensions, Network, Scenario};
use crate::timeline::Timeline;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// How long `--server-cmd`'s upstream may take to accept TCP.
const UPSTREAM_WAIT: Duration = Duration::from_secs(15);
/// How long a command gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
/// How often verdicts are recomputed (and time-based ones decided).
const JUDGE_EVERY: Duration = Duration::from_millis(50);
/// How long connections get to finish their closing handshakes at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Lines of command output kept for the report.
const TAIL_LINES: usize = 40;

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
    /// Extra arguments for the demo client (after the scenario's `demo_client`).
    pub demo_args: Vec<String>,
    /// Cancelled on Ctrl-C: the run stops early and still reports.
    pub interrupt: CancellationToken,
    /// Where to write every event, frames included, as JSON lines
    /// (`--events`); the report keeps only what is judged.
    pub events: Option<std::path::PathBuf>,
    /// `--netns`: the commands run in network namespaces and faults with a
    /// kernel equivalent are nftables rules (also `network: netns`).
    pub netns: bool,
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
            demo_args: Vec::new(),
            interrupt: CancellationToken::new(),
            events: None,
            netns: false,
        }
    }
}

/// Why a run could not be carried out (exit status 3).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad upstream URL or listen address.
    #[error("{0}")]
    Relay(#[from] crate::relay::RelayError),
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

/// A child process in a process group of its own, with its output tail.
struct Proc {
    /// The process group (the shell's pid), kept after the shell is reaped
    /// so that what is left of the group can still be killed.
    pgid: Option<i32>,
    role: &'static str,
    command: String,
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
}

fn push_tail(tail: &Mutex<VecDeque<String>>, line: String) {
    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
    if t.len() == TAIL_LINES {
        t.pop_front();
    }
    t.push_back(line);
}

impl Proc {
    fn spawn(
        role: &'static str,
        cmd: &str,
        url: Option<&str>,
        netns: Option<&std::path::Path>,
    ) -> Result<Proc, RunError> {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(u) = url {
            c.env("FLATLINE_URL", u);
        }
        let err = |err| RunError::Command {
            role,
            cmd: cmd.to_string(),
            err,
        };
        if let Some(path) = netns {
            // SAFETY: the hook only calls setns(2).
            unsafe {
                c.pre_exec(crate::netns::enter_in_child(path).map_err(err)?);
            }
        }
        let mut child = c.spawn().map_err(err)?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            let t = tail.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    push_tail(&t, l);
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let t = tail.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    push_tail(&t, l);
                }
            });
        }
        Ok(Proc {
            pgid: child.id().map(|p| p as i32),
            role,
            command: cmd.to_string(),
            child,
            tail,
        })
    }

    fn signal(&self, sig: i32) {
        if let Some(pgid) = self.pgid {
            // The whole process group: grandchildren (a browser under a
            // driver script) go too.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }

    /// SIGTERM, then SIGKILL after the grace period.
    async fn stop(mut self) -> CommandOutcome {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                self.signal(libc::SIGTERM);
                match tokio::time::timeout(TERM_GRACE, self.child.wait()).await {
                    Ok(Ok(s)) => Some(s),
                    _ => {
                        self.signal(libc::SIGKILL);
                        self.child.wait().await.ok()
                    }
                }
            }
        };
        // Whatever is left of the group.
        self.signal(libc::SIGKILL);
        use std::os::unix::process::ExitStatusExt;
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        CommandOutcome {
            role: self.role.to_string(),
            command: self.command.clone(),
            exit: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            output_tail: tail.iter().cloned().collect::<Vec<_>>().join("\n"),
        }
    }
}

/// The client side of a run.
enum ClientSide {
    Cmd(Proc),
    Demo {
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        tail: Arc<Mutex<VecDeque<String>>>,
        args: String,
    },
    Nobody,
}

/// The server side of a run.
enum ServerSide {
    Cmd(Box<Proc>),
    Demo(DemoServerHandle),
    External,
}

async fn wait_for_tcp(
    addr: &str,
    server: &mut Option<Proc>,
    sockets: Option<&Arc<dyn Sockets>>,
) -> Result<(), RunError> {
    let deadline = tokio::time::Instant::now() + UPSTREAM_WAIT;
    loop {
        let connected = match sockets {
            None => tokio::net::TcpStream::connect(addr).await.is_ok(),
            Some(s) => s.connect(0, addr).await.is_ok(),
        };
        if connected {
            return Ok(());
        }
        if let Some(p) = server.as_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                let out = p
                    .tail
                    .lock()
                    .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
                    .unwrap_or_default();
                return Err(RunError::UpstreamUnreachable {
                    addr: addr.to_string(),
                    secs: UPSTREAM_WAIT.as_secs(),
                    why: format!("; the server command exited early ({status}): {out}"),
                });
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::UpstreamUnreachable {
                addr: addr.to_string(),
                secs: UPSTREAM_WAIT.as_secs(),
                why: String::new(),
            });
        }
        // Polling an external process's port: there is no event to await.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run `scenario`; `on_event` sees every event as it is logged (for the live
/// terminal view) and `on_ready` gets the relay's URL once it listens.
pub async fn run(
    scenario: &Scenario,
    opts: &RunOptions,
    mut on_ready: impl FnMut(&str),
    mut on_event: impl FnMut(&Event),
) -> Result<Report, RunError> {
    let seed = opts.seed.unwrap_or(scenario.seed);
    let exps = expect::build(scenario).map_err(RunError::Setup)?;
    let mut timeline = Timeline::new(scenario).map_err(RunError::Setup)?;
    let upstream_url = opts.upstream.clone().or_else(|| scenario.upstream.clone());
    let netns = make_netns(scenario, opts, upstream_url.as_deref())?;
    if let Some(n) = &netns {
        timeline.map_faults(|f| crate::netns::session::wrap_fault(n, f));
    }
    let sockets = netns.as_ref().map(Netns::sockets);
    // The demo client's arguments are checked before anything starts.
    // Its jitter comes from the run's seed too (an explicit `--seed` in the
    // scenario's `demo_client` or `--demo-arg` wins: the last one counts).
    let demo_args: Vec<String> = ["--seed".to_string(), seed.to_string()]
        .into_iter()
        .chain(scenario.demo_client.iter().cloned())
        .chain(opts.demo_args.iter().cloned())
        .collect();
    let demo_opts =
        if opts.demo {
            Some(DemoClientOpts::from_args(&demo_args).map_err(|e| {
                RunError::Setup(format!("demo client arguments {demo_args:?}: {e}"))
            })?)
        } else {
            None
        };

    // The upstream: a server command, an external server, or the demo server.
    let mut server_proc = match &opts.server_cmd {
        Some(cmd) => Some(Proc::spawn(
            "server",
            cmd,
            None,
            netns.as_ref().and_then(Netns::server_path).as_deref(),
        )?),
        None => None,
    };
    let (upstream, server) = match &upstream_url {
        Some(u) => {
            let up = Upstream::parse(u)?;
            let authority = up.authority();
            let waited = tokio::select! {
                r = wait_for_tcp(&authority, &mut server_proc, sockets.as_ref()) => r,
                _ = opts.interrupt.cancelled() => Err(RunError::Setup(format!(
                    "interrupted while waiting for the upstream {authority} to accept TCP"
                ))),
            };
            if let Err(e) = waited {
                if let Some(p) = server_proc {
                    p.stop().await;
                }
                return Err(e);
            }
            let side = match server_proc.take() {
                Some(p) => ServerSide::Cmd(Box::new(p)),
                None => ServerSide::External,
            };
            (u.clone(), side)
        }
        None => {
            if let Some(p) = server_proc.take() {
                p.stop().await;
                return Err(RunError::Setup(
                    "--server-cmd needs --upstream (or `upstream:` in the scenario) to know where the server listens".into(),
                ));
            }
            let (addr, handle) = spawn_demo_server(DemoServerOpts::default())
                .await
                .map_err(|e| RunError::Setup(format!("cannot start the demo server: {e}")))?;
            (format!("ws://{addr}/feed"), ServerSide::Demo(handle))
        }
    };

    // t = 0: the relay listens and the upstream is reachable. The log keeps
    // what is judged; every event reaches the judges through the feed.
    let sink = match &opts.events {
        Some(p) => Some(
            EventSink::append(p)
                .map_err(|e| RunError::Setup(format!("cannot open {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let (log, mut rx) = EventLog::with_feed(Retention::Fold { keep: Vec::new() }, sink);
    let cfg = RelayConfig {
        listen: match &netns {
            Some(n) => SocketAddr::new(n.listen_addr().ip(), opts.listen.port()),
            None => opts.listen,
        },
        upstream: Upstream::parse(&upstream)?,
        keep_extensions: scenario.extensions == Extensions::Keep,
        seed,
        sockets,
    };
    let relay = match Relay::start(cfg, log.clone()).await {
        Ok(r) => r,
        Err(e) => {
            stop_server(server).await;
            return Err(e.into());
        }
    };
    let url = relay.url();
    let client_ns = netns.as_ref().map(Netns::client_path);
    let session = match netns.map(|n| Session::start(n, scenario, &log, relay.addr().port())) {
        Some(Err(e)) => {
            relay.stop().await;
            stop_server(server).await;
            return Err(e.into());
        }
        s => s.and_then(Result::ok),
    };
    on_ready(&url);
    let stop_timeline = CancellationToken::new();
    let timeline_task =
        tokio::spawn(timeline.drive(relay.board().clone(), log.clone(), stop_timeline.clone()));

    let mut client = if let Some(cmd) = &opts.client_cmd {
        match Proc::spawn("client", cmd, Some(&url), client_ns.as_deref()) {
            Ok(p) => ClientSide::Cmd(p),
            Err(e) => {
                stop_timeline.cancel();
                let _ = timeline_task.await;
                relay.stop().await;
                stop_server(server).await;
                return Err(e);
            }
        }
    } else if let Some(mut copts) = demo_opts {
        copts.url = Some(url.clone());
        let stop = CancellationToken::new();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let t = tail.clone();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let r = run_client(copts, s, |line: &str| push_tail(&t, line.to_string())).await;
            if let Err(e) = r {
                push_tail(&t, format!("demo client error: {e}"));
            }
        });
        ClientSide::Demo {
            stop,
            task,
            tail,
            args: demo_args.join(" "),
        }
    } else {
        ClientSide::Nobody
    };

    // Judge as the log grows; stop when every verdict is known.
    let deadline = tokio::time::Instant::from_std(log.start() + scenario.duration.0);
    let mut exps = exps;
    let mut decided: Vec<Option<Verdict>> = vec![None; exps.len()];
    let mut tick = tokio::time::interval(JUDGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut interrupted = false;
    // The kept events so far, as received: judging reads this copy instead
    // of cloning the whole log on every tick.
    let mut seen: Vec<Event> = Vec::new();
    let mut client_exited = false;
    let mut warnings_early: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = opts.interrupt.cancelled() => { interrupted = true; break; }
            ev = rx.recv() => match ev {
                Some(e) => {
                    on_event(&e);
                    for x in exps.iter_mut() {
                        x.observe(&e);
                    }
                    if log.keeps(&e) {
                        seen.push(e);
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if let ClientSide::Cmd(p) = &mut client {
                    if !client_exited {
                        if let Ok(Some(status)) = p.child.try_wait() {
                            client_exited = true;
                            log.emit(None, EventKind::Note {
                                text: format!("the client command exited by itself ({status})"),
                            });
                            warnings_early.push(format!(
                                "the client command exited by itself at t={:.2} s ({status})",
                                log.now().as_secs_f64()
                            ));
                        }
                    }
                }
                if !exps.is_empty() {
                    let now = log.now();
                    for (i, v) in expect::judge_all(&exps, &seen, now, false).into_iter().enumerate() {
                        if decided[i].is_none() {
                            decided[i] = v;
                        }
                    }
                    if decided.iter().all(Option::is_some) {
                        break;
                    }
                }
            }
        }
    }

    // Stop: mark the moment, then the client, the timeline, the relay, the server.
    log.emit(None, EventKind::Stopping);
    let end = log.now();
    let mut commands = Vec::new();
    match client {
        ClientSide::Cmd(p) => commands.push(p.stop().await),
        ClientSide::Demo {
            stop,
            task,
            tail,
            args,
        } => {
            stop.cancel();
            // The in-process client has no exit status: 0 when it ended by
            // itself or on being stopped, none if it had to be abandoned.
            let ended = matches!(tokio::time::timeout(TERM_GRACE, task).await, Ok(Ok(())));
            let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
            commands.push(CommandOutcome {
                role: "client".into(),
                command: format!("built-in demo client {args}").trim().to_string(),
                exit: ended.then_some(0),
                signal: None,
                output_tail: tail.iter().cloned().collect::<Vec<_>>().join("\n"),
            });
        }
        ClientSide::Nobody => {}
    }
    stop_timeline.cancel();
    let _ = timeline_task.await;
    // Let closing handshakes the stop started finish (bounded), so a run
    // ends the same way each time instead of racing the relay's shutdown.
    let mut open = relay.board().live_conns();
    if !open.is_empty() {
        log.wait_for(CLOSE_GRACE, |e| {
            if let (Some(n), EventKind::Closed { .. }) = (e.conn, &e.kind) {
                open.retain(|c| *c != n);
            }
            open.is_empty()
        })
        .await;
    }
    relay.stop().await;
    let netns = match session {
        Some(s) => Some(s.finish().await),
        None => None,
    };
    if let Some(c) = stop_server(server).await {
        commands.insert(0, c);
    }
    // The namespaces go last, once nothing runs in them.
    drop(netns);
    // Show and judge what was logged while stopping.
    while let Ok(e) = rx.try_recv() {
        on_event(&e);
        for x in exps.iter_mut() {
            x.observe(&e);
        }
    }
    if let Err(e) = log.finish_sink() {
        warnings_early.push(format!("the events file could not be written: {e}"));
    }

    let events = log.events();
    let finals = expect::judge_all(&exps, &events, end, true);
    let expectations: Vec<Verdict> = decided
        .into_iter()
        .zip(finals)
        .enumerate()
        .map(|(i, (early, last))| {
            early.or(last).unwrap_or_else(|| Verdict {
                name: exps[i].name.clone(),
                kind: scenario.expect[i].kind.name().to_string(),
                passed: false,
                observed: None,
                detail: "no verdict could be reached".into(),
            })
        })
        .collect();
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
    Ok(Report {
        scenario: scenario.name.clone(),
        seed,
        passed,
        duration: end,
        expectations,
        warnings,
        commands,
        events,
        connections: log.summaries(),
        scenario_spec: Some(scenario.clone()),
        settings: RunSettings {
            upstream: upstream_url,
            listen: Some(opts.listen.to_string()),
            client_cmd: opts.client_cmd.clone(),
            server_cmd: opts.server_cmd.clone(),
            demo: opts.demo,
            netns: opts.netns || scenario.network == Network::Netns,
            resolution: None,
        },
    })
}

async fn stop_server(s: ServerSide) -> Option<CommandOutcome> {
    match s {
        ServerSide::Cmd(p) => Some(p.stop().await),
        ServerSide::Demo(h) => {
            let _ = h.stop().await;
            None
        }
        ServerSide::External => None,
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
