//! Every file in the scenario library deserialises into the scenario model,
//! is consistent with itself (names, references, demo-client arguments), and
//! appears in `tests/scenario_matrix.txt` with a broken demo-client variant
//! whose arguments parse and whose failing expectations exist.

use flatline::peers::DemoClientOpts;
use flatline::scenario::{RefBase, Reference, Scenario};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn library() -> BTreeMap<String, (PathBuf, Scenario)> {
    let dir = root().join("scenarios");
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(&dir).expect("scenarios/ exists");
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let scenario: Scenario =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        out.insert(stem, (path, scenario));
    }
    out
}

/// One matrix row: scenario, extra demo-client args, expectations that fail.
struct Row {
    line: usize,
    scenario: String,
    args: Vec<String>,
    failing: Vec<String>,
}

fn matrix() -> Vec<Row> {
    let path = root().join("tests/scenario_matrix.txt");
    let text = std::fs::read_to_string(&path).expect("tests/scenario_matrix.txt exists");
    let mut rows = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(
            cols.len(),
            3,
            "scenario_matrix.txt:{}: three columns",
            i + 1
        );
        rows.push(Row {
            line: i + 1,
            scenario: cols[0].to_owned(),
            args: cols[1].split_whitespace().map(str::to_owned).collect(),
            failing: cols[2]
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        });
    }
    rows
}

fn check_match(at: &Path, m: &flatline::scenario::Match) {
    if let Some(re) = &m.regex {
        if let Err(e) = regex::Regex::new(re) {
            panic!("{}: bad regex `{re}`: {e}", at.display());
        }
    }
    for alt in m.any.iter().flatten() {
        check_match(at, alt);
    }
}

fn check_reference(at: &Path, what: &str, r: &Reference, faults: &BTreeSet<String>) {
    if let RefBase::FaultStart(name) | RefBase::FaultEnd(name) = &r.base {
        assert!(
            faults.contains(name),
            "{}: {what} refers to unknown fault `{name}`",
            at.display()
        );
    }
}

#[test]
fn every_scenario_parses_and_is_self_consistent() {
    let lib = library();
    assert!(lib.len() >= 13, "the library has {} scenarios", lib.len());
    for (stem, (path, sc)) in &lib {
        assert_eq!(&sc.name, stem, "{}: name matches file name", path.display());
        assert!(
            sc.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{}: name is [a-z0-9-]+",
            path.display()
        );
        assert!(
            sc.description.split_whitespace().count() >= 20,
            "{}: the description says what it simulates and what a good client does",
            path.display()
        );
        assert!(
            !sc.expect.is_empty(),
            "{}: has expectations",
            path.display()
        );
        assert!(
            sc.upstream.is_none(),
            "{}: runs against the demo server",
            path.display()
        );

        let faults: BTreeSet<String> = (0..sc.faults.len()).map(|i| sc.fault_name(i)).collect();
        assert_eq!(
            faults.len(),
            sc.faults.len(),
            "{}: fault names unique",
            path.display()
        );
        for f in &sc.faults {
            use flatline::scenario::FaultKind;
            if let FaultKind::Drop(d) = &f.kind {
                check_match(path, &d.matches);
            }
            if let FaultKind::Corrupt(c) = &f.kind {
                check_match(path, &c.matches);
            }
            if let Some(at) = &f.at {
                check_reference(path, "a fault's `at`", at, &faults);
            }
            assert!(
                !(f.duration.is_some() && f.kind.is_instant()),
                "{}: instant faults take no duration",
                path.display()
            );
        }
        let names: BTreeSet<String> = (0..sc.expect.len()).map(|i| sc.expect_name(i)).collect();
        assert_eq!(
            names.len(),
            sc.expect.len(),
            "{}: expectation names unique",
            path.display()
        );
        for e in &sc.expect {
            use flatline::scenario::ExpectKind::*;
            let (refs, during): (Vec<&Reference>, Option<&String>) = match &e.kind {
                Detects(k) => (vec![&k.after], None),
                Herd(k) => (vec![&k.after], None),
                Reconnects(k) => (vec![&k.after], None),
                NoReconnect(k) => (vec![&k.after], None),
                Sends(k) => {
                    check_match(path, &k.matches);
                    (vec![&k.after], None)
                }
                StaysConnected(k) => (k.after.iter().collect(), k.during.as_ref()),
                Backoff(k) => (k.after.iter().collect(), k.during.as_ref()),
                Heartbeat(k) => {
                    check_match(path, &k.matches);
                    (k.after.iter().collect(), None)
                }
                ClosesWith(_) => (vec![], None),
            };
            for r in refs {
                check_reference(path, "an expectation's `after`", r, &faults);
            }
            if let Some(d) = during {
                assert!(
                    faults.contains(d),
                    "{}: `during: {d}` is no fault",
                    path.display()
                );
            }
        }
        DemoClientOpts::from_args(&sc.demo_client)
            .unwrap_or_else(|e| panic!("{}: demo_client: {e}", path.display()));
    }
}

#[test]
fn every_scenario_has_a_broken_variant_in_the_matrix() {
    let lib = library();
    let rows = matrix();
    let mut covered = BTreeSet::new();
    for row in &rows {
        let at = format!("scenario_matrix.txt:{}", row.line);
        let (_, sc) = lib
            .get(&row.scenario)
            .unwrap_or_else(|| panic!("{at}: no scenarios/{}.yaml", row.scenario));
        assert!(
            !row.args.is_empty(),
            "{at}: a broken variant needs arguments"
        );
        assert!(
            !row.failing.is_empty(),
            "{at}: name the expectations that fail"
        );
        let names: BTreeSet<String> = (0..sc.expect.len()).map(|i| sc.expect_name(i)).collect();
        for f in &row.failing {
            assert!(
                names.contains(f),
                "{at}: `{}` has no expectation `{f}`",
                row.scenario
            );
        }
        let all: Vec<String> = sc.demo_client.iter().chain(&row.args).cloned().collect();
        let broken = DemoClientOpts::from_args(&all).unwrap_or_else(|e| panic!("{at}: {e}"));
        let good = DemoClientOpts::from_args(&sc.demo_client).unwrap();
        assert_ne!(
            broken, good,
            "{at}: the variant must differ from the good client"
        );
        covered.insert(row.scenario.clone());
    }
    let missing: Vec<&String> = lib.keys().filter(|k| !covered.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "scenarios without a broken variant: {missing:?}"
    );
}

#[test]
fn readme_lists_every_scenario() {
    let readme = std::fs::read_to_string(root().join("scenarios/README.md")).unwrap();
    for name in library().keys() {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README misses `{name}`"
        );
    }
}
