//! The pinned latency phase repeated in fresh processes, for differences
//! smaller than one run resolves.
//!
//! One latency phase measures each path in 4 interleaved rounds inside the
//! same processes. Between runs its p50s move by ±0.1–0.2 µs on a shared VM
//! (where the processes' memory lands, what else runs), which is the size
//! of the difference between flatline and the tokio relay at 64 B. So the
//! phase is re-run `n` times, each time with new relay processes, and each
//! round's difference flatline − peer is taken within the round (the paths
//! of one round share its conditions). The report gives the median of those
//! differences with its quartiles, how many rounds flatline was ahead, and
//! the median ratio of p99s.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// (path, size) → (p50, p99) of one round.
type Round = HashMap<(String, usize), (f64, f64)>;

/// Run `exe --phase latency --pin 0 --quick` `n` times; the rounds that
/// succeeded (a failed round is reported and skipped).
pub fn run(exe: &Path, n: usize) -> Res<Vec<Round>> {
    let mut rounds = Vec::new();
    for i in 0..n {
        let out = Command::new(exe)
            .args(["--phase", "latency", "--pin", "0", "--quick"])
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            eprintln!("latency round {}: the phase failed ({})", i + 1, out.status);
            continue;
        }
        rounds.push(parse(&String::from_utf8_lossy(&out.stdout)));
    }
    Ok(rounds)
}

/// `LAT <path> <size> <p50> <p99> <cpu>` lines.
fn parse(out: &str) -> Round {
    let mut r = Round::new();
    for l in out.lines() {
        let p: Vec<&str> = l.split_whitespace().collect();
        if let [_lat @ "LAT", path, size, p50, p99, _cpu] = p[..] {
            if let (Ok(size), Ok(p50), Ok(p99)) = (size.parse(), p50.parse(), p99.parse()) {
                r.insert((path.to_string(), size), (p50, p99));
            }
        }
    }
    r
}

/// Value at quantile `q` of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// `x0.994`, or `x2.3e-4` for a ratio too small for three decimals.
fn ratio(r: f64) -> String {
    if r >= 0.01 {
        format!("x{r:.3}")
    } else {
        format!("x{r:.1e}")
    }
}

/// Print flatline against each peer, per size.
pub fn report(rounds: &[Round]) {
    let n = rounds.len();
    println!(
        "\nPinned round trips over {n} rounds, each in fresh processes (flatline minus peer, \
         taken within each round; us):"
    );
    println!(
        "  {:<8} {:>8} {:>11} {:>23} {:>14} {:>10}",
        "size", "peer", "p50 gap", "quartiles", "flatline ahead", "p99 ratio"
    );
    for size in [64usize, 16 * 1024] {
        for peer in ["tokio", "noxious"] {
            let key = |p: &str| (p.to_string(), size);
            let pairs: Vec<((f64, f64), (f64, f64))> = rounds
                .iter()
                .filter_map(|r| Some((*r.get(&key("flatline"))?, *r.get(&key(peer))?)))
                .collect();
            if pairs.is_empty() {
                continue;
            }
            let mut gaps: Vec<f64> = pairs.iter().map(|(f, p)| f.0 - p.0).collect();
            let mut ratios: Vec<f64> = pairs.iter().map(|(f, p)| f.1 / p.1).collect();
            gaps.sort_by(f64::total_cmp);
            ratios.sort_by(f64::total_cmp);
            let ahead = gaps.iter().filter(|g| **g < 0.0).count();
            println!(
                "  {:<8} {:>8} {:>+11.2} {:>23} {:>14} {:>10}",
                if size == 64 { "64 B" } else { "16 KiB" },
                peer,
                quantile(&gaps, 0.5),
                format!(
                    "[{:+.2}, {:+.2}]",
                    quantile(&gaps, 0.25),
                    quantile(&gaps, 0.75)
                ),
                format!("{ahead} of {}", gaps.len()),
                ratio(quantile(&ratios, 0.5)),
            );
        }
    }
}
