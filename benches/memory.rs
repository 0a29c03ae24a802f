//! Memory per relayed frame: does flatline's resident memory grow with the
//! number of frames that pass? Two processes are measured, each this binary
//! re-executed (`--serve relay|run`):
//!
//! * `relay`: [`Relay`] with [`Retention::Stream`], exactly as `flatline relay`
//!   runs it (no `--events` file);
//! * `run`: [`flatline::run::run`] with a scenario whose `heartbeat`
//!   expectation judges the pings, as `flatline run` would.
//!
//! A client sends pipelined batches of small frames (pings, texts with
//! counters, 64 B binaries) through it to an echo upstream. The relay's
//! VmRSS is read after a warm-up and again after the measured frames;
//! growth is printed in MB per million relayed frames (each echo is two
//! relayed frames). Target: below 1 MB per million. For reference, a third
//! line measures a relay whose log keeps every frame (what it did before).
//! Run:
//!
//! ```text
//! cargo bench --bench memory              # 2 M relayed frames per mode
//! cargo bench --bench memory -- --quick   # 0.6 M
//! ```

use flatline::events::{EventLog, Retention};
use flatline::relay::{Relay, RelayConfig};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "common/child.rs"]
mod child;
use child::{serve_rss, Proc};
#[path = "common/echo.rs"]
mod echo;
use echo::{echo_server, read_head, Res, REQUEST};

/// Frames per pipelined batch.
const BATCH: usize = 64;

const SCENARIO: &str = "name: memory-bench
description: a long chatty run whose pings a heartbeat expectation judges
duration: 1h
expect:
  - kind: heartbeat
    match: {opcode: ping}
    every: 1s
    tolerance: 2s
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let (Some(mode), Some(up)) = (get("--serve"), get("--upstream")) {
        if let Err(e) = rt.block_on(serve(&mode, &up)) {
            eprintln!("serve {mode}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let frames: u64 = if quick { 600_000 } else { 2_000_000 };
    println!(
        "memory per relayed frame ({} M relayed frames per mode after a 0.2 M warm-up)",
        frames as f64 / 1e6
    );
    println!("load: {}", uptime());
    let mut fails = 0;
    for mode in ["relay", "run", "keep-all"] {
        match rt.block_on(measure(mode, frames)) {
            Ok((before, after, secs)) => {
                let per_m = (after as f64 - before as f64) / 1024.0 / (frames as f64 / 1e6);
                let ok = per_m < 1.0;
                if mode == "keep-all" {
                    println!(
                        "{mode:<8} RSS {:.1} MB -> {:.1} MB: {per_m:+.1} MB per million frames (reference: a log that keeps every frame, as before)",
                        before as f64 / 1024.0,
                        after as f64 / 1024.0,
                    );
                    continue;
                }
                fails += usize::from(!ok);
                println!(
                    "{mode:<8} RSS {:.1} MB -> {:.1} MB over {:.1} s: {per_m:+.3} MB per million frames  [{}] (target < 1 MB)",
                    before as f64 / 1024.0,
                    after as f64 / 1024.0,
                    secs,
                    if ok { "ok" } else { "OVER" }
                );
            }
            Err(e) => {
                fails += 1;
                println!("{mode:<8} error: {e}");
            }
        }
    }
    println!("load: {}", uptime());
    if fails > 0 {
        std::process::exit(1);
    }
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            format!("load average {}", v.join(", "))
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// Child: a relay (or a run) toward `upstream`; prints its address and
/// answers `rss` on stdin.
async fn serve(mode: &str, upstream: &str) -> Res<()> {
    let url = format!("ws://{upstream}/echo");
    let mut _keep = None;
    let stop = tokio_util::sync::CancellationToken::new();
    let addr: SocketAddr = match mode {
        "relay" | "keep-all" => {
            let keep = if mode == "relay" {
                Retention::Stream
            } else {
                Retention::All
            };
            let r = Relay::start(RelayConfig::new(&url)?, EventLog::with(keep, None)).await?;
            let a = r.addr();
            _keep = Some(r);
            a
        }
        "run" => {
            let sc = flatline::scenario::parse_str(SCENARIO, "memory-bench.yaml")?.scenario;
            let opts = flatline::run::RunOptions {
                upstream: Some(url),
                interrupt: stop.clone(),
                ..Default::default()
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let mut tx = Some(tx);
                let r = flatline::run::run(
                    &sc,
                    &opts,
                    |u| {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(u.to_string());
                        }
                    },
                    |_| {},
                )
                .await;
                if let Err(e) = r {
                    eprintln!("run: {e}");
                }
            });
            let u = rx.await?;
            let host = u.trim_start_matches("ws://");
            host.split('/').next().unwrap_or(host).parse()?
        }
        m => return Err(format!("unknown mode {m}").into()),
    };
    serve_rss(addr).await?;
    stop.cancel();
    Ok(())
}

/// RSS (KiB) after the warm-up and after `frames` more relayed frames, and
/// the seconds the measured part took.
async fn measure(mode: &str, frames: u64) -> Res<(u64, u64, f64)> {
    let up = echo_server().await?;
    let mut child = Proc::spawn(&["--serve", mode, "--upstream", &up.to_string()])?;
    let addr = child.addr;
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(REQUEST).await?;
    read_head(&mut s).await?;
    let mut counter = 0u64;
    pump(&mut s, 200_000, &mut counter).await?;
    let before = child.rss()?;
    let t = Instant::now();
    pump(&mut s, frames, &mut counter).await?;
    let secs = t.elapsed().as_secs_f64();
    let after = child.rss()?;
    Ok((before, after, secs))
}

/// Relay `frames` frames (half each way) in pipelined batches of pings,
/// texts carrying a counter, and 64 B binaries.
async fn pump(s: &mut TcpStream, frames: u64, counter: &mut u64) -> Res<()> {
    let mask = Some([0x12, 0x34, 0x56, 0x78]);
    let binary = [7u8; 64];
    let mut batch = Vec::new();
    let mut back = Vec::new();
    let mut sent = 0u64;
    while sent < frames {
        batch.clear();
        let mut echo_len = 0;
        for i in 0..BATCH {
            *counter += 1;
            let f = match i % 3 {
                0 => flatline::frame::encode_frame(0x9, true, b"hb", mask),
                1 => {
                    let text = format!("tick {counter}");
                    flatline::frame::encode_frame(0x1, true, text.as_bytes(), mask)
                }
                _ => flatline::frame::encode_frame(0x2, true, &binary, mask),
            };
            echo_len += f.len() - 4;
            batch.extend_from_slice(&f);
        }
        s.write_all(&batch).await?;
        back.resize(echo_len, 0);
        s.read_exact(&mut back).await?;
        sent += 2 * BATCH as u64;
    }
    Ok(())
}
