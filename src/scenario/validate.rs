//! Cross-field validation of a typed scenario: names, references and cycles,
//! parameters that make no sense together, values out of range, and
//! warnings for things that are allowed but probably not meant.

use super::error::{hint_for, suggest, ScenarioError};
use super::locate::YPath;
use super::model::{Connections, Extensions, FaultKind, Match, RefuseHow, Scenario};
use super::parse::Cx;
use super::values::{Dur, RefBase, Reference};
use crate::expect::{Checks, Invalid};
use std::collections::HashMap;
use std::time::Duration;

type Res<T> = Result<T, ScenarioError>;

/// Validates `s`; returns the warnings.
pub(crate) fn validate(s: &Scenario, cx: &Cx<'_>) -> Res<Vec<String>> {
    let top = YPath::root();
    let mut warnings = Vec::new();

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

    // Names.
    let fault_names: Vec<String> = (0..s.faults.len()).map(|i| s.fault_name(i)).collect();
    let fpath = |i: usize| top.key("faults").index(i);
    let epath = |i: usize| top.key("expect").index(i);
    let name_path = |p: YPath, named: bool| if named { p.key("name") } else { p };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, n) in fault_names.iter().enumerate() {
        if let Some(&j) = seen.get(n.as_str()) {
            return Err(cx.err(
                &name_path(fpath(i), s.faults[i].name.is_some()),
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
                &name_path(fpath(i), true),
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
                &name_path(epath(i), s.expect[i].name.is_some()),
                false,
                format!("expect[{i}]: duplicate expectation name `{n}` (expect[{j}] has it too)"),
                Some("expected a unique `name` for each expectation".into()),
            ));
        }
        seen.insert(n, i);
    }
    let names: Vec<&str> = fault_names.iter().map(String::as_str).collect();
    let index_of: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let keep = s.extensions == Extensions::Keep;
    let known = Known {
        list: names.clone(),
        index: index_of.clone(),
    };

    // Faults.
    for (i, f) in s.faults.iter().enumerate() {
        let p = fpath(i);
        if let Some(at) = &f.at {
            check_ref(cx, &p.key("at"), at, &known)?;
        }
        check_connections(cx, &p.key("connections"), &f.connections)?;
        match &f.kind {
            FaultKind::Drop {
                matches,
                probability,
                ..
            }
            | FaultKind::Corrupt {
                matches,
                probability,
                ..
            } => {
                if !(0.0..=1.0).contains(probability) {
                    return Err(cx.err(
                        &p.key("probability"),
                        false,
                        format!("faults[{i}].probability: {probability} is not a probability"),
                        Some("expected a number from 0 to 1".into()),
                    ));
                }
                check_match(cx, &p.key("match"), matches, keep)?;
            }
            FaultKind::Close { code, reason, .. } => {
                if let Some(why) = close_code_problem(*code) {
                    return Err(cx.err(
                        &p.key("code"),
                        false,
                        format!("faults[{i}].code: close code {code} may not be sent: {why}"),
                        Some(CLOSE_CODES_HINT.into()),
                    ));
                }
                if reason.len() > 123 {
                    return Err(cx.err(
                        &p.key("reason"),
                        false,
                        format!(
                            "faults[{i}].reason: the close reason is {} bytes, more than fits in a close frame",
                            reason.len()
                        ),
                        Some("expected at most 123 bytes of UTF-8".into()),
                    ));
                }
            }
            FaultKind::Refuse {
                how,
                status,
                headers,
            } => {
                let how_name = match how {
                    RefuseHow::Refused => "refused",
                    RefuseHow::Reset => "reset",
                    RefuseHow::Close => "close",
                    RefuseHow::Stall => "stall",
                    RefuseHow::Http => "http",
                };
                if *how != RefuseHow::Http {
                    let which = if status.is_some() {
                        Some("status")
                    } else if !headers.is_empty() {
                        Some("headers")
                    } else {
                        None
                    };
                    if let Some(w) = which {
                        return Err(cx.err(
                            &p.key(w),
                            true,
                            format!(
                                "faults[{i}].{w} only applies to `how: http`, and this fault has `how: {how_name}`"
                            ),
                            Some("set `how: http` or remove it".into()),
                        ));
                    }
                }
                if let Some(st) = status {
                    if !(100..=599).contains(st) || (101..200).contains(st) {
                        return Err(cx.err(
                            &p.key("status"),
                            false,
                            format!("faults[{i}].status: {st} is not an HTTP status that refuses a connection"),
                            Some("expected 100 or 200-599, e.g. 503".into()),
                        ));
                    }
                }
                for (hk, hv) in headers {
                    let bad_name = hk.is_empty()
                        || !hk
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                    let bad_value = hv.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
                    if bad_name || bad_value {
                        return Err(cx.err(
                            &p.key("headers").key(hk),
                            bad_name,
                            format!(
                                "faults[{i}].headers: `{}` is not a valid HTTP header {}",
                                hk.escape_debug(),
                                if bad_name {
                                    "name"
                                } else {
                                    "value (line breaks)"
                                }
                            ),
                            Some("expected e.g. `Retry-After: \"1\"`".into()),
                        ));
                    }
                }
            }
            FaultKind::Delay {
                latency, jitter, ..
            } if jitter > latency => {
                warnings.push(cx.warn(
                        &p.key("jitter"),
                        format!(
                            "faults[{i}].jitter {jitter} is above the latency {latency}, so delays range 0..{}",
                            Dur(latency.0 + jitter.0)
                        ),
                    ));
            }
            _ => {}
        }
    }

    // Cycles of faults waiting for each other.
    let target = |i: usize| -> Option<usize> {
        s.faults[i]
            .at
            .as_ref()
            .and_then(|r| r.fault())
            .and_then(|n| index_of.get(n).copied())
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
                    return Err(cycle_error(cx, s, &names, &cycle));
                }
                _ => break,
            }
        }
        for c in chain {
            state[c] = 2;
        }
    }

    // Expectations: each kind checks its own parameters.
    for (i, e) in s.expect.iter().enumerate() {
        let mut checks = ExpectChecks {
            cx,
            p: epath(i),
            i,
            kind: e.kind.name(),
            known: &known,
            keep,
        };
        e.kind.validate(&mut checks).map_err(|bad| *bad.0)?;
    }

    // Warnings from the earliest possible times.
    let run = s.duration.0;
    let starts = earliest_all(s, &index_of);
    for (i, f) in s.faults.iter().enumerate() {
        let Some(start) = starts[i] else {
            continue;
        };
        if start >= run {
            warnings.push(cx.warn(
                &fpath(i).key("at"),
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
                    &fpath(i).key("duration"),
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
            if let Some(&j) = index_of.get(n.as_str()) {
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
            never_ends(fpath(i).key("at"), at, &mut warnings);
        }
    }
    for (i, e) in s.expect.iter().enumerate() {
        let after = e.kind.timing().after;
        if let Some(a) = after {
            never_ends(epath(i).key("after"), a, &mut warnings);
        }
    }
    Ok(warnings)
}

fn cycle_error(cx: &Cx<'_>, s: &Scenario, names: &[&str], cycle: &[usize]) -> ScenarioError {
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

/// The earliest time each fault can start, `None` when it may never.
/// Iterative: a chain of thousands of faults must not overflow the stack.
fn earliest_all(s: &Scenario, index_of: &HashMap<&str, usize>) -> Vec<Option<Duration>> {
    let n = s.faults.len();
    let at = |i: usize| s.faults[i].at.clone().unwrap_or_else(Reference::start);
    let dep = |i: usize| at(i).fault().and_then(|name| index_of.get(name).copied());
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

const CLOSE_CODES_HINT: &str = "expected 1000-1003, 1007-1014 or 3000-4999 (RFC 6455 §7.4)";

/// Why a close code may not be sent on the wire, per RFC 6455 §7.4.
pub(crate) fn close_code_problem(code: u16) -> Option<&'static str> {
    match code {
        0..=999 => Some("codes below 1000 are not used"),
        1004 => Some("1004 is reserved"),
        1005 | 1006 | 1015 => Some("it is reserved for reporting a missing or failed close"),
        1016..=2999 => Some("1016-2999 are reserved for future protocol use"),
        5000.. => Some("codes above 4999 are not defined"),
        _ => None,
    }
}

fn example_for(field: &str) -> Option<String> {
    match field {
        "within" => Some("expected e.g. `within: 10s`".into()),
        "for" => Some("expected e.g. `for: 30s`".into()),
        "every" => Some("expected e.g. `every: 5s`".into()),
        _ => None,
    }
}

/// What an expectation kind's `validate` is offered, for `expect[i]`.
struct ExpectChecks<'a> {
    cx: &'a Cx<'a>,
    p: YPath,
    i: usize,
    kind: &'static str,
    known: &'a Known<'a>,
    keep: bool,
}

fn invalid(e: ScenarioError) -> Invalid {
    Invalid(Box::new(e))
}

impl Checks for ExpectChecks<'_> {
    fn reference(&mut self, field: &str, r: &Reference) -> Result<(), Invalid> {
        check_ref(self.cx, &self.p.key(field), r, self.known).map_err(invalid)
    }
    fn positive(&mut self, field: &str, d: Dur) -> Result<(), Invalid> {
        if d.0.is_zero() {
            let message = format!("expect[{}].{field} must be above zero", self.i);
            return Err(self.fail(field, message, example_for(field)));
        }
        Ok(())
    }
    fn window(
        &mut self,
        during: &Option<String>,
        after: &Option<Reference>,
        for_: &Option<Dur>,
        during_allowed: bool,
    ) -> Result<(), Invalid> {
        let (cx, p, kind, known) = (self.cx, &self.p, self.kind, self.known);
        window(cx, p, kind, during, after, for_, during_allowed, known).map_err(invalid)
    }
    fn matcher(&mut self, field: &str, m: &Match) -> Result<(), Invalid> {
        check_match(self.cx, &self.p.key(field), m, self.keep).map_err(invalid)
    }
    fn close_code(&mut self, field: &str, code: u16) -> Result<(), Invalid> {
        if let Some(why) = close_code_problem(code) {
            let message = format!(
                "expect[{}].{field}: close code {code} never appears in a close frame: {why}",
                self.i
            );
            return Err(self.fail(field, message, Some(CLOSE_CODES_HINT.into())));
        }
        Ok(())
    }
    fn connections(&mut self, field: &str, c: &Connections) -> Result<(), Invalid> {
        check_connections(self.cx, &self.p.key(field), c).map_err(invalid)
    }
    fn fail(&mut self, field: &str, message: String, hint: Option<String>) -> Invalid {
        invalid(self.cx.err(&self.p.key(field), false, message, hint))
    }
    fn path(&self) -> String {
        format!("expect[{}]", self.i)
    }
}

/// The effective fault names, for look-ups and suggestions.
struct Known<'a> {
    list: Vec<&'a str>,
    index: HashMap<&'a str, usize>,
}

