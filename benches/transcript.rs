//! Transcript stability (issue #6: "the same scenario against the reference
//! client run 20 times gives an identical transcript every time"). Runs
//! library scenarios in-process with the built-in demo client and demo server
//! (`flatline run --demo`), `--runs` times each (default 20), `--jobs` at a
//! time (default 4; runs are mostly idle waiting, but a loaded machine shifts
//! times, which is part of what is measured), and compares
//! `report.transcript().to_text()` across runs. Prints `N/20 identical` per
//! scenario (identical to the most common transcript) and the diff of each
//! odd one against it.
//!
//! ```text
//! cargo bench --bench transcript
//! cargo bench --bench transcript -- --runs 5 --jobs 5 scenarios/silent-drop.yaml
//! ```

use flatline::report::transcript::diff;
use flatline::run::{run, RunOptions};
use flatline::scenario::load_file;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const DEFAULT: [&str; 3] = [
    "scenarios/silent-drop.yaml",
    "scenarios/server-restart.yaml",
    "scenarios/resubscribe.yaml",
];

fn main() -> Res<()> {
    let mut runs = 20usize;
    let mut jobs = 4usize;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--jobs" => {
                jobs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(jobs)
                    .max(1)
            }
            "--quick" => runs = 5,
            s if s.ends_with(".yaml") => files.push(PathBuf::from(s)),
            _ => {} // `--bench` from cargo
        }
    }
    if files.is_empty() {
        files = DEFAULT.iter().map(PathBuf::from).collect();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("flatline transcript stability: {runs} runs per scenario, {jobs} at a time, demo client + demo server");
    let mut all_ok = true;
    for f in &files {
        let sc = load_file(f).map_err(|e| e.to_string())?.scenario;
        let started = Instant::now();
        let mut texts: Vec<(String, bool)> = Vec::new();
        let mut left = runs;
        while left > 0 {
            let n = left.min(jobs);
            left -= n;
            let batch: Vec<_> = (0..n)
                .map(|_| {
                    let sc = sc.clone();
                    rt.spawn(async move {
                        let opts = RunOptions {
                            demo: true,
                            ..RunOptions::default()
                        };
                        run(&sc, &opts, |_: &str| {}, |_| {}).await
                    })
                })
                .collect();
            for h in batch {
                let report = rt.block_on(h)??;
                texts.push((report.transcript().to_text(), report.passed));
            }
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (t, _) in &texts {
            *counts.entry(t.as_str()).or_default() += 1;
        }
        let (common, n) = counts
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(t, n)| (*t, *n))
            .ok_or("no runs")?;
        let passed = texts.iter().filter(|(_, p)| *p).count();
        println!(
            "{}: {n}/{runs} identical ({} distinct transcripts; {passed}/{runs} runs passed; {:.1} s)",
            f.display(),
            counts.len(),
            started.elapsed().as_secs_f64()
        );
        if n != runs {
            all_ok = false;
            for (i, (t, _)) in texts.iter().enumerate() {
                if t != common {
                    println!("--- run {} differs from the most common transcript:", i + 1);
                    print!("{}", diff(common, t));
                }
            }
            if std::env::var_os("TRANSCRIPT_SHOW").is_some() {
                println!("--- most common transcript:\n{common}");
            }
        }
    }
    if !all_ok {
        println!("NOT STABLE (see the diffs above)");
    }
    Ok(())
}
