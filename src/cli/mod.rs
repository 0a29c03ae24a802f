//! The `flatline` command line: argument parsing (clap) and the subcommands.
//! `main.rs` only calls [`main`]; everything here maps library results to
//! output and exit statuses: 0 every expectation passed, 1 one failed, 2 a
//! scenario or an argument is invalid, 3 the run could not be carried out.

/// `outln!` that never panics: a closed stdout (`flatline check | head`)
/// is not an error worth dying over, so write errors are dropped.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `errln!` that never panics on a closed stderr.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod relay;
mod run;

pub use run::{RunArgs, Shard};

use crate::peers::client::{run_client, DemoClientOpts};
use crate::peers::server::{serve, DemoServerOpts};
use crate::report::{self, Report};
use crate::run::RunOptions;
use crate::scenario;
use crate::tls::{ServerTls, TlsArgs, TlsSettings, UpstreamTrust};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Exit statuses.
pub mod exit {
    /// Every expectation passed.
    pub const PASS: i32 = 0;
    /// An expectation failed (or a snapshot differs).
    pub const FAIL: i32 = 1;
    /// A scenario or an argument is invalid.
    pub const INVALID: i32 = 2;
    /// The run could not be carried out.
    pub const CANNOT_RUN: i32 = 3;
}

const AFTER_HELP: &str = "\
Examples:
  flatline run scenarios/silent-drop.yaml --demo
  flatline run scenarios/ --client-cmd 'node client.js' --junit results.xml
  flatline check scenarios/
  flatline relay --listen 127.0.0.1:9000 --upstream ws://127.0.0.1:9001/feed

Exit status: 0 every expectation passed, 1 one failed, 2 a scenario or an
argument is invalid, 3 the run could not be carried out.";

/// flatline: a chaos-testing relay for WebSocket clients.
#[derive(Parser, Debug)]
#[command(name = "flatline", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run scenarios (files or directories) and judge the client.
    #[command(after_help = "Examples:
  flatline run scenarios/silent-drop.yaml --demo
  flatline run scenarios/silent-drop.yaml --client-cmd 'python3 client.py' --report out.json
  flatline run scenarios/ --server-cmd './server --port 9001' --upstream ws://127.0.0.1:9001/ws \\
      --client-cmd 'node client.js' --junit junit.xml --snapshot snapshots/
  flatline run scenarios/ --demo -j 4 --shard 1/2 --junit junit-1.xml
  flatline run scenarios/thundering-herd.yaml --demo --clients 1000

