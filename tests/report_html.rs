//! The HTML report: self-contained, escaped, bounded in size, and (when
//! Chromium is installed) rendered to a PNG for a person to look at.

#[path = "report_support.rs"]
mod support;

use flatline::events::{Direction, Event, EventKind, FrameInfo, Opcode};
use flatline::report::html;
use std::time::Duration;
use support::{silent_drop_report, Variation};

#[test]
fn report_html_is_self_contained() {
    let r = silent_drop_report(&Variation::default());
    let page = html(&r, None);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg"));
    for bad in ["<script", "http://", "https://", "<link", "@import", "url("] {
        let hits: Vec<_> = page.match_indices(bad).collect();
        // The SVG namespace is the only URL allowed.
        let allowed = page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
        if bad == "http://" {
            assert_eq!(hits.len(), allowed, "unexpected {bad}");
        } else {
            assert!(hits.is_empty(), "page contains {bad}");
        }
    }
    // Fault window labelled, deadlines drawn with verdicts, verdict table, folded events.
    assert!(page.contains(">outage (partition)</text>"));
    assert!(page.contains("✔ client notices the dead link (detects)"));
    assert!(page.contains("stroke-dasharray=\"6 4\""));
    assert!(page.contains("<td class=\"fail\">FAIL</td>"));
    assert!(page.contains("<details class=\"events\">"));
}

#[test]
fn report_html_escapes() {
    let mut r = silent_drop_report(&Variation::default());
    r.scenario = "<img src=x onerror=alert(1)>".into();
    r.expectations[0].detail = "a </td><script>x</script>".into();
    r.warnings.push("<b>bold</b> & co".into());
    let page = html(&r, None);
    assert!(!page.contains("<img"));
    assert!(!page.contains("<script"));
    assert!(page.contains("&lt;b&gt;bold&lt;/b&gt; &amp; co"));
}

/// The silent-drop run plus 40k frames on #1, with the detection failed.
fn dense_failing_report() -> flatline::report::Report {
    let mut r = silent_drop_report(&Variation::default());
    r.expectations[0].passed = false;
    r.expectations[0].detail = "client did not give up #1 within 12s".into();
    r.passed = false;
    let base = r.events.clone();
    let mut events: Vec<Event> = Vec::new();
    // 40k frames on #1 before the outage: one every 75 microseconds.
    for i in 0..40_000u64 {
        let dir = if i % 2 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        events.push(Event {
            t: Duration::from_millis(200) + Duration::from_micros(i * 70),
            conn: Some(1),
            kind: EventKind::Frame(FrameInfo {
                dir,
                opcode: if i % 3 == 0 {
                    Opcode::Binary
                } else {
                    Opcode::Text
                },
                fin: true,
                rsv: 0,
                masked: dir == Direction::ToServer,
                len: 10,
                preview: String::new(),
                close_code: None,
                close_reason: None,
                dropped: false,
            }),
        });
    }
    let mut all = base;
    all.extend(events);
    all.sort_by_key(|e| e.t);
    r.events = all;
    r
}

#[test]
fn report_html_many_frames_stay_small() {
    let page = html(&dense_failing_report(), None);
    let svg_start = page.find("<svg").expect("svg");
    let svg_end = page.find("</svg>").expect("svg end");
    let svg_len = svg_end - svg_start;
    assert!(svg_len < 200_000, "SVG is {svg_len} bytes");
    // The folded event list is capped too (the JSON report has every event).
    assert!(page.len() < 2_000_000, "page is {} bytes", page.len());
    assert!(page.contains("more events in the JSON report"));
}

/// Render the page with headless Chromium when it is installed, and keep the
/// PNG in target/ for a person to look at.
#[test]
fn report_html_renders_in_chromium() {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        eprintln!("skipped: /usr/bin/chromium is not installed");
        return;
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report_html");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let pages = [
        (
            "silent-drop",
            html(&silent_drop_report(&Variation::default()), None),
        ),
        ("dense-failing", html(&dense_failing_report(), None)),
    ];
    for (name, content) in pages {
        let page = dir.join(format!("{name}.html"));
        let png = dir.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&png);
        std::fs::write(&page, content).expect("write html");
        let profile = dir.join(format!("profile-{name}"));
        let status = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--screenshot={}", png.display()))
            .arg("--window-size=1400,900")
            .arg(format!("file://{}", page.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("chromium runs");
        assert!(status.success(), "chromium failed on {name}: {status}");
        let meta = std::fs::metadata(&png).expect("screenshot written");
        assert!(
            meta.len() > 10_000,
            "screenshot of {name} is suspiciously small"
        );
        eprintln!("screenshot: {}", png.display());
    }
}