fn check_ref(cx: &Cx<'_>, path: &YPath, r: &Reference, known: &Known<'_>) -> Res<()> {
    let names = &known.list;
    let Some(n) = r.fault() else { return Ok(()) };
    if known.index.contains_key(n) {
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

fn check_connections(cx: &Cx<'_>, path: &YPath, c: &Connections) -> Res<()> {
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

#[allow(clippy::too_many_arguments)]
fn window(
    cx: &Cx<'_>,
    p: &YPath,
    kind: &str,
    during: &Option<String>,
    after: &Option<Reference>,
    for_: &Option<Dur>,
    required: bool,
    known: &Known<'_>,
) -> Res<()> {
    if let Some(d) = during {
        let names = &known.list;
        if !known.index.contains_key(d.as_str()) {
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

fn check_match(cx: &Cx<'_>, path: &YPath, m: &Match, keep: bool) -> Res<()> {
    if keep {
        for k in ["text", "regex"] {
            let given = if k == "text" {
                m.text.is_some()
            } else {
                m.regex.is_some()
            };
            if given {
                return Err(cx.err(
                    &path.key(k),
                    true,
                    format!("{path}.{k}: payload matching is unavailable with extensions: keep"),
                    Some("compressed payloads cannot be read; match on `opcode`, `min_len` or `max_len`, or remove `extensions: keep`".into()),
                ));
            }
        }
    }
    if let Some(re) = &m.regex {
        if let Err(e) = regex::Regex::new(re) {
            let text = e.to_string();
            let why = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .or_else(|| text.lines().next())
                .unwrap_or("invalid")
                .to_string();
            return Err(cx.err(
                &path.key("regex"),
                false,
                format!("{path}.regex: `{re}` does not compile: {why}"),
                Some("expected a regular expression (Rust `regex` syntax)".into()),
            ));
        }
    }
    if let (Some(lo), Some(hi)) = (m.min_len, m.max_len) {
        if lo > hi {
            return Err(cx.err(
                &path.key("min_len"),
                false,
                format!("{path}: min_len {lo} is larger than max_len {hi}, so nothing matches"),
                Some("expected min_len ≤ max_len".into()),
            ));
        }
    }
    if let Some(any) = &m.any {
        if any.is_empty() {
            return Err(cx.err(
                &path.key("any"),
                false,
                format!("{path}.any is an empty list, so nothing matches"),
                Some("expected e.g. `any: [{opcode: ping}, {text: ping}]`".into()),
            ));
        }
        for (j, alt) in any.iter().enumerate() {
            check_match(cx, &path.key("any").index(j), alt, keep)?;
        }
    }
    Ok(())
}
