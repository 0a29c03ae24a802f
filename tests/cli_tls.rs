//! The TLS flags as a user drives them: `run --tls auto` with the demo peers
//! over wss:// on both legs (same verdicts as over ws://), what a client
//! command is given to trust the certificate, and bad TLS arguments.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::process::Command;

/// Bound on one whole `flatline` invocation.
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_flatline")
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cli")
        .join(name)
        .display()
        .to_string()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-tls-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn flatline(args: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(RUN_LIMIT, c.output())
        .await
        .unwrap_or_else(|_| panic!("flatline {args:?} did not finish within {RUN_LIMIT:?}"))
        .unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn demo_over_wss_on_both_legs_gives_the_same_verdicts() {
    let dir = tmpdir("demo");
    let report = dir.join("report.json");
    let quick = fixture("quick-pong-loss.yaml");
    let report_s = report.display().to_string();
    let good = [
        "run", &quick, "--demo", "--tls", "auto", "-q", "--report", &report_s,
    ];
    let bad = [
        "run",
        &quick,
        "--demo",
        "--tls",
        "auto",
        "-q",
        "--demo-arg=--no-heartbeat",
    ];
    let (g, b) = tokio::join!(flatline(&good), flatline(&bad));
    // The pong text frames were matched and dropped: the relay saw
    // decrypted frames.
    assert_eq!(g.status.code(), Some(0), "{}", show(&g));
    assert_eq!(b.status.code(), Some(1), "{}", show(&b));
    let err = String::from_utf8_lossy(&g.stderr);
    assert!(
        err.contains("--ignore-certificate-errors-spki-list="),
        "{err}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["settings"]["tls"]["listen"], "auto", "{r}");
    assert!(r["settings"]["upstream"].is_null());
}

#[tokio::test]
async fn a_client_command_gets_the_wss_url_and_the_certificate() {
    let dir = tmpdir("env");
    let out = dir.join("env.txt");
    // Records what it was given, then runs the demo client trusting the
    // certificate it was pointed at.
    let cmd = format!(
        "printf '%s\\n' \"$FLATLINE_URL\" \"$SSL_CERT_FILE\" \"$NODE_EXTRA_CA_CERTS\" \"$REQUESTS_CA_BUNDLE\" \"$FLATLINE_TLS_SPKI\" > '{}'; exec '{}' demo-client --ca \"$SSL_CERT_FILE\"",
        out.display(),
        bin()
    );
    let quick = fixture("quick-reset.yaml");
    let o = flatline(&["run", &quick, "--tls", "auto", "-q", "--client-cmd", &cmd]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let env = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = env.lines().collect();
    assert!(lines[0].starts_with("wss://127.0.0.1:"), "{env}");
    assert!(lines[1].ends_with("cert.pem"), "{env}");
    assert_eq!(lines[1], lines[2]);
    assert_eq!(lines[1], lines[3]);
    assert_eq!(lines[4].len(), 44, "{env}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(lines[1]) && err.contains(lines[4]), "{err}");
    // The generated certificate is gone with the run.
    assert!(!Path::new(lines[1]).exists());
}

#[tokio::test]
async fn bad_tls_arguments_exit_2_with_a_clear_message() {
    let quick = fixture("quick-reset.yaml");
    let q = quick.as_str();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", q, "--demo", "--tls-cert", "c.pem"], "--tls-key"),
        (vec!["run", q, "--demo", "--tls", "manual"], "manual"),
        (
            vec![
                "run",
                q,
                "--demo",
                "--tls-cert",
                "no/c.pem",
                "--tls-key",
                "no/k.pem",
            ],
            "no/c.pem",
        ),
        (
            vec!["run", q, "--demo", "--upstream-ca", "no/ca.pem"],
            "no/ca.pem",
        ),
        (
            vec![
                "run",
                q,
                "--demo",
                "--upstream-ca",
                "x.pem",
                "--upstream-insecure",
            ],
            "--upstream-insecure",
        ),
        (
            vec![
                "relay",
                "--upstream",
                "wss://127.0.0.1:1/",
                "--tls-cert",
                "Cargo.toml",
                "--tls-key",
                "Cargo.toml",
            ],
            "no PEM certificate",
        ),
    ];
    for (args, needle) in cases {
        let o = flatline(&args).await;
        assert_eq!(o.status.code(), Some(2), "flatline {args:?}\n{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "flatline {args:?}: {err}");
    }
}
