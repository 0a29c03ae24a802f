//! `flatline run`: its arguments, the selection of scenario files (`--shard`),
//! running them one after another or `-j N` at a time, and what is written
//! for each (live view, reports, snapshots) and for all (table, summary,
//! JUnit, exit status).

use super::{exit, expand, interrupt_token, write_file};
use crate::peers::client::DemoClientOpts;
use crate::report::{self, terminal::LivePrinter, Report};
use crate::run::{run, RunOptions};
use crate::scenario::{self, Scenario, MAX_CLIENTS};
use crate::tls::{ServerTls, TlsArgs};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

mod outputs;
use outputs::{check_snapshot, per_scenario, report_commands, write_outputs};

/// Options of `flatline run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Scenario files or directories of them.
    #[arg(required = true, value_name = "SCENARIO")]
    pub scenarios: Vec<PathBuf>,
    /// The WebSocket server (overrides the scenario's `upstream`).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Where the relay listens.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Shell command that starts the server (started first; needs --upstream).
    #[arg(long, value_name = "CMD")]
    pub server_cmd: Option<String>,
    /// Shell command that starts the client (gets FLATLINE_URL and FLATLINE_CLIENT).
    #[arg(long, value_name = "CMD")]
    pub client_cmd: Option<String>,
    /// Run the built-in demo client.
    #[arg(long, conflicts_with = "client_cmd")]
    pub demo: bool,
    /// Run the client (and a --server-cmd) in network namespaces: partitions,
    /// resets and refusals become nftables rules that the peers' own TCP
    /// stacks see (needs root and `nft`).
    #[arg(long, conflicts_with = "demo")]
    pub netns: bool,
    /// Extra argument for the built-in demo client (repeatable), e.g. --demo-arg=--no-heartbeat.
    #[arg(
        long = "demo-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        requires = "demo"
    )]
    pub demo_args: Vec<String>,
    /// Start N clients (N client commands, or N demo clients); overrides the scenario's `clients`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_CLIENTS as i64))]
    pub clients: Option<u32>,
    /// Override the scenario's seed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Run up to N scenarios at once, each with its own relay, ports and commands.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// Run only shard I of N (1-based): every Nth scenario file from the I-th, in sorted order.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Write the JSON report (several scenarios: FILE gets `.<scenario>` before `.json`).
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Write JUnit XML (one testsuite per scenario).
    #[arg(long, value_name = "FILE.xml")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report with a timeline.
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<PathBuf>,
    /// Append every event, each frame included, as JSON lines (the report
    /// keeps only what is judged; several scenarios: FILE gets `.<scenario>`).
    #[arg(long, value_name = "FILE.jsonl")]
    pub events: Option<PathBuf>,
    /// Compare each run's transcript with DIR/<scenario>.transcript (fail on a difference).
    #[arg(long, value_name = "DIR")]
    pub snapshot: Option<PathBuf>,
    /// Write the transcripts into --snapshot DIR instead of comparing.
    #[arg(long, requires = "snapshot")]
    pub update_snapshots: bool,
    /// No live timeline, only the final table.
    #[arg(long, short)]
    pub quiet: bool,
    /// TLS on either leg.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The listener certificate, loaded once for every scenario.
    #[arg(skip)]
    pub listen_tls: Option<Arc<ServerTls>>,
}

/// `--shard I/N`: the I-th of N (1-based, as nextest counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which one, from 1.
    pub index: usize,
    /// How many.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: expected I/N with 1 ≤ I ≤ N, e.g. 2/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The files of this shard: positions index-1, index-1+count, … of the
    /// sorted, de-duplicated list, so that the N shards cover it once.
    pub fn pick(self, files: &[PathBuf]) -> Vec<PathBuf> {
        let mut all = files.to_vec();
        all.sort();
        all.dedup();
        all.into_iter()
            .skip(self.index - 1)
            .step_by(self.count)
            .collect()
    }
}

