//! JUnit XML (`--junit`): one `testsuite` per scenario, one `testcase` per
//! expectation, a `failure` carrying the verdict's detail.

use super::{xml_escape, Report};

/// JUnit XML for a set of runs. `time` is in seconds: the run's duration for a
/// suite, the measured value (or 0) for a test case.
pub fn junit(reports: &[Report]) -> String {
    let tests: usize = reports.iter().map(|r| r.expectations.len()).sum();
    let failures: usize = reports
        .iter()
        .map(|r| r.expectations.iter().filter(|v| !v.passed).count())
        .sum();
    let total: f64 = reports.iter().map(|r| r.duration.as_secs_f64()).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"flatline\" tests=\"{tests}\" failures=\"{failures}\" time=\"{total:.3}\">\n"
    ));
    for r in reports {
        let name = xml_escape(&r.scenario);
        let failed = r.expectations.iter().filter(|v| !v.passed).count();
        out.push_str(&format!(
            "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\">\n",
            r.expectations.len(),
            r.duration.as_secs_f64()
        ));
        out.push_str("    <properties>\n");
        out.push_str(&format!(
            "      <property name=\"seed\" value=\"{}\"/>\n",
            r.seed
        ));
        out.push_str("    </properties>\n");
        for v in &r.expectations {
            let time = v.observed.map(|d| d.as_secs_f64()).unwrap_or(0.0);
            let head = format!(
                "    <testcase name=\"{}\" classname=\"{name}\" time=\"{time:.3}\"",
                xml_escape(&v.name)
            );
            if v.passed {
                out.push_str(&head);
                out.push_str("/>\n");
            } else {
                out.push_str(&head);
                out.push_str(">\n");
                out.push_str(&format!(
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>\n",
                    xml_escape(&v.detail),
                    xml_escape(&v.kind),
                    xml_escape(&v.detail)
                ));
                out.push_str("    </testcase>\n");
            }
        }
        if !r.warnings.is_empty() {
            let text = r.warnings.join("\n");
            out.push_str(&format!(
                "    <system-err>{}</system-err>\n",
                xml_escape(&text)
            ));
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
