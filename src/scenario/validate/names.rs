//! The first pass: the scenario's own fields, and the names of faults and
//! expectations (unique, and usable in references).

use super::{expect_path, fault_path, Known, Res, MAX_CLIENTS};
use crate::scenario::model::Scenario;
use crate::scenario::parse::Cx;
use crate::scenario::yaml::YPath;
use std::collections::HashMap;

/// `name` is `[a-z0-9-]+` and `duration` is above zero.
pub(super) fn scenario_fields(s: &Scenario, cx: &Cx<'_>) -> Res<()> {
    let top = YPath::root();
    if s.name.is_empty()
        || !s
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        let fixed: String = s
            .name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let hint = if fixed.is_empty() {
            "expected lower-case letters, digits and `-`".to_string()
        } else {
            format!("expected lower-case letters, digits and `-`, e.g. `{fixed}`")
        };
        return Err(cx.err(
            &top.key("name"),
            false,
            format!("name: `{}` is not a valid scenario name", s.name),
            Some(hint),
        ));
    }
    if s.duration.0.is_zero() {
        return Err(cx.err(
            &top.key("duration"),
            false,
            "duration: the run's duration must be above zero",
            Some("expected e.g. `duration: 40s`".into()),
        ));
    }
    if let Some(n) = s.clients {
        if !(1..=MAX_CLIENTS).contains(&n) {
            return Err(cx.err(
                &top.key("clients"),
                false,
                format!("clients: {n} is not a number of clients"),
                Some(format!("expected 1 to {MAX_CLIENTS}")),
            ));
        }
    }
    Ok(())
}

/// Fault names are unique and usable in references; expectation names are
/// unique.
pub(super) fn effective_names(s: &Scenario, cx: &Cx<'_>) -> Res<Known> {
    let name_path = |p: YPath, named: bool| if named { p.key("name") } else { p };
    let fault_names: Vec<String> = (0..s.faults.len()).map(|i| s.fault_name(i)).collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, n) in fault_names.iter().enumerate() {
        if let Some(&j) = seen.get(n.as_str()) {
            return Err(cx.err(
                &name_path(fault_path(i), s.faults[i].name.is_some()),
                false,
                format!("faults[{i}]: duplicate fault name `{n}` (faults[{j}] has it too)"),
                Some("expected a unique `name` for each fault".into()),
            ));
        }
        if n == "start"
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(cx.err(
                &name_path(fault_path(i), true),
                false,
                format!("faults[{i}].name: `{n}` cannot be used in references"),
                Some("expected letters, digits, `-` and `_` (and not `start`)".into()),
            ));
        }
        seen.insert(n, i);
    }
    let expect_names: Vec<String> = (0..s.expect.len()).map(|i| s.expect_name(i)).collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, n) in expect_names.iter().enumerate() {
        if let Some(&j) = seen.get(n.as_str()) {
            return Err(cx.err(
                &name_path(expect_path(i), s.expect[i].name.is_some()),
                false,
                format!("expect[{i}]: duplicate expectation name `{n}` (expect[{j}] has it too)"),
                Some("expected a unique `name` for each expectation".into()),
            ));
        }
        seen.insert(n, i);
    }
    let index = fault_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    Ok(Known {
        list: fault_names,
        index,
    })
}
