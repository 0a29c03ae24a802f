//! Timeline scheduling accuracy (issue #5: "a fault starts within 2 ms of its
//! due time"). Runs scenarios in-process through [`flatline::run::run`], as
//! `flatline run` does (multi-thread runtime, the relay, the timeline and the
//! judging loop), against a raw WebSocket echo upstream, with faults due at
//! known times:
//!
//! * 50 faults `at: 100ms`, `120ms`, … (every 20 ms), 10 ms long;
//! * 10 faults `at: open#1 + 250ms`, `+ 287ms`, …;
//! * a chain of 10 faults, each `at:` the previous one's `.end`, 20 ms long.
//!
//! For each `fault_start` the due time is resolved from the run's own event
//! log (so `open#1` and `x.end` are the times they were logged), and for
//! each `fault_end` the due time is its start plus `duration`. The error is
//! `|event t - due t|`; min/p50/p99/max are printed in µs, first with the
//! relay idle (one open connection, no traffic), then with the relay loaded
//! (connections echoing 64 B frames back to back, every frame logged twice)
//! and with an expectation being judged every 50 ms over the growing log.
//!
//! ```text
//! cargo bench --bench timeline             # 4 runs per mode
//! cargo bench --bench timeline -- --quick  # 1 run per mode
//! ```

use flatline::events::{Event, EventKind};
use flatline::expect::refs::resolve;
use flatline::run::{run, RunOptions};
use flatline::scenario::parse_str;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "common/echo.rs"]
mod echo;
use echo::{echo_server, read_head, Res, REQUEST};

/// The scenario: every fault is a 1 ms `delay` on all connections (so that
/// starting one really sends commands to the connections).
fn scenario_yaml(judged: bool) -> String {
    let mut y = String::from(
        "name: timing\ndescription: scheduling accuracy\nduration: 1500ms\nseed: 1\nfaults:\n",
    );
    for i in 0..50 {
        y += &format!(
            "  - {{name: t{i}, kind: delay, latency: 1ms, at: {}ms, duration: 10ms}}\n",
            100 + 20 * i
        );
    }
    for i in 0..10 {
        y += &format!(
            "  - {{name: o{i}, kind: delay, latency: 1ms, at: open#1 + {}ms, duration: 10ms}}\n",
            250 + 37 * i
        );
    }
    y += "  - {name: c0, kind: delay, latency: 1ms, at: 300ms, duration: 20ms}\n";
    for i in 1..10 {
        y += &format!(
            "  - {{name: c{i}, kind: delay, latency: 1ms, at: c{}.end, duration: 20ms}}\n",
            i - 1
        );
    }
    if judged {
        // Never decided before the end: judged every 50 ms over the whole log.
        y += "expect:\n  - {kind: stays_connected, side: client, after: start, for: 10s}\n";
    }
    y
}

/// One client connection through the relay; with `load`, it keeps up to 32
/// 64 B frames in flight until `stop`, counting echoed frames.
async fn client(url: String, load: bool, stop: Arc<AtomicBool>, echoed: Arc<AtomicU64>) -> Res<()> {
    let addr = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .ok_or("bad url")?
        .to_string();
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(REQUEST).await?;
    read_head(&mut s).await?;
    let payload = [b'x'; 64];
    let frame = flatline::frame::encode_frame(2, true, &payload, Some([1, 2, 3, 4]));
    let echo_len = frame.len() - 4;
    if !load {
        // Idle: hold the connection open until the relay closes it.
        let mut b = [0u8; 64];
        while s.read(&mut b).await? > 0 {}
        return Ok(());
    }
    let (mut r, mut w) = s.into_split();
    let batch: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 32)
        .collect();
    w.write_all(&batch).await?;
    let mut got = vec![0u8; echo_len * 32];
    while !stop.load(Ordering::Relaxed) {
        r.read_exact(&mut got).await?;
        echoed.fetch_add(32, Ordering::Relaxed);
        w.write_all(&batch).await?;
    }
    Ok(())
}

