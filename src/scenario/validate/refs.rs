//! References between parts of a scenario: each names a fault that exists,
//! faults do not wait for each other in a cycle, connection lists are
//! usable, and expectation windows are complete.

use super::{Known, Res};
use crate::scenario::error::{hint_for, suggest, ScenarioError};
use crate::scenario::model::{Connections, Scenario};
use crate::scenario::parse::Cx;
use crate::scenario::values::{Dur, Reference};
use crate::scenario::yaml::YPath;

/// A reference to a fault names one that exists.
pub(super) fn check_ref(cx: &Cx<'_>, path: &YPath, r: &Reference, known: &Known) -> Res<()> {
    let names = &known.names();
    let Some(n) = r.fault() else { return Ok(()) };
    if known.get(n).is_some() {
        return Ok(());
    }
    let mut cands: Vec<&str> = names.clone();
    cands.push("start");
    let hint = match suggest(n, &cands) {
        Some(c) => format!("did you mean `{c}`?"),
        None if names.is_empty() => {
            "this scenario has no faults; expected `start`, `accept#N`, `open#N` or `close#N`"
                .into()
        }
        None => hint_for(n, names),
    };
    Err(cx.err(
        path,
        false,
        format!("{path} references unknown fault `{n}`"),
        Some(hint),
    ))
}

/// An explicit connection list is not empty and counts from 1.
pub(super) fn check_connections(cx: &Cx<'_>, path: &YPath, c: &Connections) -> Res<()> {
    if let Connections::List(l) = c {
        if l.is_empty() {
            return Err(cx.err(
                path,
                false,
                format!("{path} is an empty list, so it covers no connection"),
                Some("expected `all`, `open`, `new` or connection numbers such as `[1, 3]`".into()),
            ));
        }
        if l.contains(&0) {
            return Err(cx.err(
                path,
                false,
                format!("{path}: connection numbers start at 1"),
                Some("expected e.g. `[1, 3]`".into()),
            ));
        }
    }
    Ok(())
}

/// No fault waits, through `at: NAME` or `at: NAME.end`, for itself.
pub(super) fn no_cycles(s: &Scenario, cx: &Cx<'_>, known: &Known) -> Res<()> {
    let target = |i: usize| -> Option<usize> {
        s.faults[i]
            .at
            .as_ref()
            .and_then(|r| r.fault())
            .and_then(|n| known.get(n))
    };
    // Each fault waits for at most one other: walk each chain once,
    // colouring faults as on the current chain (1) or known acyclic (2).
    let mut state = vec![0u8; s.faults.len()];
    for start in 0..s.faults.len() {
        let mut chain = Vec::new();
        let mut cur = Some(start);
        while let Some(c) = cur {
            match state[c] {
                0 => {
                    state[c] = 1;
                    chain.push(c);
                    cur = target(c);
                }
                1 => {
                    let pos = chain.iter().position(|k| *k == c).unwrap_or(0);
                    let mut cycle = chain[pos..].to_vec();
                    let lowest = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, k)| **k)
                        .map_or(0, |(p, _)| p);
                    cycle.rotate_left(lowest);
                    return Err(cycle_error(cx, s, known, &cycle));
                }
                _ => break,
            }
        }
        for c in chain {
            state[c] = 2;
        }
    }
    Ok(())
}

fn cycle_error(cx: &Cx<'_>, s: &Scenario, known: &Known, cycle: &[usize]) -> ScenarioError {
    let names = &known.list;
    let first = cycle[0];
    let at = |k: usize| s.faults[k].at.clone().unwrap_or_else(Reference::start);
    let message = if cycle.len() == 1 {
        format!(
            "faults[{first}].at: fault `{}` starts relative to itself (`at: {}`)",
            names[first],
            at(first)
        )
    } else {
        let mut links: Vec<String> = cycle
            .iter()
            .take(4)
            .map(|k| format!("`{}` at `{}`", names[*k], at(*k)))
            .collect();
        if cycle.len() > 4 {
            links.push(format!("… {} faults in all", cycle.len()));
        }
        format!(
            "faults[{first}].at: faults wait for each other in a cycle ({}), so none of them starts",
            links.join(", ")
        )
    };
    cx.err(
        &YPath::root().key("faults").index(first).key("at"),
        false,
        message,
        Some(
            "expected `start`, a time, a connection event (`open#1 + 3s`) or an earlier fault"
                .into(),
        ),
    )
}

/// The window of an expectation: `during: FAULT`, or `after` + `for`
/// (`required`: one of them must be given).
#[allow(clippy::too_many_arguments)]
pub(super) fn window(
    cx: &Cx<'_>,
    p: &YPath,
    kind: &str,
    during: &Option<String>,
    after: &Option<Reference>,
    for_: &Option<Dur>,
    required: bool,
    known: &Known,
) -> Res<()> {
    if let Some(d) = during {
        let names = &known.names();
        if known.get(d).is_none() {
            let hint = if names.is_empty() {
                "this scenario has no faults".to_string()
            } else {
                hint_for(d, names)
            };
            return Err(cx.err(
                &p.key("during"),
                false,
                format!("{}.during references unknown fault `{d}`", p),
                Some(hint),
            ));
        }
        if after.is_some() || for_.is_some() {
            let k = if after.is_some() { "after" } else { "for" };
            return Err(cx.err(
                &p.key(k),
                true,
                format!("{p}: `{kind}` takes either `during` or `after` + `for`, not both"),
                Some("expected one window".into()),
            ));
        }
        return Ok(());
    }
    if let Some(a) = after {
        check_ref(cx, &p.key("after"), a, known)?;
    }
    match (after, for_) {
        (None, Some(_)) => Err(cx.err(
            &p.key("for"),
            true,
            format!("{p}: `for` without `after`"),
            Some("expected `after: REF` to say when the window starts".into()),
        )),
        (Some(_), None) if required => Err(cx.err(
            &p.key("after"),
            true,
            format!("{p}: `after` without `for`"),
            Some("expected `for: DURATION` to say how long the window lasts".into()),
        )),
        (None, None) if required => Err(cx.err(
            p,
            false,
            format!("{p}: `{kind}` needs a window"),
            Some("expected `during: FAULT` or `after: REF` with `for: DURATION`".into()),
        )),
        (Some(_), Some(f)) if f.0.is_zero() => Err(cx.err(
            &p.key("for"),
            false,
            format!("{p}.for must be above zero"),
            Some("expected e.g. `for: 30s`".into()),
        )),
        _ => Ok(()),
    }
}
