//! `flatline serve` as a process: loopback by default, a non-loopback
//! address only with `--allow-remote`, and SIGTERM closes every session and
//! leaves no listener.

mod serve_common;

use serde_json::json;
use serve_common::*;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn flatline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flatline"));
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

#[tokio::test]
async fn non_loopback_needs_the_flag() {
    let out = flatline()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-remote") && err.contains("open proxy"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_session_and_listener() {
    let mut child = flatline()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(T, err.next_line())
        .await
        .expect("the ready line in time")
        .unwrap()
        .unwrap();
    let addr: std::net::SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in `{line}`"));
    let (up, demo) = echo().await;
    let a = http(
        addr,
        "POST",
        "/sessions",
        &json!({"upstream": format!("ws://{up}/")}).to_string(),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let url = a.json()["url"].as_str().unwrap().to_string();
    let mut c = ws(&url).await;
    echo_text(&mut c, "hi").await;
    let relay = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();

    unsafe {
        libc::kill(child.id().unwrap() as i32, libc::SIGTERM);
    }
    let status = tokio::time::timeout(T, child.wait())
        .await
        .expect("exit in time")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(tokio::net::TcpStream::connect(relay).await.is_err());
    demo.stop().await.unwrap();
}
