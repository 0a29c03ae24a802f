//! A finished run leaves nothing behind: its client and server commands (and
//! their children) are gone, nothing listens on its relay port, and the
//! timeline's thread has ended.

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

/// This process's running timeline threads (the OS keeps 15 bytes of the
/// name `flatline-timeline`).
fn timeline_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let pid = t.file_name().to_string_lossy().parse().unwrap_or(0);
            comm.trim() == "flatline-timeli" && alive(pid)
        })
        .count()
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
    let mut timelines_seen = 0;
    let report = run(
        &sc,
        &opts,
        |u| url = u.to_string(),
        |_| timelines_seen = timelines_seen.max(timeline_threads()),
    )
    .await
    .unwrap();
    // The timeline ran on its own thread, and that thread is gone (joined;
    // the kernel may take a moment to drop its entry).
    assert_eq!(timelines_seen, 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while timeline_threads() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        timeline_threads(),
        0,
        "the timeline's thread outlived the run"
    );
    let listed = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<i32> = listed.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{listed}");
    // SIGKILL is delivered asynchronously: give the kernel a bounded moment
    // to finish each process off (there is no event to await for another
    // process group's death).
    for pid in pids {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while alive(pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
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
