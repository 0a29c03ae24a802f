//! Timeline scheduling accuracy (issue #5: "a fault starts within 2 ms of
//! its due time"; issue #15: within 1 ms at p99 while the relay is
//! saturated). Runs scenarios in-process through [`flatline::run::run`], as
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
//! relay idle (one open connection, no traffic), then with the relay
//! saturated (64 connections, `--conns N` to change, echoing 64 B frames
//! back to back, every frame logged twice), then saturated and with an
//! expectation being judged every 50 ms over the growing log. Each mode
//! gives the load average before it and how busy the runtime's workers and
//! the whole machine were while faults were due. The target is a p99 within
//! 1 ms. The timeline's thread asks for real-time scheduling, which needs
//! root or `CAP_SYS_NICE` (else it gets a short time slice); the first line
//! says which it got.
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

/// CPU time (user + system, clock ticks) this process's runtime workers
/// (where the relay's connections run) have used so far, and the machine's
/// busy and idle time (clock ticks).
fn cpu_times() -> (f64, f64, f64) {
    let mut workers = 0.0;
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // After the parenthesised name: state is field 3, utime 14, stime 15.
        let Some((name, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !name.ends_with("(tokio-rt-worker") {
            continue;
        }
        let f: Vec<f64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        workers += f.iter().sum::<f64>();
    }
    // First line of /proc/stat: user nice system idle iowait irq softirq steal.
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (workers, ticks.iter().sum::<f64>() - idle, idle)
}

/// What one run measured.
struct RunOut {
    starts: Vec<f64>,
    ends: Vec<f64>,
    events: usize,
    echoed: u64,
    /// CPUs the runtime's workers kept busy, on average while faults were
    /// due.
    cpus: f64,
    /// Share of the machine's CPU time that was busy meanwhile.
    machine_busy: f64,
}

/// Scheduling errors (µs) of one run, and how busy the CPUs were.
async fn one_run(upstream: SocketAddr, load_conns: usize, judged: bool) -> Res<RunOut> {
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
    // CPU use over the faults' second (200 ms to 1.2 s into the run), from
    // a thread of its own.
    let sampler = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(200));
        let (cpu0, busy0, idle0) = cpu_times();
        let wall = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(1000));
        let (cpu1, busy1, idle1) = cpu_times();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (
            (cpu1 - cpu0) / hz / wall.elapsed().as_secs_f64(),
            (busy1 - busy0) / ((busy1 - busy0) + (idle1 - idle0)).max(1e-9),
        )
    });
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
    let (cpus, machine_busy) = sampler.join().map_err(|_| "sampler panicked")?;
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
    Ok(RunOut {
        starts,
        ends,
        events: ev.len(),
        echoed: echoed.load(Ordering::Relaxed),
        cpus,
        machine_busy,
    })
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

/// Prints one row; whether its p99 is within the target (1 ms).
fn line(label: &str, v: &mut [f64]) -> bool {
    v.sort_by(|a, b| a.total_cmp(b));
    let p99 = pct(v, 0.99);
    println!(
        "  {:<28} n={:>4}  min {:>7.0}  p50 {:>7.0}  p99 {:>7.0}  max {:>7.0}  {}",
        label,
        v.len(),
        pct(v, 0.0),
        pct(v, 0.5),
        p99,
        v.last().copied().unwrap_or(f64::NAN),
        if p99 <= 1000.0 {
            "ok (p99 <= 1 ms)"
        } else {
            "MISSED (p99 > 1 ms)"
        }
    );
    p99 <= 1000.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Loading connections by default: enough to keep a 2-core machine busy
/// (with 4 it stayed half idle, the workers at 0.8 CPUs; with 64 it is 98%
/// busy, the workers at 1.6 CPUs and the run's judging on the rest).
const LOAD_CONNS: usize = 64;

fn main() -> Res<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 4 };
    let args: Vec<String> = std::env::args().collect();
    let conns: usize = match args.iter().position(|a| a == "--conns") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .ok_or("--conns takes a number")?,
        None => LOAD_CONNS,
    };
    // How the OS will schedule the timeline's thread (it asks the same way).
    let wakeups = std::thread::spawn(flatline::timeline::prompt_wakeups)
        .join()
        .map_err(|_| "probe thread panicked")?;
    // As `flatline run`: the default multi-thread runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let upstream = echo_server().await?;
        println!("flatline timeline scheduling accuracy: |event t - due t| in µs, {runs} run(s) per mode, 70 faults per run");
        println!(
            "timeline thread: {wakeups:?}; {} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        for (label, load, judged) in [
            ("idle relay".to_string(), 0usize, false),
            (format!("loaded relay ({conns} conns)"), conns, false),
            ("loaded + judged".to_string(), conns, true),
        ] {
            let load_before = loadavg();
            let (mut s, mut e) = (Vec::new(), Vec::new());
            let (mut events, mut echoed) = (0usize, 0u64);
            let (mut cpus, mut busy) = (0.0, 0.0);
            for _ in 0..runs {
                let r = one_run(upstream, load, judged).await?;
                s.extend(r.starts);
                e.extend(r.ends);
                events += r.events;
                echoed += r.echoed;
                cpus += r.cpus;
                busy += r.machine_busy;
            }
            println!(
                "{label}: load average {load_before}; {} events logged and {} frames echoed per run; while faults were due the runtime's workers kept {:.2} CPUs busy, the machine {:.0}%",
                events / runs,
                echoed / runs as u64,
                cpus / runs as f64,
                100.0 * busy / runs as f64,
            );
            line("fault_start", &mut s);
            line("fault_end (start+duration)", &mut e);
        }
        Ok(())
    })
}
