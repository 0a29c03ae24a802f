//! The bundled `thundering-herd` scenario at 200 and 1,000 built-in demo
//! clients, run in-process as `flatline run --demo --clients N` does: wall
//! time of the run, the peak of connection attempts in any 100 ms and the
//! p10–p90 spread of the clients' first attempts after the restart (for the
//! good client and for `--no-jitter`), and the process's resident memory
//! (VmHWM: the flatline run, its demo server and its N demo clients).
//!
//! ```text
//! cargo bench --bench herd             # 200 and 1000 clients
//! cargo bench --bench herd -- 200      # one size
//! ```

use flatline::events::EventKind;
use flatline::expect::herd::{peak, spread};
use flatline::expect::scope::attribute;
use flatline::run::{run, RunOptions};
use flatline::scenario::{load_file, Reference};
use std::path::Path;
use std::time::{Duration, Instant};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn one(clients: usize, no_jitter: bool) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/thundering-herd.yaml");
    let mut sc = load_file(&path).expect("the bundled scenario").scenario;
    sc.clients = Some(clients);
    // The crash comes once every client is connected.
    let at: Reference = format!("open#{clients} + 1s").parse().expect("reference");
    sc.faults[0].at = Some(at);
    let opts = RunOptions {
        demo: true,
        demo_args: if no_jitter {
            vec!["--no-jitter".into()]
        } else {
            vec![]
        },
        ..RunOptions::default()
    };
    let t0 = Instant::now();
    let report = run(&sc, &opts, |_| {}, |_| {}).await.expect("run");
    let wall = t0.elapsed();
    // Peak and spread over the whole `for` window after the restart, measured
    // here from the log (an early failing verdict stops counting at once).
    let end = report
        .events
        .iter()
        .find(|e| matches!(&e.kind, EventKind::FaultEnd { fault, .. } if fault == "restarting"))
        .map(|e| e.t);
    let owner = attribute(&report.events);
    let (mut all, mut firsts) = (Vec::new(), std::collections::BTreeMap::new());
    if let Some(end) = end {
        for e in report.events.iter().filter(|e| e.t > end) {
            if let (EventKind::Accept { .. }, Some(n)) = (&e.kind, e.conn) {
                all.push(e.t);
                if let Some(c) = owner.get(&n) {
                    firsts.entry(*c).or_insert(e.t);
                }
            }
        }
    }
    let mut firsts: Vec<Duration> = firsts.into_values().collect();
    firsts.sort();
    let p = peak(&all, Duration::from_millis(100));
    let verdicts: Vec<String> = report
        .expectations
        .iter()
        .map(|v| format!("{} {}", v.name, if v.passed { "PASS" } else { "FAIL" }))
        .collect();
    println!(
        "clients {clients:>5} {:<11} wall {:>6.2} s  attempts after restart {:>5}  peak {:>4} in 100ms  first-attempt spread p10-p90 {:>5.2} s ({} clients)  VmHWM {:>7} KiB  [{}]",
        if no_jitter { "--no-jitter" } else { "good" },
        wall.as_secs_f64(),
        all.len(),
        p.count,
        spread(&firsts).unwrap_or_default().as_secs_f64(),
        firsts.len(),
        status_kib("VmHWM:"),
        verdicts.join(", ")
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![200, 1000]
    } else {
        sizes
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", l.trim());
    }
    println!("VmRSS before any run: {} KiB", status_kib("VmRSS:"));
    for n in sizes {
        rt.block_on(one(n, false));
        rt.block_on(one(n, true));
    }
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at end: {}", l.trim());
    }
}