/// Scheduling errors (µs) of one run: (start errors, end errors, log length).
async fn one_run(
    upstream: SocketAddr,
    load_conns: usize,
    judged: bool,
) -> Res<(Vec<f64>, Vec<f64>, usize, u64)> {
    let loaded = parse_str(&scenario_yaml(judged), "timing.yaml").map_err(|e| e.to_string())?;
    let sc = loaded.scenario;
    let opts = RunOptions {
        upstream: Some(format!("ws://{upstream}/echo")),
        ..RunOptions::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let (s2, e2) = (stop.clone(), echoed.clone());
    let report = run(
        &sc,
        &opts,
        |url: &str| {
            // One idle connection (open#1), then the loaders.
            tasks.push(tokio::spawn(client(
                url.to_string(),
                false,
                s2.clone(),
                e2.clone(),
            )));
            for _ in 0..load_conns {
                tasks.push(tokio::spawn(client(
                    url.to_string(),
                    true,
                    s2.clone(),
                    e2.clone(),
                )));
            }
        },
        |_: &Event| {},
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let ev = &report.events;
    let mut started: HashMap<String, Duration> = HashMap::new();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for e in ev {
        match &e.kind {
            EventKind::FaultStart { fault, .. } => {
                let Some(spec) = sc
                    .faults
                    .iter()
                    .enumerate()
                    .find(|(i, _)| &sc.fault_name(*i) == fault)
                else {
                    continue;
                };
                started.insert(fault.clone(), e.t);
                let due = match &spec.1.at {
                    None => Some(Duration::ZERO),
                    Some(r) => resolve(r, ev),
                };
                if let Some(due) = due {
                    starts.push(err_us(e.t, due));
                }
            }
            EventKind::FaultEnd { fault, .. } => {
                let Some(spec) = sc
                    .faults
                    .iter()
                    .enumerate()
                    .find(|(i, _)| &sc.fault_name(*i) == fault)
                else {
                    continue;
                };
                if let (Some(s), Some(d)) = (started.get(fault), spec.1.duration) {
                    ends.push(err_us(e.t, *s + d.0));
                }
            }
            _ => {}
        }
    }
    let missing = sc.faults.len() - starts.len();
    if missing > 0 {
        eprintln!("  warning: {missing} faults never started");
    }
    Ok((starts, ends, ev.len(), echoed.load(Ordering::Relaxed)))
}

fn err_us(t: Duration, due: Duration) -> f64 {
    (t.as_nanos() as f64 - due.as_nanos() as f64).abs() / 1000.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn line(label: &str, v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let max = v.last().copied().unwrap_or(f64::NAN);
    println!(
        "  {:<28} n={:>4}  min {:>7.0}  p50 {:>7.0}  p99 {:>7.0}  max {:>7.0}  {}",
        label,
        v.len(),
        pct(v, 0.0),
        pct(v, 0.5),
        pct(v, 0.99),
        max,
        if max <= 2000.0 {
            "ok (<= 2 ms)"
        } else {
            "MISSED (> 2 ms)"
        }
    );
    max
}

fn main() -> Res<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 4 };
    // As `flatline run`: the default multi-thread runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let upstream = echo_server().await?;
        println!("flatline timeline scheduling accuracy: |event t - due t| in µs, {runs} run(s) per mode, 70 faults per run");
        for (label, load, judged) in [
            ("idle relay", 0usize, false),
            ("loaded relay (4 conns)", 4, false),
            ("loaded + judged", 4, true),
        ] {
            let (mut s, mut e) = (Vec::new(), Vec::new());
            let (mut events, mut echoed) = (0usize, 0u64);
            for _ in 0..runs {
                let (a, b, n, k) = one_run(upstream, load, judged).await?;
                s.extend(a);
                e.extend(b);
                events += n;
                echoed += k;
            }
            println!(
                "{label}: {} events logged per run, {} frames echoed per run",
                events / runs,
                echoed / runs as u64
            );
            line("fault_start", &mut s);
            line("fault_end (start+duration)", &mut e);
        }
        Ok(())
    })
}
