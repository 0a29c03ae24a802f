//! Cross-field validation of a typed scenario, in passes. The first error
//! found is the one reported, so the passes run in a fixed order:
//!
//! 1. `names`: the scenario's own fields, then fault and expectation names
//!    (unique, usable in references).
//! 2. Each fault: its `at` reference and `connections` (`refs`), then its
//!    kind's parameters (`kinds`).
//! 3. `refs`: faults waiting for each other in a cycle.
//! 4. Each expectation: its kind's parameters, references and window.
//! 5. `timing`: warnings for things that are allowed but probably not meant
//!    (a fault that can only start after the run ends).

mod kinds;
pub use kinds::FaultCheck;
mod names;
mod refs;
mod timing;

use super::error::ScenarioError;
use super::model::{Extensions, Scenario};
use super::parse::Cx;
use super::yaml::YPath;
use std::collections::HashMap;

type Res<T> = Result<T, ScenarioError>;

/// Most clients a run may start.
pub const MAX_CLIENTS: usize = 10_000;

/// Validates `s`; returns the warnings.
pub(crate) fn validate(s: &Scenario, cx: &Cx<'_>) -> Res<Vec<String>> {
    names::scenario_fields(s, cx)?;
    let known = names::effective_names(s, cx)?;
    let keep = s.extensions == Extensions::Keep;
    let mut warnings = Vec::new();
    for (i, f) in s.faults.iter().enumerate() {
        let p = fault_path(i);
        if let Some(at) = &f.at {
            refs::check_ref(cx, &p.key("at"), at, &known)?;
        }
        refs::check_connections(cx, &p.key("connections"), &f.connections)?;
        kinds::fault(cx, i, f, keep, &mut warnings)?;
    }
    refs::no_cycles(s, cx, &known)?;
    for (i, e) in s.expect.iter().enumerate() {
        kinds::expectation(cx, i, e, keep, &known)?;
    }
    timing::warnings(s, cx, &known, &mut warnings);
    Ok(warnings)
}

/// `faults[i]`.
fn fault_path(i: usize) -> YPath {
    YPath::root().key("faults").index(i)
}

/// `expect[i]`.
fn expect_path(i: usize) -> YPath {
    YPath::root().key("expect").index(i)
}

/// The effective fault names (given, or `<kind>-<index>`), in file order,
/// for look-ups and suggestions.
struct Known {
    list: Vec<String>,
    index: HashMap<String, usize>,
}

impl Known {
    /// The names, for suggestions.
    fn names(&self) -> Vec<&str> {
        self.list.iter().map(String::as_str).collect()
    }

    /// The index of fault `name`.
    fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}
