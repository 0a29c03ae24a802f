//! Reports: the outcome of a run in every form a person or a CI system reads.
//!
//! A [`Report`] holds everything a run produced (verdicts, warnings, command
//! outcomes, the whole event log, the scenario as run and the settings) and is
//! serialised as the JSON of the run contract. The other forms are views of
//! it: the normalised [`transcript`] for snapshot tests, [`junit`] XML, a
//! self-contained [`html`] page with an SVG timeline, and the [`terminal`]
//! live timeline and verdict table.

pub mod html;
pub mod junit;
pub mod terminal;
pub mod transcript;

pub use html::html;
pub use junit::junit;
pub use terminal::{verdict_table, LivePrinter};
pub use transcript::{diff, Transcript};

use crate::events::{ConnSummary, Event};
use crate::expect::Verdict;
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The transcript resolution used when neither the settings nor the scenario give one.
pub const DEFAULT_RESOLUTION: Duration = Duration::from_millis(100);

/// Errors reading a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The JSON is malformed or does not have the report's shape.
    #[error("invalid report JSON at line {line}, column {column}: {source}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's error.
        source: serde_json::Error,
    },
}

/// How a command started by flatline (`--server-cmd`, `--client-cmd`) ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// `server` or `client`.
    pub role: String,
    /// The shell command line.
    pub command: String,
    /// Exit code, if it exited.
    #[serde(default)]
    pub exit: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// The last lines of its output (stdout and stderr).
    #[serde(default)]
    pub output_tail: String,
}

/// The settings a run was made with, so that `flatline replay` can repeat it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunSettings {
    /// The upstream URL used (`--upstream` or the scenario's).
    #[serde(default)]
    pub upstream: Option<String>,
    /// The listen address asked for (`--listen`).
    #[serde(default)]
    pub listen: Option<String>,
    /// `--client-cmd`.
    #[serde(default)]
    pub client_cmd: Option<String>,
    /// `--server-cmd`.
    #[serde(default)]
    pub server_cmd: Option<String>,
    /// Whether the built-in demo client ran (`--demo`).
    #[serde(default)]
    pub demo: bool,
    /// Whether the run used network namespaces (`--netns` or `network: netns`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub netns: bool,
    /// Transcript resolution override (`0` = ordering only).
    #[serde(
        rename = "resolution_ms",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::expect::opt_millis"
    )]
    pub resolution: Option<Duration>,
    /// TLS settings (`--tls`, `--tls-cert`, `--upstream-ca`…), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::TlsSettings>,
}

/// Everything one run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's `name`.
    pub scenario: String,
    /// The seed used.
    pub seed: u64,
    /// Whether every expectation passed.
    pub passed: bool,
    /// How long the run took.
    #[serde(rename = "duration_ms", with = "crate::events::millis")]
    pub duration: Duration,
    /// One verdict per expectation, in scenario order.
    pub expectations: Vec<Verdict>,
    /// Warnings (scenario lint, relay trouble, commands that misbehaved).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// How the commands flatline started ended.
    #[serde(default)]
    pub commands: Vec<CommandOutcome>,
    /// The whole event log.
    pub events: Vec<Event>,
    /// Per-connection frame summaries (counts by opcode and preview class,
    /// payload bytes, first and last times): a run keeps one by one only the
    /// frames it judges, and folds the others into runs in `events`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<ConnSummary>,
    /// The scenario as run (for `flatline replay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_spec: Option<Scenario>,
    /// The settings the run was made with.
    #[serde(default)]
    pub settings: RunSettings,
}

impl Report {
    /// Pretty JSON, per the run contract.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail; keep a fallback anyway.
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
    }

    /// Read a report written by [`Report::to_json`].
    pub fn from_json(s: &str) -> Result<Report, ReportError> {
        serde_json::from_str(s).map_err(|e| ReportError::Json {
            line: e.line(),
            column: e.column(),
            source: e,
        })
    }

    /// The transcript resolution: the settings' override, else the scenario's
    /// `resolution`, else 100 ms. `None` means ordering only.
    pub fn resolution(&self) -> Option<Duration> {
        let r = self
            .settings
            .resolution
            .or_else(|| {
                self.scenario_spec
                    .as_ref()
                    .and_then(|s| s.resolution.map(|d| d.0))
            })
            .unwrap_or(DEFAULT_RESOLUTION);
        (!r.is_zero()).then_some(r)
    }

    /// The kind of fault `name` according to the scenario, if known.
    pub fn fault_kind(&self, name: &str) -> Option<&'static str> {
        let sc = self.scenario_spec.as_ref()?;
        (0..sc.faults.len())
            .find(|&i| sc.fault_name(i) == name)
            .map(|i| sc.faults[i].kind.name())
    }
}

/// Escape text for XML and HTML (element content and quoted attributes).
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 forbids outright (other control characters).
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `1.234s`: a duration in seconds with millisecond precision.
pub(crate) fn secs3(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}
