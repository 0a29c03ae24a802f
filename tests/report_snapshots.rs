//! Snapshot and property tests of the report forms, from a hand-written
//! silent-drop log (see `report_support.rs`).

#[path = "report_support.rs"]
mod support;

use flatline::events::{EventKind, Opcode};
use flatline::report::{diff, junit, verdict_table, LivePrinter, Report};
use support::{silent_drop_report, Variation};

macro_rules! snap {
    ($($body:tt)*) => {
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
            $($body)*
        })
    };
}

fn base() -> Report {
    silent_drop_report(&Variation::default())
}

#[test]
fn report_json_snapshot() {
    let json = base().to_json();
    snap!({ insta::assert_snapshot!("report_json", json) });
}

#[test]
fn report_json_round_trip() {
    let r = base();
    let json = r.to_json();
    let back = Report::from_json(&json).expect("own JSON parses");
    assert_eq!(back, r);
    assert_eq!(back.to_json(), json);
    let jittery = silent_drop_report(&Variation::jittery());
    assert_eq!(
        Report::from_json(&jittery.to_json()).expect("parses"),
        jittery
    );
}

#[test]
fn report_json_has_contract_fields() {
    let v: serde_json::Value = serde_json::from_str(&base().to_json()).expect("valid JSON");
    for key in [
        "scenario",
        "seed",
        "passed",
        "duration_ms",
        "expectations",
        "events",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["scenario_spec"]["name"], "silent-drop");
    assert_eq!(v["expectations"][0]["observed_ms"], 3290.0);
    assert!(v["expectations"][4].get("observed_ms").is_none());
    assert_eq!(v["events"][1]["kind"], "accept");
    assert_eq!(v["events"][1]["conn"], 1);
}

#[test]
fn report_from_json_names_the_position() {
    let err = Report::from_json("{\n  \"scenario\": 3\n}").expect_err("wrong type");
    let msg = err.to_string();
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn report_transcript_text_and_yaml() {
    let t = base().transcript();
    let text = t.to_text();
    assert!(!text.contains("127.0.0.1"), "addresses leak:\n{text}");
    assert!(!text.contains("40122"), "ports leak:\n{text}");
    snap!({
        insta::assert_snapshot!("report_transcript_text", text);
        insta::assert_yaml_snapshot!("report_transcript_yaml", t);
    });
}

#[test]
fn report_transcript_ordering_only() {
    let r = base();
    let t = r.transcript_with(None);
    let text = t.to_text();
    assert!(text.contains("times: ordering only"));
    assert!(!text.contains("3.0s"), "{text}");
    // Same lines as with times, minus the times.
    assert_eq!(t.timeline.len(), r.transcript().timeline.len());
}

#[test]
fn report_transcript_stable_under_jitter() {
    let a = base();
    let b = silent_drop_report(&Variation::jittery());
    // The logs really differ: times, ports, one heartbeat more.
    assert_ne!(a.events.len(), b.events.len());
    assert_ne!(a.events[1], b.events[1]);
    let (ta, tb) = (a.transcript(), b.transcript());
    assert_eq!(
        ta.to_text(),
        tb.to_text(),
        "transcripts differ:\n{}",
        diff(&ta.to_text(), &tb.to_text())
    );
    assert_eq!(ta, tb);
    // And at a finer resolution the jitter does show (the test can fail).
    let fine = std::time::Duration::from_millis(1);
    assert_ne!(a.transcript_with(Some(fine)), b.transcript_with(Some(fine)));
}

#[test]
fn report_transcript_shows_behaviour_changes() {
    // A client that never notices: no close frame, no FIN on #1.
    let a = base();
    let mut b = base();
    b.events.retain(|e| {
        !(e.conn == Some(1)
            && matches!(&e.kind, EventKind::Frame(f) if f.opcode == Opcode::Close && f.dir == flatline::events::Direction::ToServer)
            || e.conn == Some(1) && matches!(e.kind, EventKind::Fin { from: flatline::events::Side::Client }))
    });
    let (ta, tb) = (a.transcript().to_text(), b.transcript().to_text());
    assert_ne!(ta, tb);
    let d = diff(&ta, &tb);
    snap!({ insta::assert_snapshot!("report_transcript_diff", d) });
}

#[test]
fn report_terminal_output() {
    let r = base();
    let mut p = LivePrinter::new(Vec::new());
    for e in &r.events {
        p.on_event(e);
    }
    p.finish(r.duration);
    let out = String::from_utf8(p.into_inner()).expect("utf-8");
    // Never one line per frame: fewer lines than frames.
    let frames = r
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Frame(_)))
        .count();
    assert!(out.lines().count() < frames, "{out}");
    snap!({ insta::assert_snapshot!("report_terminal", out) });
}

#[test]
fn report_verdict_table() {
    let reports = [base()];
    let plain = verdict_table(&reports, false);
    assert!(!plain.contains('\x1b'));
    let coloured = verdict_table(&reports, true);
    assert!(coloured.contains("\x1b[32mPASS"));
    assert!(coloured.contains("\x1b[31mFAIL"));
    snap!({ insta::assert_snapshot!("report_verdict_table", plain) });
}

#[test]
fn report_junit() {
    let mut second = base();
    second.scenario = "a<b & \"c\"".into();
    second.expectations[0].detail = "odd <chars> & 'quotes' \u{1}".into();
    second.expectations[0].passed = false;
    let xml = junit(&[base(), second]);
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 2);
    assert_eq!(suites[0].attribute("name"), Some("silent-drop"));
    assert_eq!(suites[0].attribute("tests"), Some("5"));
    assert_eq!(suites[0].attribute("failures"), Some("1"));
    assert_eq!(suites[1].attribute("name"), Some("a<b & \"c\""));
    assert_eq!(suites[1].attribute("failures"), Some("2"));
    let cases: Vec<_> = suites[0]
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 5);
    assert_eq!(
        cases[0].attribute("name"),
        Some("client notices the dead link")
    );
    assert_eq!(cases[0].attribute("classname"), Some("silent-drop"));
    assert_eq!(cases[0].attribute("time"), Some("3.290"));
    let failed = cases[4];
    let failure = failed
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("failure element");
    assert!(failure.attribute("message").unwrap_or("").contains("4000"));
    assert!(failure.text().unwrap_or("").contains("expected 1000"));
    let odd = suites[1]
        .children()
        .find(|n| n.has_tag_name("testcase"))
        .and_then(|c| c.children().find(|n| n.has_tag_name("failure")))
        .expect("failure");
    assert!(odd
        .text()
        .unwrap_or("")
        .starts_with("odd <chars> & 'quotes'"));
    snap!({ insta::assert_snapshot!("report_junit", junit(&[base()])) });
}
