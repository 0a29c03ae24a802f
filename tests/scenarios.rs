//! The scenario library against the built-in demo client: every scenario
//! passes with the good client, and each broken variant fails on the
//! expectation it exists to catch (tests/scenario_matrix.txt). All runs go in
//! parallel on real loopback sockets; each has its own relay and demo server.

use flatline::report::Report;
use flatline::run::{run, RunOptions};
use flatline::scenario::load_file;
use std::path::Path;

struct Case {
    scenario: String,
    args: Vec<String>,
    must_fail: Vec<String>,
}

fn matrix() -> Vec<Case> {
    let text = std::fs::read_to_string("tests/scenario_matrix.txt").unwrap();
    let mut cases = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cols.len(), 3, "bad matrix line: {line}");
        if seen.insert(cols[0].to_string()) {
            cases.push(Case {
                scenario: cols[0].into(),
                args: vec![],
                must_fail: vec![],
            });
        }
        cases.push(Case {
            scenario: cols[0].into(),
            args: cols[1].split_whitespace().map(String::from).collect(),
            must_fail: cols[2].split(',').map(|s| s.trim().to_string()).collect(),
        });
    }
    cases
}

async fn run_case(scenario: String, args: Vec<String>) -> Report {
    let path = Path::new("scenarios").join(format!("{scenario}.yaml"));
    let sc = load_file(&path).unwrap_or_else(|e| panic!("{e}")).scenario;
    let opts = RunOptions {
        demo: true,
        demo_args: args,
        ..RunOptions::default()
    };
    run(&sc, &opts, |_| {}, |_| {}).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_library_against_the_demo_client() {
    let cases = matrix();
    let handles: Vec<_> = cases
        .iter()
        .map(|c| tokio::spawn(run_case(c.scenario.clone(), c.args.clone())))
        .collect();
    let mut lines = Vec::new();
    let mut bad = 0;
    for (c, h) in cases.iter().zip(handles) {
        let r = h.await.unwrap();
        let failed: Vec<&str> = r
            .expectations
            .iter()
            .filter(|v| !v.passed)
            .map(|v| v.name.as_str())
            .collect();
        let ok = if c.args.is_empty() {
            r.passed
        } else {
            c.must_fail.iter().all(|m| failed.contains(&m.as_str()))
        };
        let variant = if c.args.is_empty() {
            "good".to_string()
        } else {
            c.args.join(" ")
        };
        let expected = if c.args.is_empty() {
            "pass".to_string()
        } else {
            format!("fail {}", c.must_fail.join(","))
        };
        let got = if failed.is_empty() {
            "pass".to_string()
        } else {
            format!("fail {}", failed.join(","))
        };
        lines.push(format!(
            "{} {:<18} {:<26} expected {:<34} got {}",
            if ok { "ok  " } else { "BAD " },
            c.scenario,
            variant,
            expected,
            got
        ));
        if !ok {
            bad += 1;
            for v in &r.expectations {
                lines.push(format!(
                    "        {} {}: {}",
                    if v.passed { "pass" } else { "FAIL" },
                    v.name,
                    v.detail
                ));
            }
            for cmd in &r.commands {
                let tail: Vec<&str> = cmd.output_tail.lines().rev().take(12).collect();
                for l in tail.into_iter().rev() {
                    lines.push(format!("        | {l}"));
                }
            }
        }
    }
    println!("{}", lines.join("\n"));
    assert_eq!(bad, 0, "scenario matrix mismatches:\n{}", lines.join("\n"));
}
