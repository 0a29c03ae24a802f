//! Scenario loading: good files parse, broken files give one readable line
//! naming file, line and column (checked by snapshots), and no input makes
//! the parser panic or hang.

use flatline::scenario::{
    load_file, parse_str, plan, ExpectKind, FaultKind, Loaded, ScenarioError, MAX_FILE_BYTES,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

fn snap(name: &str, text: &str) {
    insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!(format!("scenario_{name}"), text);
    });
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new("tests/fixtures").join(dir))
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

fn load_ok(path: &Path) -> Loaded {
    match load_file(path) {
        Ok(l) => l,
        Err(e) => panic!("{} should parse: {e}", path.display()),
    }
}

fn load_err(path: &str) -> ScenarioError {
    match load_file(Path::new(path)) {
        Ok(l) => panic!("{path} should not parse, got {:?}", l.scenario),
        Err(e) => e,
    }
}

/// One line, with `file:line:column`.
fn assert_one_line(e: &ScenarioError) {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    if let (Some(l), Some(c)) = (e.line(), e.column()) {
        assert!(msg.contains(&format!("{}:{l}:{c}", e.file())), "{msg}");
    }
}

#[test]
fn good_fixtures_parse() {
    let good = fixtures("good");
    assert!(!good.is_empty());
    for p in good {
        let l = load_ok(&p);
        assert!(l.warnings.is_empty(), "{}: {:?}", p.display(), l.warnings);
    }
}

#[test]
fn contract_example_has_its_values() {
    let l = load_ok(Path::new("tests/fixtures/good/contract-example.yaml"));
    let s = &l.scenario;
    assert_eq!(s.name, "silent-drop");
    assert_eq!(s.upstream.as_deref(), Some("ws://127.0.0.1:9001/feed"));
    assert_eq!(s.duration.0, std::time::Duration::from_secs(40));
    assert_eq!(s.seed, 7);
    assert_eq!(s.faults.len(), 1);
    assert!(matches!(s.faults[0].kind, FaultKind::Partition(_)));
    assert_eq!(s.fault_name(0), "outage");
    assert!(matches!(s.expect[1].kind, ExpectKind::Reconnects { .. }));
    assert_eq!(s.expect_name(1), "reconnects-2");
    snap("plan_contract_example", &plan(s));
}

/// Every broken fixture is refused with a one-line message; the message
/// itself is reviewed in `snapshots/scenario_bad_<case>.snap`.
#[test]
fn bad_fixtures_give_readable_errors() {
    let bad = fixtures("bad");
    assert!(bad.len() > 40);
    for p in bad {
        let path = p.to_string_lossy().replace('\\', "/");
        let e = load_err(&path);
        assert_one_line(&e);
        assert!(e.line().is_some(), "{path}: no position in `{e}`");
        let case = p.file_stem().and_then(|s| s.to_str()).expect("name");
        snap(&format!("bad_{case}"), &e.to_string());
    }
}

#[test]
fn positions_point_at_the_offending_node() {
    let e = load_err("tests/fixtures/bad/kind_typo.yaml");
    assert_eq!((e.line(), e.column()), (Some(6), Some(11)));
    assert_eq!(e.path(), Some("faults[0].kind"));
    let e = load_err("tests/fixtures/bad/unknown_reference.yaml");
    assert_eq!((e.line(), e.column()), (Some(10), Some(12)));
    let e = load_err("tests/fixtures/bad/field_typo.yaml");
    assert_eq!((e.line(), e.column()), (Some(7), Some(5)));
}

