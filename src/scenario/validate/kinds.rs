//! Each kind's own parameters: values in range and combinations that make
//! sense (a probability from 0 to 1, a close code that may be sent, HTTP
//! headers that cannot break the response, a positive deadline).

use super::refs::{check_connections, check_ref, window};
use super::{expect_path, fault_path, Known, Res};
use crate::expect::{Checks, Invalid};
use crate::scenario::locate::YPath;
use crate::scenario::model::{Connections, ExpectSpec, FaultKind, FaultSpec, Match, RefuseHow};
use crate::scenario::parse::Cx;
use crate::scenario::values::{Dur, Reference};
use std::collections::BTreeMap;

/// Fault `i`'s parameters; adds warnings for odd but allowed values.
pub(super) fn fault(
    cx: &Cx<'_>,
    i: usize,
    f: &FaultSpec,
    keep: bool,
    warnings: &mut Vec<String>,
) -> Res<()> {
    let p = fault_path(i);
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
        } => refuse(cx, i, *how, *status, headers)?,
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
    Ok(())
}

/// Expectation `i`'s parameters, references and window: each kind checks
/// its own ([`crate::expect::Kind::validate`]) through [`ExpectChecks`].
pub(super) fn expectation(
    cx: &Cx<'_>,
    i: usize,
    e: &ExpectSpec,
    keep: bool,
    known: &Known,
) -> Res<()> {
    let mut checks = ExpectChecks {
        cx,
        p: expect_path(i),
        i,
        kind: e.kind.name(),
        known,
        keep,
    };
    e.kind.validate(&mut checks).map_err(|bad| *bad.0)
}

/// What an expectation kind's `validate` is offered, for `expect[i]`.
struct ExpectChecks<'a> {
    cx: &'a Cx<'a>,
    p: YPath,
    i: usize,
    kind: &'static str,
    known: &'a Known,
    keep: bool,
}

fn invalid(e: crate::scenario::ScenarioError) -> Invalid {
    Invalid(Box::new(e))
}

impl Checks for ExpectChecks<'_> {
    fn reference(&mut self, field: &str, r: &Reference) -> Result<(), Invalid> {
        check_ref(self.cx, &self.p.key(field), r, self.known).map_err(invalid)
    }
    fn positive(&mut self, field: &str, d: Dur) -> Result<(), Invalid> {
        positive(self.cx, self.i, field, &d).map_err(invalid)
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

/// `refuse`: `status` and `headers` only with `how: http`, a status that
/// refuses, headers that cannot break the response.
fn refuse(
    cx: &Cx<'_>,
    i: usize,
    how: RefuseHow,
    status: Option<u16>,
    headers: &BTreeMap<String, String>,
) -> Res<()> {
    let how_name = match how {
        RefuseHow::Refused => "refused",
        RefuseHow::Reset => "reset",
        RefuseHow::Close => "close",
        RefuseHow::Stall => "stall",
        RefuseHow::Http => "http",
    };
    if how != RefuseHow::Http {
        let which = if status.is_some() {
            Some("status")
        } else if !headers.is_empty() {
            Some("headers")
        } else {
            None
        };
        if let Some(w) = which {
            return Err(cx.err(
                &fault_path(i).key(w),
                true,
                format!(
                    "faults[{i}].{w} only applies to `how: http`, and this fault has `how: {how_name}`"
                ),
                Some("set `how: http` or remove it".into()),
            ));
        }
    }
    if let Some(st) = status {
        if !(100..=599).contains(&st) || (101..200).contains(&st) {
            return Err(cx.err(
                &fault_path(i).key("status"),
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
                &fault_path(i).key("headers").key(hk),
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
    Ok(())
}

/// Expectation `i`'s `field` is above zero.
fn positive(cx: &Cx<'_>, i: usize, field: &str, d: &Dur) -> Res<()> {
    if d.0.is_zero() {
        return Err(cx.err(
            &expect_path(i).key(field),
            false,
            format!("expect[{i}].{field} must be above zero"),
            example_for(field),
        ));
    }
    Ok(())
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
