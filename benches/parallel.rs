//! `flatline run -j N` on the whole bundled library (`scenarios/`, built-in
//! demo client): the wall time of the call at `-j 1` and `-j 4`, over 3 runs
//! each, and whether every run gave the same verdict on every expectation
//! (read from `--junit`). The machine's load average is printed before and
//! after, since the times depend on it.
//!
//! ```text
//! cargo bench --bench parallel                    # -j 1 and -j 4, 3 runs each
//! cargo bench --bench parallel -- --rounds 1 --jobs 1,2,4
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// (scenario, expectation) → failed, from a JUnit file.
type Verdicts = BTreeMap<(String, String), bool>;

fn junit(path: &Path) -> Verdicts {
    let xml = std::fs::read_to_string(path).unwrap_or_default();
    let Ok(doc) = roxmltree::Document::parse(&xml) else {
        return Verdicts::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            (
                (
                    n.attribute("classname").unwrap_or("").to_string(),
                    n.attribute("name").unwrap_or("").to_string(),
                ),
                n.children().any(|c| c.has_tag_name("failure")),
            )
        })
        .collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let rounds: usize = arg("--rounds").and_then(|r| r.parse().ok()).unwrap_or(3);
    let jobs: Vec<u32> = arg("--jobs")
        .map(|j| j.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 4]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-parallel");
    let _ = std::fs::create_dir_all(&out);
    println!("load average at start: {}", loadavg());
    let mut all: Vec<(u32, usize, f64, i32, Verdicts)> = Vec::new();
    for round in 0..rounds {
        for &j in &jobs {
            let xml = out.join(format!("junit-j{j}-r{round}.xml"));
            let t0 = Instant::now();
            let status = Command::new(env!("CARGO_BIN_EXE_flatline"))
                .current_dir(root)
                .args(["run", "scenarios", "--demo", "-q", "-j", &j.to_string()])
                .arg("--junit")
                .arg(&xml)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("flatline runs");
            let wall = t0.elapsed().as_secs_f64();
            let v = junit(&xml);
            let failed = v.values().filter(|f| **f).count();
            println!(
                "-j {j}  round {}  wall {wall:>7.1} s  exit {}  {} expectations, {failed} failed  (load {})",
                round + 1,
                status.code().unwrap_or(-1),
                v.len(),
                loadavg()
            );
            all.push((j, round, wall, status.code().unwrap_or(-1), v));
        }
    }
    for &j in &jobs {
        let w: Vec<f64> = all.iter().filter(|r| r.0 == j).map(|r| r.2).collect();
        let mean = w.iter().sum::<f64>() / w.len().max(1) as f64;
        let min = w.iter().cloned().fold(f64::INFINITY, f64::min);
        println!(
            "-j {j}: mean {mean:.1} s, best {min:.1} s over {} runs",
            w.len()
        );
    }
    // Agreement: every run against the first.
    let first = &all[0].4;
    let mut disagreements = 0;
    for (j, round, _, _, v) in &all[1..] {
        for (k, failed) in v {
            if first.get(k) != Some(failed) {
                disagreements += 1;
                println!(
                    "  disagrees: -j {j} round {}: {}/{} {}",
                    round + 1,
                    k.0,
                    k.1,
                    if *failed { "FAIL" } else { "PASS" }
                );
            }
        }
        if v.len() != first.len() {
            disagreements += 1;
            println!(
                "  -j {j} round {}: {} expectations, not {}",
                round + 1,
                v.len(),
                first.len()
            );
        }
    }
    println!(
        "verdicts: {} runs, {} expectations each, {disagreements} disagreement(s) with the first run",
        all.len(),
        first.len()
    );
    println!("load average at end: {}", loadavg());
}