/// Where one scenario's messages go: stderr as they come (one scenario at a
/// time), or a buffer printed in one piece when the scenario is over (`-j`).
#[derive(Clone)]
pub(crate) struct Sink(Option<Arc<Mutex<Vec<u8>>>>);

impl Sink {
    pub(crate) fn stderr() -> Sink {
        Sink(None)
    }
    fn buffer() -> Sink {
        Sink(Some(Arc::new(Mutex::new(Vec::new()))))
    }
    fn say(&mut self, msg: impl std::fmt::Display) {
        let _ = writeln!(self, "{msg}");
    }
    fn take(&self) -> Vec<u8> {
        match &self.0 {
            Some(b) => std::mem::take(&mut *b.lock().unwrap_or_else(|p| p.into_inner())),
            None => Vec::new(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0 {
            Some(b) => {
                b.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &self.0 {
            Some(_) => Ok(()),
            None => std::io::stderr().flush(),
        }
    }
}

/// One scenario's outcome in a multi-scenario call.
enum Outcome {
    Ran(Box<Report>),
    Invalid(String),
    CannotRun(String),
}

/// One scenario file's result.
struct FileResult {
    file: PathBuf,
    outcome: Outcome,
    snapshot_failed: bool,
}

/// Arguments that make no sense together, checked before anything runs.
fn check_args(args: &RunArgs) -> Result<(), String> {
    if let Some(u) = &args.upstream {
        crate::relay::Upstream::parse(u).map_err(|e| format!("--upstream: {e}"))?;
    }
    if args.jobs > 1 && args.listen.port() != 0 {
        return Err(format!(
            "-j {} needs a relay port chosen per scenario: use --listen with port 0 (not {})",
            args.jobs, args.listen
        ));
    }
    if args.jobs > 1 && args.server_cmd.is_some() {
        return Err(format!(
            "-j {} cannot share one --server-cmd between scenarios running at once (each would start the server on the same port): use -j 1",
            args.jobs
        ));
    }
    Ok(())
}

pub(crate) async fn cmd_run(mut args: RunArgs) -> i32 {
    // Raised quietly: many clients (`--clients`) need many descriptors.
    let _ = crate::relay::nofile::raise();
    let all = match expand(&args.scenarios) {
        Ok(f) => f,
        Err(e) => {
            errln!("error: {e}");
            return exit::INVALID;
        }
    };
    if let Err(e) = check_args(&args) {
        errln!("error: {e}");
        return exit::INVALID;
    }
    args.listen_tls = match super::prepare_tls(&args.tls.settings()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    if args.netns {
        if let Err(e) = crate::netns::preflight() {
            errln!("error: {e}");
            return exit::CANNOT_RUN;
        }
    }
    // Report file names depend on the whole selection, not on the shard.
    let many = all.len() > 1;
    let files = match args.shard {
        Some(s) => {
            let picked = s.pick(&all);
            if picked.is_empty() {
                errln!(
                    "flatline: shard {}/{} has no scenario ({} in all)",
                    s.index,
                    s.count,
                    all.len()
                );
            }
            picked
        }
        None => all,
    };
    let interrupt = interrupt_token();
    let results = run_files(Arc::new(args.clone()), files, many, &interrupt).await;
    conclude(&args, &results, many, interrupt.is_cancelled())
}

/// Run the files, `args.jobs` at a time; results in the files' order.
async fn run_files(
    args: Arc<RunArgs>,
    files: Vec<PathBuf>,
    many: bool,
    interrupt: &CancellationToken,
) -> Vec<FileResult> {
    if args.jobs <= 1 {
        let mut out = Vec::new();
        for file in files {
            if interrupt.is_cancelled() {
                break;
            }
            out.push(run_file(&args, file, many, interrupt, Sink::stderr()).await);
        }
        return out;
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(args.jobs as usize));
    let printing = Arc::new(tokio::sync::Mutex::new(()));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, file) in files.into_iter().enumerate() {
        let (args, permits, printing) = (args.clone(), permits.clone(), printing.clone());
        let interrupt = interrupt.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.ok()?;
            if interrupt.is_cancelled() {
                return None;
            }
            let sink = Sink::buffer();
            let r = run_file(&args, file.clone(), many, &interrupt, sink.clone()).await;
            // This scenario's messages, in one piece.
            let _turn = printing.lock().await;
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "── {} ──", file.display());
            let _ = err.write_all(&sink.take());
            Some((i, r))
        });
    }
    let mut done: Vec<(usize, FileResult)> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(x)) = r {
            done.push(x);
        }
    }
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The scenario as it will run, or why it cannot.
fn prepare(args: &RunArgs, file: &Path, sink: &mut Sink) -> Result<Scenario, Outcome> {
    let loaded = scenario::load_file(file).map_err(|e| {
        sink.say(format!("error: {e}"));
        Outcome::Invalid(e.to_string())
    })?;
    for w in &loaded.warnings {
        sink.say(format!("warning: {w}"));
    }
    let mut sc = loaded.scenario;
    if args.demo {
        // The extra demo client arguments become part of the scenario as
        // run, so that the report records them and `replay` uses them.
        sc.demo_client.extend(args.demo_args.iter().cloned());
    }
    if let Some(n) = args.clients {
        // Likewise the number of clients.
        sc.clients = Some(n as usize);
    }
    let invalid = |sink: &mut Sink, msg: String| {
        sink.say(format!("error: {msg}"));
        Outcome::Invalid(msg)
    };
    if let (None, Some(u)) = (&args.upstream, &sc.upstream) {
        if let Err(e) = crate::relay::Upstream::parse(u) {
            return Err(invalid(sink, format!("{}: upstream: {e}", file.display())));
        }
    }
    if args.demo {
        // A bad demo client argument is an invalid argument (exit 2), not
        // a run that could not be carried out.
        if let Err(e) = DemoClientOpts::from_args(&sc.demo_client) {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("");
            let msg = format!(
                "{}: invalid demo client arguments: {}",
                file.display(),
                first.trim_start_matches("error: ")
            );
            return Err(invalid(sink, msg));
        }
    }
    Ok(sc)
}

