//! HTML report (stub).
use super::Report;
use crate::scenario::Scenario;

/// A self-contained HTML page.
pub fn html(report: &Report, scenario: Option<&Scenario>) -> String {
    let _ = (report, scenario);
    String::new()
}
