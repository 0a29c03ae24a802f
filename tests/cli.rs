//! The `flatline` command line as a user drives it: the built binary, its
//! subcommands, exit statuses, output files, child commands and signals.
//! Every run uses the short scenarios in `tests/fixtures/cli/` and every wait
//! is bounded.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStderr, Command};

/// Bound on one whole `flatline` invocation.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// Bound on one awaited line or message.
const T: Duration = Duration::from_secs(15);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_flatline")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cli")
        .join(name)
}

/// A fresh, empty directory for one test.
fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run the binary with `args` in `dir` (the repository if `None`), bounded.
async fn flatline(args: &[&str], dir: Option<&Path>) -> Output {
    let mut c = Command::new(bin());
    c.args(args)
        .current_dir(dir.unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR"))))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(RUN_LIMIT, c.output())
        .await
        .unwrap_or_else(|_| panic!("flatline {args:?} did not finish within {RUN_LIMIT:?}"))
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Assert the exit status, showing the output when it differs.
fn assert_status(o: &Output, want: i32) {
    assert_eq!(
        o.status.code(),
        Some(want),
        "exit status\n--- stdout\n{}\n--- stderr\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A free port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The next stderr line of a child that contains `needle` (bounded).
async fn line_with(
    lines: &mut Lines<BufReader<ChildStderr>>,
    needle: &str,
    seen: &mut Vec<String>,
) -> String {
    loop {
        let l = tokio::time::timeout(T, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no line with {needle:?} within {T:?}; seen: {seen:#?}"))
            .unwrap()
            .unwrap_or_else(|| {
                panic!("stderr ended before a line with {needle:?}; seen: {seen:#?}")
            });
        seen.push(l.clone());
        if l.contains(needle) {
            return l;
        }
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: sending a signal to a process this test started.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .map(|rest| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------- help

#[tokio::test]
async fn help_of_every_subcommand_shows_an_example() {
    for sub in [
        None,
        Some("run"),
        Some("check"),
        Some("list"),
        Some("replay"),
        Some("relay"),
        Some("demo-server"),
        Some("demo-client"),
    ] {
        let mut args: Vec<&str> = sub.into_iter().collect();
        args.push("--help");
        let o = flatline(&args, None).await;
        assert_status(&o, 0);
        let out = text(&o.stdout);
        assert!(out.contains("Usage: flatline"), "{args:?}: {out}");
        assert!(out.contains("Example"), "{args:?} shows no example:\n{out}");
        let name = sub.unwrap_or("");
        assert!(
            out.contains(&format!("flatline {name}")),
            "{args:?}: the example does not use `flatline {name}`:\n{out}"
        );
    }
    let o = flatline(&["--version"], None).await;
    assert_status(&o, 0);
    assert!(text(&o.stdout).starts_with("flatline "));
}

// ---------------------------------------------------------------- exit statuses

#[tokio::test]
async fn exit_0_when_every_expectation_passes() {
    let o = flatline(
        &["run", p(&fixture("quick-pong-loss.yaml")), "--demo", "-q"],
        None,
    )
    .await;
    assert_status(&o, 0);
    let out = text(&o.stdout);
    assert!(out.contains("notices") && out.contains("PASS"), "{out}");
    assert!(out.contains("2 of 2 expectations passed"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

/// On one CPU (`taskset`) flatline runs on a single-threaded runtime: the
/// relay, the demo peers' commands and the judges must all still make
/// progress there (nothing may block its one thread).
#[tokio::test]
async fn a_run_pinned_to_one_cpu_passes() {
    // SAFETY: a zeroed cpu_set_t is valid; the call fills it.
    let cpu = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .unwrap()
    };
    let mut c = Command::new("taskset");
    c.args(["-c", &cpu.to_string(), bin(), "run"])
        .arg(fixture("quick-pong-loss.yaml"))
        .args(["--demo", "-q"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let o = tokio::time::timeout(RUN_LIMIT, c.output())
        .await
        .expect("a pinned run did not finish in time")
        .expect("taskset (util-linux) runs");
    assert_status(&o, 0);
    assert!(text(&o.stdout).contains("2 of 2 expectations passed"));
}

#[tokio::test]
async fn exit_1_when_an_expectation_fails() {
    let dir = tmpdir("fail");
    let junit = dir.join("junit.xml");
    let o = flatline(
        &[
            "run",
            p(&fixture("quick-pong-loss.yaml")),
            "--demo",
            "--demo-arg=--no-heartbeat",
            "-q",
            "--junit",
            p(&junit),
        ],
        None,
    )
    .await;
    assert_status(&o, 1);
    let out = text(&o.stdout);
    assert!(out.contains("FAIL"), "{out}");
    assert!(out.contains("0 of 2 expectations passed"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), 2, "{xml}");
}

#[tokio::test]
async fn exit_2_for_invalid_scenarios_and_arguments() {
    let quick = fixture("quick-reset.yaml");
    let quick = p(&quick);
    let broken = fixture("broken.yaml");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // An invalid scenario: the message names file, line and column.
        (vec!["run", p(&broken), "--demo"], "broken.yaml:5:11"),
        (
            vec!["run", "no/such/file.yaml", "--demo"],
            "no/such/file.yaml",
        ),
        (
            vec!["run", quick, "--demo", "--no-such-flag"],
            "--no-such-flag",
        ),
        (vec!["run", "--demo"], "required"),
        (vec![], "Usage"),
        (vec!["frobnicate"], "frobnicate"),
        (vec!["run", quick, "--update-snapshots"], "--snapshot"),
        (vec!["run", quick, "--demo-arg=--no-heartbeat"], "--demo"),
        (
            vec!["run", quick, "--demo", "--client-cmd", "true"],
            "--client-cmd",
        ),
        (
            vec!["run", quick, "--demo", "--demo-arg=--bogus"],
            "--bogus",
        ),
        (
            vec!["run", quick, "--demo", "--listen", "nowhere"],
            "nowhere",
        ),
        (vec!["run", quick, "--demo", "--seed=-1"], "-1"),
        (
            vec!["run", quick, "--demo", "--upstream", "wss://a b/"],
            "a b",
        ),
        (
            vec!["run", quick, "--demo", "--upstream", "not a url"],
            "not a url",
        ),
        (vec!["check", p(&broken)], "broken.yaml:5:11"),
        (vec!["check", "no/such/file.yaml"], "no/such/file.yaml"),
        (vec!["check"], "required"),
        (vec!["list", "no/such/dir"], "no/such/dir"),
        (vec!["replay", "no/such/report.json"], "no/such/report.json"),
        (vec!["replay", quick], "quick-reset.yaml"),
        (vec!["relay", "--upstream", "ftp://127.0.0.1:1/"], "ftp"),
        (vec!["relay"], "--upstream"),
        (vec!["demo-client", "--heartbeat", "soon"], "soon"),
    ];
    let runs = cases.iter().map(|(args, _)| flatline(args, None));
    let outs = futures_util::future::join_all(runs).await;
    for ((args, needle), o) in cases.iter().zip(outs) {
        let err = text(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(2),
            "flatline {args:?}\n--- stdout\n{}\n--- stderr\n{err}",
            text(&o.stdout)
        );
        assert!(
            err.contains(needle),
            "flatline {args:?}: stderr does not mention {needle:?}:\n{err}"
        );
        assert!(
            !err.contains("panicked"),
            "flatline {args:?} panicked:\n{err}"
        );
    }
}

#[tokio::test]
async fn exit_3_when_the_upstream_is_unreachable() {
    let o = flatline(
        &[
            "run",
            p(&fixture("quick-reset.yaml")),
            "--demo",
            "-q",
            "--upstream",
            "ws://127.0.0.1:1/",
        ],
        None,
    )
    .await;
    assert_status(&o, 3);
    let err = text(&o.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(err.contains("did not accept"), "{err}");
    assert!(text(&o.stdout).contains("ERROR"), "{}", text(&o.stdout));
}

/// `flatline run quick-reset.yaml --demo -q --server-cmd CMD --upstream UP`,
/// then `extra`.
async fn run_with_server(cmd: &str, up: &str, extra: &[&str]) -> Output {
    let scenario = fixture("quick-reset.yaml");
    let mut args = vec![
        "run",
        p(&scenario),
        "--demo",
        "-q",
        "--server-cmd",
        cmd,
        "--upstream",
        up,
    ];
    args.extend_from_slice(extra);
    flatline(&args, None).await
}

/// A server command that exits early makes the run exit 3, and the error
/// carries its output to the last line: also a line written 0.1 s after the
/// command exited, by a process it started (the exit is seen first; the
/// output is read to its end, for up to 0.5 s).
#[tokio::test]
async fn exit_3_when_the_server_command_exits_early() {
    for cmd in [
        "echo server gives up; exit 7",
        "(sleep 0.1; echo server gives up) & exit 7",
    ] {
        let port = free_port();
        let o = run_with_server(cmd, &format!("ws://127.0.0.1:{port}/"), &[]).await;
        assert_status(&o, 3);
        let err = text(&o.stderr);
        assert!(
            err.contains("exited early (exit status: 7)"),
            "{cmd}: {err}"
        );
        assert!(err.trim_end().ends_with("server gives up"), "{cmd}: {err}");
    }
}

// ---------------------------------------------------------------- directories

#[tokio::test]
async fn a_broken_file_in_a_directory_does_not_stop_the_others() {
    let dir = tmpdir("directory");
    let sc = dir.join("scenarios");
    std::fs::create_dir_all(&sc).unwrap();
    for f in ["quick-reset.yaml", "broken.yaml", "snapshot-close.yaml"] {
        std::fs::copy(fixture(f), sc.join(f)).unwrap();
    }
    let report = dir.join("out/report.json");
    let junit = dir.join("out/junit.xml");
    let o = flatline(
        &[
            "run",
            p(&sc),
            "--demo",
            "-q",
            "--report",
            p(&report),
            "--junit",
            p(&junit),
        ],
        None,
    )
    .await;
    assert_status(&o, 2);
    let out = text(&o.stdout);
    let summary = out
        .split("summary:")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    let lines: Vec<&str> = summary.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{summary}");
    // Sorted by file name: broken, quick-reset, snapshot-close.
    assert!(
        lines[0].contains("INVALID") && lines[0].contains("broken.yaml"),
        "{summary}"
    );
    assert!(lines[0].contains("reconects"), "{summary}");
    assert!(
        lines[1].contains("PASS") && lines[1].contains("quick-reset"),
        "{summary}"
    );
    assert!(
        lines[2].contains("PASS") && lines[2].contains("snapshot-close"),
        "{summary}"
    );
    // Each scenario that ran has its own report; JUnit has both suites.
    for name in ["quick-reset", "snapshot-close"] {
        let r = read_json(&dir.join(format!("out/report.{name}.json")));
        assert_eq!(r["scenario"], name);
        assert_eq!(r["passed"], true);
    }
    assert!(!report.exists());
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| n.attribute("name").unwrap_or("").to_string())
        .collect();
    assert_eq!(suites, ["quick-reset", "snapshot-close"], "{xml}");
}

// ---------------------------------------------------------------- output files

#[tokio::test]
async fn report_junit_and_html_are_written() {
    let dir = tmpdir("outputs");
    let report = dir.join("r/report.json");
    let junit = dir.join("j/junit.xml");
    let html = dir.join("h/report.html");
    let all = dir.join("events.jsonl");
    let o = flatline(
        &[
            "run",
            p(&fixture("quick-reset.yaml")),
            "--demo",
            "-q",
            "--seed",
            "42",
            "--report",
            p(&report),
            "--junit",
            p(&junit),
            "--html",
            p(&html),
            "--events",
            p(&all),
        ],
        None,
    )
    .await;
    assert_status(&o, 0);

    // JSON: the contract's fields.
    let r = read_json(&report);
    assert_eq!(r["scenario"], "quick-reset");
    assert_eq!(r["seed"], 42);
    assert_eq!(r["passed"], true);
    assert!(r["duration_ms"].as_f64().unwrap() > 0.0, "{r}");
    let exps = r["expectations"].as_array().unwrap();
    assert_eq!(exps.len(), 1);
    assert_eq!(exps[0]["name"], "reconnects");
    assert_eq!(exps[0]["kind"], "reconnects");
    assert_eq!(exps[0]["passed"], true);
    assert!(exps[0]["observed_ms"].as_f64().is_some(), "{r}");
    assert!(exps[0]["detail"].as_str().unwrap().contains("#2"), "{r}");
    let events = r["events"].as_array().unwrap();
    assert!(events
        .iter()
        .all(|e| e["t_ms"].is_number() && e["kind"].is_string()));
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    for k in ["listening", "accept", "open", "fault_start", "stopping"] {
        assert!(kinds.contains(&k), "no `{k}` event in {kinds:?}");
    }
    assert!(events.iter().any(|e| e["kind"] == "open" && e["conn"] == 2));
    assert_eq!(r["commands"][0]["role"], "client");

    // --events has every frame; the report keeps them folded into runs and
    // counted per connection, and the counts agree.
    let streamed = std::fs::read_to_string(&all).unwrap();
    let lines: Vec<serde_json::Value> = streamed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let frames_streamed = lines.iter().filter(|e| e["kind"] == "frame").count() as u64;
    let frames_reported: u64 = events
        .iter()
        .map(|e| match e["kind"].as_str() {
            Some("frame") => 1,
            Some("frames") => e["count"].as_u64().unwrap(),
            _ => 0,
        })
        .sum();
    assert!(frames_streamed > 4, "{streamed}");
    assert_eq!(frames_reported, frames_streamed);
    assert!(
        lines.len() >= events.len(),
        "the file holds at least what the report does"
    );
    let summarised: u64 = r["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["to_server"]["frames"].as_u64().unwrap() + c["to_client"]["frames"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(summarised, frames_streamed);

    // JUnit: one suite, one case per expectation, well formed.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("name"), Some("quick-reset"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 1, "{xml}");
    assert_eq!(cases[0].attribute("name"), Some("reconnects"));
    assert_eq!(cases[0].attribute("classname"), Some("quick-reset"));
    assert!(cases[0]
        .attribute("time")
        .and_then(|t| t.parse::<f64>().ok())
        .is_some());
    assert!(!xml.contains("<failure"));

    // HTML: one self-contained page with the timeline.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.to_ascii_lowercase().starts_with("<!doctype html"),
        "{}",
        &page[..page.len().min(200)]
    );
    assert!(page.contains("<svg"));
    assert!(page.contains("quick-reset"));
    assert!(page.trim_end().ends_with("</html>"));
}

// ---------------------------------------------------------------- snapshots

#[tokio::test]
async fn snapshot_created_matched_broken_and_updated() {
    let dir = tmpdir("snapshot");
    let snaps = dir.join("snaps");
    let sc = fixture("snapshot-close.yaml");
    let args = ["run", p(&sc), "--demo", "-q", "--snapshot", p(&snaps)];
    let file = snaps.join("snapshot-close.transcript");

    // 1. Created.
    let o = flatline(&args, None).await;
    assert_status(&o, 0);
    assert!(
        text(&o.stderr).contains("new snapshot"),
        "{}",
        text(&o.stderr)
    );
    let original = std::fs::read_to_string(&file).unwrap();
    assert!(original.contains("scenario: snapshot-close"), "{original}");
    assert!(original.contains("close 1000"), "{original}");

    // 2. Matched.
    let o = flatline(&args, None).await;
    assert_status(&o, 0);
    assert!(!text(&o.stderr).contains("differs"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    // 3. Edited: the run fails with a readable diff.
    let edited = original.replace("close 1000", "close 4321");
    assert_ne!(edited, original);
    std::fs::write(&file, &edited).unwrap();
    let o = flatline(&args, None).await;
    assert_status(&o, 1);
    let err = text(&o.stderr);
    assert!(err.contains("differs"), "{err}");
    assert!(err.contains("--update-snapshots"), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with('-') && l.contains("close 4321")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with('+') && l.contains("close 1000")),
        "{err}"
    );
    // A differing snapshot is not rewritten.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), edited);

    // 4. --update-snapshots rewrites it.
    let mut upd = args.to_vec();
    upd.push("--update-snapshots");
    let o = flatline(&upd, None).await;
    assert_status(&o, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
}

// ---------------------------------------------------------------- replay

#[tokio::test]
async fn replay_says_identical_or_different() {
    let dir = tmpdir("replay");
    let report = dir.join("report.json");
    let o = flatline(
        &[
            "run",
            p(&fixture("snapshot-close.yaml")),
            "--demo",
            "-q",
            "--report",
            p(&report),
        ],
        None,
    )
    .await;
    assert_status(&o, 0);

    let o = flatline(&["replay", p(&report)], None).await;
    assert_status(&o, 0);
    let out = text(&o.stdout);
    assert!(out.contains("transcript identical"), "{out}");

    // A report whose recorded verdict differs from what happens now.
    let mut r = read_json(&report);
    r["expectations"][0]["passed"] = serde_json::Value::Bool(false);
    r["passed"] = serde_json::Value::Bool(false);
    let edited = dir.join("edited.json");
    std::fs::write(&edited, serde_json::to_string(&r).unwrap()).unwrap();
    let o = flatline(&["replay", p(&edited)], None).await;
    assert_status(&o, 1);
    let out = text(&o.stdout);
    assert!(out.contains("transcript differs"), "{out}");
    assert!(out.contains("stays-closed"), "{out}");

    // Not a report at all.
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{\"scenario\": 3").unwrap();
    let o = flatline(&["replay", p(&garbage)], None).await;
    assert_status(&o, 2);
    assert!(text(&o.stderr).contains("garbage.json"));
}

#[tokio::test]
async fn replay_uses_the_recorded_demo_client_arguments() {
    let dir = tmpdir("replay-demo-args");
    let report = dir.join("report.json");
    let o = flatline(
        &[
            "run",
            p(&fixture("quick-pong-loss.yaml")),
            "--demo",
            "--demo-arg=--no-heartbeat",
            "-q",
            "--report",
            p(&report),
        ],
        None,
    )
    .await;
    assert_status(&o, 1);
    // Replayed with the same broken client, the same expectations fail.
    let o = flatline(&["replay", p(&report)], None).await;
    assert_status(&o, 1);
    let out = text(&o.stdout);
    assert!(out.contains("0 of 2 expectations passed"), "{out}");
}

// ---------------------------------------------------------------- commands

#[tokio::test]
async fn client_cmd_gets_flatline_url_and_its_output_is_reported() {
    let dir = tmpdir("client-cmd");
    let report = dir.join("report.json");
    let cmd = format!("echo \"url=$FLATLINE_URL\"; exec '{}' demo-client", bin());
    let o = flatline(
        &[
            "run",
            p(&fixture("quick-reset.yaml")),
            "-q",
            "--client-cmd",
            &cmd,
            "--report",
            p(&report),
        ],
        None,
    )
    .await;
    assert_status(&o, 0);
    let r = read_json(&report);
    let cmds = r["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 1, "{r}");
    assert_eq!(cmds[0]["role"], "client");
    assert_eq!(cmds[0]["command"], cmd.as_str());
    let tail = cmds[0]["output_tail"].as_str().unwrap();
    let url = tail
        .lines()
        .find_map(|l| l.strip_prefix("url="))
        .unwrap_or_else(|| panic!("no url line in {tail}"));
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with("/feed"),
        "{url}"
    );
    // The demo client connected there (and again after the reset).
    assert!(tail.contains(&format!("connecting to {url}")), "{tail}");
    assert!(tail.contains("open (connection 2)"), "{tail}");
    // It was stopped with SIGTERM and exited by itself.
    assert_eq!(cmds[0]["exit"], 0, "{r}");
}

#[tokio::test]
async fn a_client_cmd_that_exits_early_or_cannot_start_is_reported() {
    let quick = fixture("quick-reset.yaml");
    let early_args = ["run", p(&quick), "-q", "--client-cmd", "echo oops; exit 5"];
    let missing_args = [
        "run",
        p(&quick),
        "-q",
        "--client-cmd",
        "no-such-client-binary --x",
    ];
    let (early, missing) = tokio::join!(flatline(&early_args, None), flatline(&missing_args, None));
    // It ran, nobody connected: the expectation fails, and stderr says why.
    assert_status(&early, 1);
    let err = text(&early.stderr);
    assert!(
        err.contains("client command `echo oops; exit 5` exited with status 5"),
        "{err}"
    );
    assert!(err.contains("oops"), "{err}");
    // The shell could not find it: the run could not be carried out.
    assert_status(&missing, 3);
    let out = text(&missing.stdout);
    assert!(
        out.contains("ERROR") && out.contains("cannot start the client command"),
        "{out}"
    );
    assert!(text(&missing.stderr).contains("not found"));
}

#[tokio::test]
async fn server_cmd_is_started_first_and_reported() {
    let dir = tmpdir("server-cmd");
    let report = dir.join("report.json");
    let port = free_port();
    let server = format!("exec '{}' demo-server --listen 127.0.0.1:{port}", bin());
    let up = format!("ws://127.0.0.1:{port}/feed");
    let o = run_with_server(&server, &up, &["--report", p(&report)]).await;
    assert_status(&o, 0);
    let r = read_json(&report);
    let cmds = r["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 2, "{r}");
    assert_eq!(cmds[0]["role"], "server");
    assert_eq!(cmds[0]["command"], server.as_str());
    let tail = cmds[0]["output_tail"].as_str().unwrap();
    assert!(
        tail.contains(&format!("listening on ws://127.0.0.1:{port}/")),
        "{tail}"
    );
    assert_eq!(
        cmds[0]["exit"], 0,
        "the server did not stop cleanly on SIGTERM: {r}"
    );
    assert_eq!(cmds[1]["role"], "client");
    assert_eq!(r["settings"]["upstream"], up.as_str());
    // The relay really went to that server: it answered the subscription.
    let events = r["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["kind"] == "upstream_connected"),
        "{events:#?}"
    );
}

#[tokio::test]
async fn ctrl_c_stops_the_run_kills_the_client_and_writes_the_report() {
    let dir = tmpdir("ctrl-c");
    let report = dir.join("report.json");
    let pidfile = dir.join("client.pid");
    let cmd = format!("echo $$ > '{}'; exec sleep 1000", p(&pidfile));
    let child = Command::new(bin())
        .args([
            "run",
            p(&fixture("long-wait.yaml")),
            "-q",
            "--client-cmd",
            &cmd,
            "--report",
            p(&report),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The client command writes its PID once it runs; poll for it (bounded).
    let sleep_pid: i32 = tokio::time::timeout(T, async {
        loop {
            if let Ok(s) = std::fs::read_to_string(&pidfile) {
                if let Ok(n) = s.trim().parse() {
                    return n;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the client command never wrote its PID");
    assert!(alive(sleep_pid));

    signal(child.id().unwrap(), libc::SIGINT);
    let o = tokio::time::timeout(T, child.wait_with_output())
        .await
        .expect("flatline did not stop after SIGINT")
        .unwrap();
    assert_status(&o, 3);
    assert!(
        !alive(sleep_pid),
        "the client command (pid {sleep_pid}) survived"
    );

    let r = read_json(&report);
    assert_eq!(r["scenario"], "long-wait");
    assert_eq!(r["passed"], false);
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("interrupted"), "{warnings}");
    assert_eq!(r["commands"][0]["role"], "client");
    assert_eq!(r["commands"][0]["signal"], libc::SIGTERM, "{r}");
    assert!(r["duration_ms"].as_f64().unwrap() < 100_000.0);
}

// ---------------------------------------------------------------- check, list

#[tokio::test]
async fn check_prints_the_plan() {
    let o = flatline(
        &[
            "check",
            p(&fixture("quick-reset.yaml")),
            p(&fixture("quick-pong-loss.yaml")),
        ],
        None,
    )
    .await;
    assert_status(&o, 0);
    let out = text(&o.stdout);
    assert!(out.contains("scenario quick-reset"), "{out}");
    assert!(out.contains("cut: reset at open#1 + 500ms"), "{out}");
    assert!(
        out.contains("reconnects: reconnects; after cut, within 2s"),
        "{out}"
    );
    assert!(out.contains("scenario quick-pong-loss"), "{out}");

    // One broken file among valid ones: the valid ones are still printed.
    let o = flatline(
        &[
            "check",
            p(&fixture("quick-reset.yaml")),
            p(&fixture("broken.yaml")),
        ],
        None,
    )
    .await;
    assert_status(&o, 2);
    assert!(text(&o.stdout).contains("scenario quick-reset"));
    let err = text(&o.stderr);
    assert!(err.contains("did you mean `reconnects`"), "{err}");

    // The bundled library is valid.
    let o = flatline(&["check", "scenarios/"], None).await;
    assert_status(&o, 0);
}

#[tokio::test]
async fn list_prints_one_line_per_scenario() {
    let o = flatline(&["list", "scenarios"], None).await;
    assert_status(&o, 0);
    let out = text(&o.stdout);
    let mut names: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                (p.extension()? == "yaml").then(|| p.file_stem()?.to_str().map(String::from))?
            })
            .collect();
    names.sort();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), names.len(), "{out}");
    for (l, n) in lines.iter().zip(&names) {
        assert!(l.starts_with(&format!("{n} ")), "{l:?} is not about {n}");
    }
    // The default directory is `scenarios`.
    let o = flatline(&["list"], None).await;
    assert_status(&o, 0);
    assert_eq!(text(&o.stdout), out);

    // A broken file is listed as such.
    let o = flatline(&["list", p(&fixture(""))], None).await;
    assert_status(&o, 2);
    let out = text(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("broken ") && l.contains("INVALID")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("quick-reset ") && l.contains("4s")),
        "{out}"
    );
}

// ---------------------------------------------------------------- relay, demo peers

#[tokio::test]
async fn relay_subcommand_forwards_reports_and_stops_on_sigterm() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::Message;

    let dir = tmpdir("relay");
    let events = dir.join("events.jsonl");

    let mut server = Command::new(bin())
        .args(["demo-server", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut s_lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let l = line_with(&mut s_lines, "listening on ws://", &mut seen).await;
    let server_url = l.split("listening on ").nth(1).unwrap().trim().to_string();
    assert!(server_url.starts_with("ws://127.0.0.1:"), "{l}");

    let upstream = format!("{server_url}feed");
    let mut relay = Command::new(bin())
        .args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--events",
            p(&events),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut r_lines = BufReader::new(relay.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let l = line_with(&mut r_lines, "relaying ", &mut seen).await;
    let relay_url = l
        .split("relaying ")
        .nth(1)
        .and_then(|r| r.split(" -> ").next())
        .unwrap()
        .to_string();
    assert!(relay_url.starts_with("ws://127.0.0.1:"), "{l}");
    assert!(l.contains(&upstream), "{l}");

    // A client through the relay: the demo server answers `ping` with `pong`.
    let (mut ws, _) = tokio::time::timeout(T, tokio_tungstenite::connect_async(relay_url.as_str()))
        .await
        .unwrap()
        .unwrap();
    let open = line_with(&mut r_lines, "#1 open", &mut seen).await;
    assert!(!open.is_empty());
    ws.send(Message::Text("ping".into())).await.unwrap();
    let answer = tokio::time::timeout(T, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t,
                Some(Ok(_)) => continue,
                other => panic!("no answer: {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(answer, "pong");
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    tokio::time::timeout(T, async { while let Some(Ok(_)) = ws.next().await {} })
        .await
        .unwrap();
    drop(ws);
    let closed = line_with(&mut r_lines, "#1 closed", &mut seen).await;
    assert!(
        closed.contains("close frame 1000 from the client"),
        "{closed}"
    );
    // What it relayed: `ping` and the close frame (code and `bye`) from the
    // client; the server's frames depend on its feed.
    assert!(
        closed.contains("; 2 frames (9 B) from the client, "),
        "{closed}"
    );
    assert!(closed.ends_with(" B) from the server"), "{closed}");

    signal(relay.id().unwrap(), libc::SIGTERM);
    let st = tokio::time::timeout(T, relay.wait())
        .await
        .expect("relay did not stop on SIGTERM")
        .unwrap();
    assert_eq!(st.code(), Some(0));

    let jsonl = std::fs::read_to_string(&events).unwrap();
    let evs: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let kinds: Vec<&str> = evs.iter().filter_map(|e| e["kind"].as_str()).collect();
    for k in ["listening", "accept", "open", "frame", "closed"] {
        assert!(kinds.contains(&k), "no `{k}` in {kinds:?}");
    }
    assert!(evs.iter().all(|e| e["t_ms"].is_number()));

    signal(server.id().unwrap(), libc::SIGTERM);
    let st = tokio::time::timeout(T, server.wait())
        .await
        .expect("demo-server did not stop on SIGTERM")
        .unwrap();
    assert_eq!(st.code(), Some(0));
}

#[tokio::test]
async fn demo_client_needs_a_url() {
    let mut c = Command::new(bin());
    c.arg("demo-client")
        .env_remove("FLATLINE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let o = tokio::time::timeout(RUN_LIMIT, c.output())
        .await
        .unwrap()
        .unwrap();
    assert_status(&o, 2);
    assert!(text(&o.stderr).contains("FLATLINE_URL"));
}

#[tokio::test]
async fn demo_server_reports_a_busy_port() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let o = flatline(&["demo-server", "--listen", &addr], None).await;
    assert_status(&o, 3);
    assert!(text(&o.stderr).contains(&addr));
}

// ------------------------------------------------ many clients, -j and --shard

/// The `summary:` lines of a run's stdout.
fn summary(o: &Output) -> Vec<String> {
    let out = text(&o.stdout);
    out.split("summary:")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{out}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

/// The scenarios of a directory for the -j and --shard tests.
fn library_dir(name: &str, files: &[&str]) -> PathBuf {
    let dir = tmpdir(name);
    let sc = dir.join("scenarios");
    std::fs::create_dir_all(&sc).unwrap();
    for f in files {
        std::fs::copy(fixture(f), sc.join(f)).unwrap();
    }
    sc
}

/// (suite, testcase, failed) of a JUnit file, in file order.
fn junit_cases(path: &Path) -> Vec<(String, String, bool)> {
    let xml = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            (
                n.attribute("classname").unwrap_or("").to_string(),
                n.attribute("name").unwrap_or("").to_string(),
                n.children().any(|c| c.has_tag_name("failure")),
            )
        })
        .collect()
}

#[tokio::test]
async fn parallel_runs_agree_with_one_at_a_time_and_keep_file_order() {
    let files = [
        "broken.yaml",
        "quick-pong-loss.yaml",
        "quick-reset.yaml",
        "snapshot-close.yaml",
    ];
    let sc = library_dir("parallel", &files);
    let run = |jobs: &'static str, junit: PathBuf| {
        let sc = sc.clone();
        async move {
            let o = flatline(
                &[
                    "run",
                    p(&sc),
                    "--demo",
                    "--demo-arg=--no-heartbeat",
                    "-j",
                    jobs,
                    "--junit",
                    p(&junit),
                ],
                None,
            )
            .await;
            (o, junit_cases(&junit))
        }
    };
    let dir = sc.parent().unwrap().to_path_buf();
    let (one, junit_one) = run("1", dir.join("junit-1.xml")).await;
    let (four, junit_four) = run("4", dir.join("junit-4.xml")).await;
    // An invalid file (exit 2) and a failed expectation: the same either way.
    assert_status(&one, 2);
    assert_status(&four, 2);
    let s = summary(&four);
    assert_eq!(summary(&one), s);
    let status: Vec<&str> = s
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(status, ["INVALID", "FAIL", "PASS", "PASS"], "{s:?}");
    for (line, f) in s.iter().zip(files) {
        assert!(line.contains(f), "{s:?}");
    }
    assert_eq!(junit_one, junit_four);
    let suites: Vec<&str> = junit_four.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        suites,
        [
            "quick-pong-loss",
            "quick-pong-loss",
            "quick-reset",
            "snapshot-close",
            "snapshot-close"
        ]
    );
    // Each scenario's messages come in one piece under its own heading.
    let err = text(&four.stderr);
    let mut groups: Vec<(String, String)> = Vec::new();
    for line in err.lines() {
        if let Some(h) = line.strip_prefix("── ") {
            groups.push((h.trim_end_matches(" ──").to_string(), String::new()));
        } else if let Some((_, body)) = groups.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    assert_eq!(groups.len(), files.len(), "{err}");
    for (file, body) in &groups {
        let stem = Path::new(file).file_stem().unwrap().to_str().unwrap();
        for other in files.iter().map(|f| f.trim_end_matches(".yaml")) {
            let relay_line = format!("flatline: `{other}` relay at");
            assert_eq!(
                body.contains(&relay_line),
                other == stem && stem != "broken",
                "{file}:\n{body}"
            );
        }
    }
}

#[tokio::test]
async fn shards_split_a_directory_once_and_in_order() {
    let sc = library_dir(
        "shard",
        &[
            "quick-pong-loss.yaml",
            "quick-reset.yaml",
            "snapshot-close.yaml",
        ],
    );
    let mut seen = Vec::new();
    for shard in ["1/2", "2/2"] {
        let o = flatline(&["run", p(&sc), "--demo", "-q", "--shard", shard], None).await;
        assert_status(&o, 0);
        seen.push(summary(&o));
    }
    let names = |s: &[String]| -> Vec<String> {
        s.iter()
            .map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        names(&seen[0]),
        ["quick-pong-loss.yaml", "snapshot-close.yaml"]
    );
    assert_eq!(names(&seen[1]), ["quick-reset.yaml"]);

    let o = flatline(&["run", p(&sc), "--demo", "-q", "--shard", "5/5"], None).await;
    assert_status(&o, 0);
    assert!(
        text(&o.stderr).contains("shard 5/5 has no scenario (3 in all)"),
        "{}",
        text(&o.stderr)
    );
    for bad in ["0/2", "3/2", "two"] {
        let o = flatline(&["run", p(&sc), "--demo", "--shard", bad], None).await;
        assert_status(&o, 2);
        assert!(
            text(&o.stderr).contains("is not a shard"),
            "{}",
            text(&o.stderr)
        );
    }
}

#[tokio::test]
async fn parallel_runs_refuse_a_fixed_port_or_a_shared_server_command() {
    let sc = fixture("quick-reset.yaml");
    let listen = format!("127.0.0.1:{}", free_port());
    let o = flatline(
        &["run", p(&sc), "--demo", "-j", "2", "--listen", &listen],
        None,
    )
    .await;
    assert_status(&o, 2);
    assert!(
        text(&o.stderr).contains("use --listen with port 0"),
        "{}",
        text(&o.stderr)
    );
    let o = flatline(
        &[
            "run",
            p(&sc),
            "--demo",
            "-j",
            "2",
            "--server-cmd",
            "true",
            "--upstream",
            "ws://127.0.0.1:1/",
        ],
        None,
    )
    .await;
    assert_status(&o, 2);
    assert!(text(&o.stderr).contains("use -j 1"), "{}", text(&o.stderr));
}

#[tokio::test]
async fn clients_start_n_commands_each_with_its_index_and_url() {
    let dir = tmpdir("clients");
    let report = dir.join("report.json");
    let cmd = format!(
        "echo \"client=$FLATLINE_CLIENT url=$FLATLINE_URL\"; exec '{}' demo-client",
        bin()
    );
    let o = flatline(
        &[
            "run",
            p(&fixture("quick-reset.yaml")),
            "-q",
            "--clients",
            "3",
            "--client-cmd",
            &cmd,
            "--report",
            p(&report),
        ],
        None,
    )
    .await;
    assert_status(&o, 0);
    let r = read_json(&report);
    assert_eq!(r["scenario_spec"]["clients"], 3, "recorded for replay");
    let cmds = r["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 3, "{r}");
    let mut clients = Vec::new();
    for c in cmds {
        let tail = c["output_tail"].as_str().unwrap();
        let line = tail.lines().find(|l| l.starts_with("client=")).unwrap();
        let (client, url) = line.split_once(" url=").unwrap();
        let client = client.trim_start_matches("client=").to_string();
        assert!(
            url.ends_with(&format!("/feed?flatline_client={client}")),
            "{line}"
        );
        assert!(tail.contains("open (connection 2)"), "{tail}");
        clients.push(client);
    }
    clients.sort();
    assert_eq!(clients, ["0", "1", "2"]);
    // Each client is judged on its own connections.
    let v = &r["expectations"][0];
    assert_eq!(v["passed"], true, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("3 of 3 clients passed (all 3 needed)"),
        "{detail}"
    );

    for bad in ["0", "10001", "many"] {
        let o = flatline(
            &[
                "run",
                p(&fixture("quick-reset.yaml")),
                "--demo",
                "--clients",
                bad,
            ],
            None,
        )
        .await;
        assert_status(&o, 2);
    }
}