/// Load, run and write the outputs of one scenario file.
async fn run_file(
    args: &RunArgs,
    file: PathBuf,
    many: bool,
    interrupt: &CancellationToken,
    mut sink: Sink,
) -> FileResult {
    let result = |outcome, snapshot_failed| FileResult {
        file: file.clone(),
        outcome,
        snapshot_failed,
    };
    let sc = match prepare(args, &file, &mut sink) {
        Ok(sc) => sc,
        Err(o) => return result(o, false),
    };
    let opts = RunOptions {
        upstream: args.upstream.clone(),
        listen: args.listen,
        seed: args.seed,
        server_cmd: args.server_cmd.clone(),
        client_cmd: args.client_cmd.clone(),
        demo: args.demo,
        clients: None,
        demo_args: Vec::new(),
        interrupt: interrupt.clone(),
        netns: args.netns,
        events: args
            .events
            .as_ref()
            .map(|p| per_scenario(p, &sc.name, many)),
        tls: args.tls.settings(),
        listen_tls: args.listen_tls.clone(),
    };
    let report = match run_one(&sc, &opts, args.quiet, &mut sink).await {
        Ok(r) => r,
        Err(e) => {
            sink.say(format!("error: {}: {e}", file.display()));
            return result(Outcome::CannotRun(e.to_string()), false);
        }
    };
    let not_started = report_commands(&report, &mut sink);
    if let Err(e) = write_outputs(args, &report, &sc, many) {
        sink.say(format!("error: {e}"));
        return result(Outcome::CannotRun(e), false);
    }
    let snapshot_failed = match check_snapshot(args, &report, &mut sink) {
        Ok(()) => false,
        Err(diff) => {
            sink.say(diff);
            true
        }
    };
    match not_started {
        // Its report is written, but its verdicts mean nothing.
        Some(why) => result(Outcome::CannotRun(why), snapshot_failed),
        None => result(Outcome::Ran(Box::new(report)), snapshot_failed),
    }
}

