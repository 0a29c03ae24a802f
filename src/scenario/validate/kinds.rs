//! Each kind's own parameters: values in range and combinations that make
//! sense (a probability from 0 to 1, a close code that may be sent, HTTP
//! headers that cannot break the response, a positive deadline).

use super::refs::{check_connections, check_ref, window};
use super::{expect_path, fault_path, Known, Res};
use crate::expect::{Checks, Invalid};
use crate::scenario::error::ScenarioError;
use crate::scenario::model::{Connections, ExpectSpec, FaultSpec, Match};
use crate::scenario::parse::Cx;
use crate::scenario::values::{Dur, Reference};
use crate::scenario::yaml::YPath;

/// Fault `i`'s parameters, checked by its kind; adds warnings for odd but
/// allowed values.
pub(super) fn fault(
    cx: &Cx<'_>,
    i: usize,
    f: &FaultSpec,
    keep: bool,
    warnings: &mut Vec<String>,
) -> Res<()> {
    f.kind.check(&mut FaultCheck {
        cx,
        path: fault_path(i),
        index: i,
        keep,
        warnings,
    })
}

/// What a fault kind's own checks ([`crate::faults::Kind::check`]) may use:
/// its place in the file, errors and warnings pointing into it, and the
/// checks shared with expectations.
pub struct FaultCheck<'a> {
    cx: &'a Cx<'a>,
    path: YPath,
    index: usize,
    keep: bool,
    warnings: &'a mut Vec<String>,
}

impl FaultCheck<'_> {
    /// `faults[i]`: how messages name the fault.
    pub fn label(&self) -> String {
        format!("faults[{}]", self.index)
    }

    fn at(&self, at: &[&str]) -> YPath {
        at.iter().fold(self.path.clone(), |p, k| p.key(k))
    }

    /// An error at the fault's field `at` (a key path; `at_key` points at the
    /// key rather than its value). `message` starts with [`Self::label`].
    pub fn error(
        &self,
        at: &[&str],
        at_key: bool,
        message: String,
        hint: Option<String>,
    ) -> ScenarioError {
        self.cx.err(&self.at(at), at_key, message, hint)
    }

    /// A warning at the fault's field `at`.
    pub fn warn(&mut self, at: &[&str], message: String) {
        let w = self.cx.warn(&self.at(at), message);
        self.warnings.push(w);
    }

    /// Checks a `match:` block in field `field`.
    pub fn check_match(&self, field: &str, m: &Match) -> Res<()> {
        check_match(self.cx, &self.path.key(field), m, self.keep)
    }

    /// Checks that `code` (in field `field`) may be sent in a close frame.
    pub fn close_code(&self, field: &str, code: u16) -> Res<()> {
        match close_code_problem(code) {
            None => Ok(()),
            Some(why) => Err(self.error(
                &[field],
                false,
                format!(
                    "{}.{field}: close code {code} may not be sent: {why}",
                    self.label()
                ),
                Some(CLOSE_CODES_HINT.into()),
            )),
        }
    }
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