#[test]
fn ten_megabytes_are_refused_before_parsing() {
    let big = format!(
        "name: big\ndescription: x\nduration: 1s\n#{}\n",
        "x".repeat(10 << 20)
    );
    let e = parse_str(&big, "big.yaml").expect_err("too large");
    assert!(matches!(e, ScenarioError::TooLarge { .. }));
    snap("too_large", &e.to_string());

    let dir = std::env::temp_dir().join(format!("flatline-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("big.yaml");
    std::fs::write(&path, big.as_bytes()).expect("write");
    let e = load_file(&path).expect_err("too large");
    let _ = std::fs::remove_dir_all(&dir);
    match e {
        ScenarioError::TooLarge { size, .. } => assert!(size > MAX_FILE_BYTES),
        other => panic!("expected TooLarge, got {other}"),
    }
}

#[test]
fn missing_file_names_it() {
    let e = load_err("tests/fixtures/nope.yaml");
    assert!(matches!(e, ScenarioError::Io { .. }));
    assert!(e
        .to_string()
        .starts_with("cannot read tests/fixtures/nope.yaml: "));
}

#[test]
fn deep_nesting_is_an_error() {
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let src = format!(
            "name: deep\ndescription: x\nduration: 1s\nseed: {}1{}\n",
            open.repeat(5000),
            close.repeat(5000)
        );
        let e = parse_str(&src, "deep.yaml").expect_err("too deep");
        assert_one_line(&e);
        assert!(e.to_string().contains("nested too deeply"), "{e}");
    }
    // A megabyte of brackets: no stack overflow in the YAML parser either.
    let e = parse_str(&"[".repeat(1_000_000), "brackets.yaml").expect_err("too deep");
    assert_one_line(&e);
    let block: String = (0..300)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let e = parse_str(&block, "deep-block.yaml").expect_err("too deep");
    assert!(e.to_string().contains("nested too deeply"), "{e}");
    snap("deep_nesting", &e.to_string());
}

#[test]
fn alias_bomb_within_the_size_limit_is_refused() {
    // Many events make serde_yaml's own repetition limit generous; our node
    // count still stops it early.
    let mut src = String::from("name: bad\ndescription: x\nduration: 1s\npad: [");
    src.push_str(&"1, ".repeat(200_000));
    src.push_str("1]\na: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (prev, cur) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .windows(2)
        .map(|w| (w[0], w[1]))
    {
        let items = vec![format!("*{prev}"); 10].join(", ");
        src.push_str(&format!("{cur}: &{cur} [{items}]\n"));
    }
    assert!((src.len() as u64) < MAX_FILE_BYTES);
    let e = parse_str(&src, "bomb.yaml").expect_err("bomb");
    assert!(e.to_string().contains("holds more than"), "{e}");
}

#[test]
fn warnings_for_faults_beyond_the_run() {
    let src = "name: w\ndescription: x\nduration: 10s\nfaults:\n  - name: late\n    kind: partition\n    at: 8s\n    duration: 5s\n  - kind: delay\n    latency: 1s\n    at: 20s\n  - kind: reset\n    toward: both\n    at: forever.end\n  - name: forever\n    kind: partition\n    at: 1s\n";
    let l = parse_str(src, "w.yaml").expect("valid");
    assert_eq!(l.warnings.len(), 3, "{:?}", l.warnings);
    snap("warnings_beyond_the_run", &l.warnings.join("\n"));
}

#[test]
fn merge_keys_share_settings() {
    let l = load_ok(Path::new("tests/fixtures/good/merge-keys.yaml"));
    let second = &l.scenario.faults[1];
    assert_eq!(second.name.as_deref(), Some("second-blip"));
    assert_eq!(second.duration, l.scenario.faults[0].duration);
    match &second.kind {
        FaultKind::Partition(p) => {
            assert_eq!(p.direction, flatline::scenario::Directions::ToClient)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_numbers_are_taken_as_text() {
    let src = "name: h\ndescription: x\nduration: 10s\nfaults:\n  - kind: refuse\n    how: http\n    status: 503\n    headers:\n      Retry-After: 1\n";
    let l = parse_str(src, "h.yaml").expect("valid");
    match &l.scenario.faults[0].kind {
        FaultKind::Refuse(r) => assert_eq!(r.headers["Retry-After"], "1"),
        other => panic!("{other:?}"),
    }
}

/// Every ```yaml block in docs/scenarios.md is a scenario that parses, with
/// no warnings.
#[test]
fn docs_examples_parse() {
    let doc = std::fs::read_to_string("docs/scenarios.md").expect("docs/scenarios.md");
    let mut blocks = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => cur = Some((i + 1, String::new())),
            (Some(_), l) if l.starts_with("```") => blocks.extend(cur.take()),
            (Some((_, b)), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(blocks.len() >= 20, "only {} yaml blocks", blocks.len());
    let mut plans = String::new();
    for (line, block) in &blocks {
        let name = format!("docs/scenarios.md (block at line {line})");
        let l = parse_str(block, &name).unwrap_or_else(|e| panic!("{e}"));
        assert!(l.warnings.is_empty(), "{name}: {:?}", l.warnings);
        plans.push_str(&plan(&l.scenario));
    }
    snap("plan_docs_examples", &plans);
}

const VALID: &str = "name: fuzz
description: >
  A valid scenario to mutate.
duration: 40s
seed: 7
faults:
  - name: outage
    kind: partition
    at: open#1 + 3s
    duration: 15s
    connections: [1, 2]
  - kind: drop
    match: {any: [{opcode: ping}, {opcode: text, regex: '^ping$'}]}
    probability: 0.5
  - kind: close
    toward: both
    code: 4000
    at: outage.end
expect:
  - kind: detects
    after: outage
    within: 12s
  - kind: heartbeat
    match: {opcode: ping}
    every: 5s
    tolerance: 1s
";

/// Thousands of seeded random inputs: each gives Ok or a one-line error.
#[test]
fn random_inputs_never_panic() {
    assert!(parse_str(VALID, "fuzz.yaml").is_ok());
    let mut rng = ChaCha8Rng::seed_from_u64(0x5ce_a210);
    let alphabet: Vec<char> =
        " \t\n:-[]{}#&*!|>'\",.?%@`0123456789abcdefgkmnoprstuxyz_#+\u{0}\u{7f}é"
            .chars()
            .collect();
    let mut ok = 0;
    for round in 0..3000 {
        let src: String = if round % 3 == 0 {
            // Random bytes, as (lossy) text.
            let n = rng.gen_range(0..200);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            // Random edits of the valid scenario.
            let mut chars: Vec<char> = VALID.chars().collect();
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..=chars.len());
                match rng.gen_range(0..4) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => chars[at] = alphabet[rng.gen_range(0..alphabet.len())],
                    2 => chars.insert(at, alphabet[rng.gen_range(0..alphabet.len())]),
                    _ => {
                        // Duplicate a slice (repeated keys, nesting, anchors).
                        let end = (at + rng.gen_range(1..40)).min(chars.len());
                        let piece: Vec<char> = chars[at..end].to_vec();
                        let to = rng.gen_range(0..=chars.len());
                        chars.splice(to..to, piece);
                    }
                }
            }
            chars.into_iter().collect()
        };
        match parse_str(&src, "fuzz.yaml") {
            Ok(_) => ok += 1,
            Err(e) => assert_one_line(&e),
        }
    }
    // The mutations must not all be rejected (else the test checks little).
    assert!(ok > 20, "only {ok} random edits parsed");
}