/// The verdict table, the summary, JUnit, and the exit status.
fn conclude(args: &RunArgs, results: &[FileResult], many: bool, interrupted: bool) -> i32 {
    let reports: Vec<Report> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Ran(r) => Some((**r).clone()),
            _ => None,
        })
        .collect();
    if let Some(path) = &args.junit {
        if let Err(e) = write_file(path, &report::junit::junit(&reports)) {
            errln!("error: {e}");
            return exit::CANNOT_RUN;
        }
    }
    let color = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", report::terminal::verdict_table(&reports, color));
    let all_ran = results.iter().all(|r| matches!(r.outcome, Outcome::Ran(_)));
    if many || !all_ran {
        let _ = writeln!(out, "summary:");
        for r in results {
            let (status, what) = match &r.outcome {
                Outcome::Ran(r) if r.passed => ("PASS", r.scenario.clone()),
                Outcome::Ran(r) => ("FAIL", r.scenario.clone()),
                Outcome::Invalid(e) => ("INVALID", e.clone()),
                Outcome::CannotRun(e) => ("ERROR", e.clone()),
            };
            let _ = writeln!(out, "  {status:<8} {}  {what}", r.file.display());
        }
    }
    let any = |f: fn(&Outcome) -> bool| results.iter().any(|r| f(&r.outcome));
    if any(|o| matches!(o, Outcome::CannotRun(_))) || interrupted {
        exit::CANNOT_RUN
    } else if any(|o| matches!(o, Outcome::Invalid(_))) {
        exit::INVALID
    } else if results.iter().any(|r| r.snapshot_failed) || reports.iter().any(|r| !r.passed) {
        exit::FAIL
    } else {
        exit::PASS
    }
}

/// Run one scenario with the live view (unless `quiet`) written to `sink`.
pub(crate) async fn run_one(
    sc: &Scenario,
    opts: &RunOptions,
    quiet: bool,
    sink: &mut Sink,
) -> Result<Report, crate::run::RunError> {
    let mut printer = (!quiet).then(|| {
        let p = LivePrinter::new(sink.clone());
        if sink.0.is_none() && std::io::stderr().is_terminal() {
            p.with_progress(&sc.name, sc.duration.0)
        } else {
            p
        }
    });
    let mut say = sink.clone();
    let result = run(
        sc,
        opts,
        |url| {
            if opts.client_cmd.is_none() && !opts.demo {
                let many = match opts.clients.or(sc.clients).unwrap_or(1) {
                    n if n > 1 => format!(
                        " ({n} clients: client i at {})",
                        crate::run::client_url(url, 0, n)
                            .strip_suffix('0')
                            .map(|u| format!("{u}<i>"))
                            .unwrap_or_default()
                    ),
                    _ => String::new(),
                };
                say.say(format!(
                    "flatline: `{}` listening on {url}: connect your client there{many}",
                    sc.name
                ));
            } else if !quiet {
                say.say(format!("flatline: `{}` relay at {url}", sc.name));
            }
        },
        |e| {
            if let Some(p) = printer.as_mut() {
                p.on_event(e);
            }
        },
    )
    .await;
    if let (Some(p), Ok(r)) = (printer.as_mut(), &result) {
        p.finish(r.duration);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_files_once_in_a_stable_order() {
        let files: Vec<PathBuf> = ["c", "a", "e", "b", "d"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let s = |t: &str| t.parse::<Shard>().unwrap();
        assert_eq!(s("1/2").pick(&files), ["a", "c", "e"].map(PathBuf::from));
        assert_eq!(s("2/2").pick(&files), ["b", "d"].map(PathBuf::from));
        let mut all: Vec<PathBuf> = (1..=3)
            .flat_map(|i| s(&format!("{i}/3")).pick(&files))
            .collect();
        all.sort();
        assert_eq!(all.len(), 5);
        all.dedup();
        assert_eq!(all.len(), 5);
        assert!(s("7/7").pick(&files).is_empty());
        for bad in ["0/3", "4/3", "1/0", "1", "a/b", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
