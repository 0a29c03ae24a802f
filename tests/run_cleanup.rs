//! A finished run leaves nothing behind: its client and server commands (and
//! their children) are gone, and nothing listens on its relay port.

use flatline::run::{run, RunOptions};
use flatline::scenario::parse_str;

const SCENARIO: &str = "
name: cleanup
description: A short run whose client command never exits by itself.
duration: 1500ms
expect:
  - kind: no_reconnect
    after: start
    for: 1s
";

/// Running (a zombie waiting for a reaper counts as gone: it runs nothing).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => {
            !matches!(stat.rsplit(')').next().map(str::trim_start), Some(s) if s.starts_with('Z') || s.starts_with('X'))
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn commands_and_their_children_are_stopped() {
    let dir = std::env::temp_dir().join(format!("flatline-cleanup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pids = dir.join("pids");
    let sc = parse_str(SCENARIO, "cleanup.yaml").unwrap().scenario;
    // The client starts a grandchild and ignores SIGTERM itself: both must
    // still be gone (SIGKILL of the whole process group after the grace).
    let cmd = format!(
        "trap '' TERM; sleep 1000 & echo $! > {p}; echo $$ >> {p}; wait",
        p = pids.display()
    );
    let opts = RunOptions {
        client_cmd: Some(cmd),
        ..RunOptions::default()
    };
    let mut url = String::new();
    let report = run(&sc, &opts, |u| url = u.to_string(), |_| {})
        .await
        .unwrap();
    let listed = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<i32> = listed.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{listed}");
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived the run");
    }
    let client = report.commands.iter().find(|c| c.role == "client").unwrap();
    assert_eq!(client.signal, Some(libc::SIGKILL), "{client:?}");
    // Nothing listens on the relay's port any more.
    let addr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let err = tokio::net::TcpStream::connect(&addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let _ = std::fs::remove_dir_all(&dir);
}