The client command gets FLATLINE_URL (the relay's ws:// URL plus the upstream's
path). With neither --client-cmd nor --demo the URL is printed and flatline
waits (up to the scenario's duration) for a client to connect. With several
clients (`clients:` or --clients N) each command also gets FLATLINE_CLIENT
(0 to N-1), and its FLATLINE_URL carries `flatline_client=<index>` in the query
so that flatline can tell the clients' connections apart.")]
    Run(Box<RunArgs>),
    /// Validate scenarios and print their normalised plan.
    #[command(after_help = "Examples:
  flatline check scenarios/
  flatline check scenarios/silent-drop.yaml my-scenario.yaml

Exit status: 0 every file is valid, 2 one is not (the message names file, line and column).")]
    Check {
        /// Scenario files or directories.
        #[arg(required = true, value_name = "SCENARIO")]
        scenarios: Vec<PathBuf>,
    },
    /// List the scenarios in a directory, one line each.
    #[command(after_help = "Example:
  flatline list scenarios/")]
    List {
        /// Directory (default: scenarios).
        #[arg(default_value = "scenarios", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Run again with a report's recorded scenario, seed and settings, and
    /// diff the new transcript against the recorded one.
    #[command(after_help = "Example:
  flatline run scenarios/silent-drop.yaml --demo --report out/report.json
  flatline replay out/report.json

Exit status: 0 the transcript is identical and every expectation passed, 1 it
differs or one failed, 2 the report cannot be read, 3 the run could not be carried out.")]
    Replay {
        /// A report written by `run --report`.
        #[arg(value_name = "REPORT.json")]
        report: PathBuf,
    },
    /// The bare transparent relay, no faults, until Ctrl-C or SIGTERM.
    #[command(after_help = "Example:
  flatline relay --listen 127.0.0.1:9000 --upstream ws://127.0.0.1:9001/feed --events events.jsonl")]
    Relay {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
        listen: SocketAddr,
        /// The WebSocket server (ws://host:port/path).
        #[arg(long, value_name = "URL")]
        upstream: String,
        /// Append every event as one JSON line to this file.
        #[arg(long, value_name = "FILE.jsonl")]
        events: Option<PathBuf>,
        /// Keep Sec-WebSocket-Extensions (payload previews become unreadable).
        #[arg(long)]
        keep_extensions: bool,
        /// TLS on either leg.
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// A live HTTP control API: sessions, faults now, verdicts on demand,
    /// and Toxiproxy's API, on one port, until Ctrl-C or SIGTERM.
    #[command(after_help = "Examples:
  flatline serve
  flatline serve --listen 127.0.0.1:9474
  curl -s -XPOST localhost:8474/sessions -d '{\"upstream\": \"ws://127.0.0.1:9001/feed\"}'

The API is described in docs/serve.md. Listening on a non-loopback address
needs --allow-remote: a control API that creates relays to any upstream is an
open proxy.")]
    Serve {
        /// Where the API listens (Toxiproxy's port by default).
        #[arg(long, default_value = "127.0.0.1:8474", value_name = "ADDR")]
        listen: SocketAddr,
        /// Allow a non-loopback --listen (and relays on non-loopback addresses).
        #[arg(long)]
        allow_remote: bool,
    },
    /// The reference demo server (echo, text ping → pong, subscriptions).
    #[command(after_help = "Example:
  flatline demo-server --listen 127.0.0.1:9001 --ping-every 5s")]
    DemoServer {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:9001", value_name = "ADDR")]
        listen: SocketAddr,
        /// Server options.
        #[command(flatten)]
        opts: DemoServerOpts,
    },
    /// The reference demo client (heartbeat, timeout, backoff, resubscribe).
    #[command(after_help = "Examples:
  flatline demo-client ws://127.0.0.1:9000/feed --heartbeat 1s --timeout 3s
  FLATLINE_URL=ws://127.0.0.1:9000/feed flatline demo-client --no-heartbeat")]
    DemoClient {
        /// Client options.
        #[command(flatten)]
        opts: DemoClientOpts,
    },
}

/// The async runtime: one thread when the process may use one CPU only
/// (`taskset -c 0`, a one-CPU container). A multi-thread runtime would still
/// run one worker there, and pay for handing work between threads: about
/// 0.3 µs per relayed round trip.
fn runtime_builder() -> tokio::runtime::Builder {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
}

/// Entry point: parse arguments, run, return the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::INVALID
            } else {
                exit::PASS
            };
        }
    };
    let rt = match runtime_builder().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return exit::CANNOT_RUN;
        }
    };
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Run(args) => run::cmd_run(*args).await,
            Cmd::Check { scenarios } => cmd_check(&scenarios),
            Cmd::List { dir } => cmd_list(&dir),
            Cmd::Replay { report } => cmd_replay(&report).await,
            Cmd::Relay {
                listen,
                upstream,
                events,
                keep_extensions,
                tls,
            } => relay::cmd_relay(listen, &upstream, events, keep_extensions, tls.settings()).await,
            Cmd::Serve {
                listen,
                allow_remote,
            } => {
                let opts = crate::serve::ServeOptions {
                    listen,
                    allow_remote,
                };
                crate::serve::run_cli(opts, interrupt_token()).await
            }
            Cmd::DemoServer { listen, opts } => cmd_demo_server(listen, opts).await,
            Cmd::DemoClient { opts } => cmd_demo_client(opts).await,
        }
    })
}

/// Scenario files named by the arguments: files as given, directories'
/// `*.yaml`/`*.yml` files sorted by name.
pub(crate) fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p)
                .map_err(|e| format!("cannot read directory {}: {e}", p.display()))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!("no scenario files (*.yaml) in {}", p.display()));
            }
            out.extend(files);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("no such file or directory: {}", p.display()));
        }
    }
    Ok(out)
}

/// Ctrl-C and SIGTERM cancel the returned token.
pub(crate) fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        }
        t.cancel();
    });
    token
}

pub(crate) fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Load every scenario the paths name, calling `each` with the file and its
/// scenario or error; exit status 2 if a path or a file is invalid.
fn for_each_scenario(
    paths: &[PathBuf],
    mut each: impl FnMut(&Path, Result<scenario::Loaded, scenario::ScenarioError>),
) -> i32 {
    let files = match expand(paths) {
        Ok(f) => f,
        Err(e) => {
            errln!("error: {e}");
            return exit::INVALID;
        }
    };
    let mut status = exit::PASS;
    for f in files {
        let loaded = scenario::load_file(&f);
        if loaded.is_err() {
            status = exit::INVALID;
        }
        each(&f, loaded);
    }
    status
}

