//! The last pass: warnings from the earliest time each fault can start (a
//! fault that can only start or end after the run is over), and references
//! to the end of a fault that never ends.

use super::{expect_path, fault_path, Known};
use crate::scenario::model::Scenario;
use crate::scenario::parse::Cx;
use crate::scenario::values::{Dur, RefBase, Reference};
use crate::scenario::yaml::YPath;
use std::time::Duration;

/// Adds the timing warnings of `s` to `warnings`.
pub(super) fn warnings(s: &Scenario, cx: &Cx<'_>, known: &Known, warnings: &mut Vec<String>) {
    let run = s.duration.0;
    let starts = earliest_all(s, known);
    let names = &known.list;
    for (i, f) in s.faults.iter().enumerate() {
        let Some(start) = starts[i] else {
            continue;
        };
        if start >= run {
            warnings.push(cx.warn(
                &fault_path(i).key("at"),
                format!(
                    "faults[{i}] (`{}`) starts at {} at the earliest, but the run lasts {}; it never starts",
                    names[i],
                    Dur(start),
                    s.duration
                ),
            ));
        } else if let Some(d) = f.duration {
            if start + d.0 > run {
                warnings.push(cx.warn(
                    &fault_path(i).key("duration"),
                    format!(
                        "faults[{i}] (`{}`) lasts until {} at the earliest, beyond the run's duration of {}",
                        names[i],
                        Dur(start + d.0),
                        s.duration
                    ),
                ));
            }
        }
    }
    let never_ends = |path: YPath, r: &Reference, warnings: &mut Vec<String>| {
        if let RefBase::FaultEnd(n) = &r.base {
            if let Some(j) = known.get(n) {
                let f = &s.faults[j];
                if f.duration.is_none() && !f.kind.is_instant() {
                    warnings.push(cx.warn(
                        &path,
                        format!(
                            "{path} refers to `{n}.end`, but `{n}` has no `duration` and lasts until the run ends"
                        ),
                    ));
                }
            }
        }
    };
    for (i, f) in s.faults.iter().enumerate() {
        if let Some(at) = &f.at {
            never_ends(fault_path(i).key("at"), at, warnings);
        }
    }
    for (i, e) in s.expect.iter().enumerate() {
        let after = e.kind.timing().after;
        if let Some(a) = after {
            never_ends(expect_path(i).key("after"), a, warnings);
        }
    }
}

/// The earliest time each fault can start, `None` when it may never.
/// Iterative: a chain of thousands of faults must not overflow the stack.
fn earliest_all(s: &Scenario, known: &Known) -> Vec<Option<Duration>> {
    let n = s.faults.len();
    let at = |i: usize| s.faults[i].at.clone().unwrap_or_else(Reference::start);
    let dep = |i: usize| at(i).fault().and_then(|name| known.get(name));
    let mut memo: Vec<Option<Option<Duration>>> = vec![None; n];
    for i in 0..n {
        let mut chain = Vec::new();
        let mut cur = Some(i);
        while let Some(c) = cur {
            if memo[c].is_some() || chain.len() > n {
                break;
            }
            chain.push(c);
            cur = dep(c);
        }
        for &c in chain.iter().rev() {
            let r = at(c);
            let base = match &r.base {
                RefBase::Start | RefBase::Accept(_) | RefBase::Open(_) | RefBase::Close(_) => {
                    Some(Duration::ZERO)
                }
                RefBase::FaultStart(_) => dep(c).and_then(|j| memo[j].flatten()),
                RefBase::FaultEnd(_) => dep(c).and_then(|j| {
                    let f = &s.faults[j];
                    let len = if f.kind.is_instant() {
                        Some(Duration::ZERO)
                    } else {
                        f.duration.map(|d| d.0)
                    };
                    Some(memo[j].flatten()? + len?)
                }),
            };
            memo[c] = Some(base.map(|b| b + r.offset));
        }
    }
    memo.into_iter().map(Option::flatten).collect()
}