fn cmd_check(paths: &[PathBuf]) -> i32 {
    for_each_scenario(paths, |f, loaded| match loaded {
        Ok(l) => {
            for w in &l.warnings {
                errln!("warning: {w}");
            }
            outln!("# {}\n{}", f.display(), scenario::plan(&l.scenario));
        }
        Err(e) => errln!("error: {e}"),
    })
}

fn cmd_list(dir: &Path) -> i32 {
    for_each_scenario(&[dir.to_path_buf()], |f, loaded| match loaded {
        Ok(l) => {
            let first = l
                .scenario
                .description
                .split_terminator(['.', '\n'])
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            outln!(
                "{:<22} {:>5}  {first}",
                l.scenario.name,
                l.scenario.duration.to_string()
            );
        }
        Err(e) => outln!(
            "{:<22} INVALID  {e}",
            f.file_stem().and_then(|s| s.to_str()).unwrap_or("?")
        ),
    })
}

async fn cmd_replay(path: &Path) -> i32 {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errln!("error: cannot read {}: {e}", path.display());
            return exit::INVALID;
        }
    };
    let old = match Report::from_json(&text) {
        Ok(r) => r,
        Err(e) => {
            errln!("error: {}: {e}", path.display());
            return exit::INVALID;
        }
    };
    let Some(sc) = old.scenario_spec.clone() else {
        errln!(
            "error: {} records no scenario (written by an older flatline?)",
            path.display()
        );
        return exit::INVALID;
    };
    let s = &old.settings;
    let opts = RunOptions {
        upstream: s.upstream.clone(),
        listen: s
            .listen
            .as_deref()
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        seed: Some(old.seed),
        server_cmd: s.server_cmd.clone(),
        client_cmd: s.client_cmd.clone(),
        demo: s.demo,
        clients: None,
        demo_args: Vec::new(),
        interrupt: interrupt_token(),
        events: None,
        netns: s.netns,
        tls: s.tls.clone().unwrap_or_default(),
        listen_tls: None,
    };
    let new = match run::run_one(&sc, &opts, false, &mut run::Sink::stderr()).await {
        Ok(r) => r,
        Err(e) => {
            errln!("error: {e}");
            return exit::CANNOT_RUN;
        }
    };
    outln!(
        "{}",
        report::terminal::verdict_table(
            std::slice::from_ref(&new),
            std::io::stdout().is_terminal()
        )
    );
    let (a, b) = (old.transcript().to_text(), new.transcript().to_text());
    if a == b {
        outln!("transcript identical to {}", path.display());
        if new.passed {
            exit::PASS
        } else {
            exit::FAIL
        }
    } else {
        outln!(
            "transcript differs from {}:\n{}",
            path.display(),
            report::transcript::diff(&a, &b)
        );
        exit::FAIL
    }
}

/// Load the listener certificate and check the upstream CA file; print
/// where the certificate is and how to trust it, and warn about
/// `--upstream-insecure`. `Err` is the exit status.
pub(crate) fn prepare_tls(tls: &TlsSettings) -> Result<Option<std::sync::Arc<ServerTls>>, i32> {
    let loaded = tls.prepare().map_err(|e| {
        errln!("error: {e}");
        exit::INVALID
    })?;
    if let Some(t) = &loaded {
        errln!("flatline: {}", t.describe());
    }
    if tls.upstream == UpstreamTrust::Insecure {
        errln!(
            "warning: --upstream-insecure: the upstream's certificate is not checked (anyone in the path can impersonate it)"
        );
    }
    Ok(loaded)
}

async fn cmd_demo_server(listen: SocketAddr, opts: DemoServerOpts) -> i32 {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            errln!("error: cannot listen on {listen}: {e}");
            return exit::CANNOT_RUN;
        }
    };
    match listener.local_addr() {
        Ok(a) => errln!(
            "flatline demo-server listening on {}://{a}/",
            if opts.tls_cert.is_some() { "wss" } else { "ws" }
        ),
        Err(_) => errln!("flatline demo-server listening on {listen}"),
    }
    let stop = interrupt_token();
    match serve(listener, opts, stop).await {
        Ok(()) => exit::PASS,
        Err(e) => {
            errln!("error: {e}");
            exit::CANNOT_RUN
        }
    }
}

async fn cmd_demo_client(opts: DemoClientOpts) -> i32 {
    let stop = interrupt_token();
    match run_client(opts, stop, |line: &str| errln!("{line}")).await {
        Ok(_) => exit::PASS,
        Err(e) => {
            errln!("error: {e}");
            exit::INVALID
        }
    }
}
