//! Loading a scenario: size and syntax checks, then the structure (known
//! kinds and fields, with suggestions), then typed values, then the
//! cross-field validation in `validate.rs`.
//!
//! The document is first read into a `serde_yaml::Value` (syntax errors carry
//! their position), checked field by field against the tables below, and only
//! then converted into the typed model. When a conversion fails, each field is
//! tried alone to find the one at fault, so the message can name it and point
//! at it. Positions come from `locate.rs`.

use super::error::{hint_for, one_of, ScenarioError, MAX_FILE_BYTES};
use super::locate::{locate, Seg, YPath};
use super::model::{ExpectKind, ExpectSpec, Extensions, FaultKind, FaultSpec, Match, Scenario};
use super::values::Dur;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Value};
use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// A parsed, validated scenario and the warnings found on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The scenario, checked: names unique, references resolvable and
    /// acyclic, values in range.
    pub scenario: Scenario,
    /// Things that are allowed but probably not meant (each one line, with
    /// file, line and column).
    pub warnings: Vec<String>,
}

/// Reads, parses and validates a scenario file.
pub fn load_file(path: &Path) -> Result<Loaded, ScenarioError> {
    let file = path.display().to_string();
    let io = |source| ScenarioError::Io {
        file: file.clone(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ScenarioError::TooLarge { file, size });
    }
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let size = bytes.len() as u64;
        return Err(ScenarioError::TooLarge { file, size });
    }
    let src = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let before = String::from_utf8_lossy(&bytes[..valid]);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            return Err(ScenarioError::Invalid {
                file,
                line,
                column,
                path: String::new(),
                message: format!(
                    "the file is not UTF-8 text (byte 0x{:02x})",
                    bytes.get(valid).copied().unwrap_or(0)
                ),
                hint: Some("expected a YAML scenario; is it a binary file?".into()),
            });
        }
    };
    parse_str(&src, &file)
}

/// Parses and validates scenario text; `file` is used in messages only.
pub fn parse_str(src: &str, file: &str) -> Result<Loaded, ScenarioError> {
    if src.len() as u64 > MAX_FILE_BYTES {
        return Err(ScenarioError::TooLarge {
            file: file.to_string(),
            size: src.len() as u64,
        });
    }
    let cx = Cx { src, file };
    let root = cx.read_yaml()?;
    let scenario = cx.build(&root)?;
    let warnings = super::validate::validate(&scenario, &cx)?;
    Ok(Loaded { scenario, warnings })
}

/// The source and its name, for positions in messages.
pub(crate) struct Cx<'a> {
    pub src: &'a str,
    pub file: &'a str,
}

/// Most nodes (after expanding aliases) a scenario file may hold.
const MAX_NODES: usize = 100_000;

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "duration",
    "seed",
    "upstream",
    "extensions",
    "resolution",
    "demo_client",
    "faults",
    "expect",
];
const FAULT_COMMON: &[&str] = &["name", "kind", "at", "duration", "connections"];
const EXPECT_COMMON: &[&str] = &["name", "kind"];
const MATCH_KEYS: &[&str] = &["opcode", "text", "regex", "min_len", "max_len", "any"];
const OPCODES: &[&str] = &["text", "binary", "ping", "pong", "close", "continuation"];
const CONN_WHICH: &[&str] = &["all", "open", "new"];

/// The kind-specific fields of each fault kind.
pub(crate) fn fault_params(kind: &str) -> &'static [&'static str] {
    match kind {
        "partition" => &["direction", "on_end"],
        "delay" => &["latency", "jitter", "direction"],
        "drop" => &["match", "probability", "direction"],
        "throttle" => &["rate", "direction"],
        "slice" => &["size", "gap", "direction"],
        "corrupt" => &["match", "probability", "direction"],
        "half_close" => &["toward"],
        "lose_fin" => &["from"],
        "reset" => &["toward"],
        "close" => &["toward", "code", "reason", "then"],
        "refuse" => &["how", "status", "headers"],
        "limit" => &["bytes", "direction", "then"],
        _ => &[],
    }
}

/// The kind-specific fields of each expectation kind (declared once, by
/// each kind's struct: see [`crate::expect::registry`]).
pub(crate) fn expect_params(kind: &str) -> &'static [&'static str] {
    crate::expect::registry::fields(kind)
}

fn example(field: &str) -> Option<&'static str> {
    Some(match field {
        "name" => "`name: silent-drop`",
        "description" => "`description: what it simulates and what a good client does`",
        "duration" => "`duration: 40s`",
        "latency" => "`latency: 200ms`",
        "rate" => "`rate: 64KiB/s`",
        "size" => "`size: 1..16`",
        "toward" => "`toward: client`",
        "from" => "`from: client`",
        "bytes" => "`bytes: 16KiB`",
        "after" => "`after: outage.end`",
        "within" => "`within: 10s`",
        "for" => "`for: 30s`",
        "match" => "`match: {opcode: ping}`",
        "every" => "`every: 5s`",
        "code" => "`code: 1000`",
        _ => return None,
    })
}

/// `a`, `b`, … as a human list of what the node is.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "an empty value".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::String(s) => format!("`{}`", short(s)),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged `{}`", t.tag),
    }
}

fn short(s: &str) -> String {
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() > 40 {
        let cut: String = one_line.chars().take(40).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

pub(crate) fn key_str(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "~".into(),
        other => describe(other),
    }
}

fn is_missing_field(e: &serde_yaml::Error) -> Option<String> {
    let m = e.to_string();
    let rest = m.split("missing field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

impl Cx<'_> {
    /// An error at the node `path` (or its key).
    pub(crate) fn err(
        &self,
        path: &YPath,
        at_key: bool,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> ScenarioError {
        let (line, column) = locate(self.src, path, at_key);
        self.err_at(line, column, path.to_string(), message.into(), hint)
    }

    fn err_at(
        &self,
        line: usize,
        column: usize,
        path: String,
        message: String,
        hint: Option<String>,
    ) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.file.to_string(),
            line,
            column,
            path,
            message,
            hint,
        }
    }

    /// A warning line about the node `path`.
    pub(crate) fn warn(&self, path: &YPath, message: impl fmt::Display) -> String {
        let (line, column) = locate(self.src, path, false);
        format!("{message} at {}:{line}:{column}", self.file)
    }

    // ---- step 1: YAML syntax ------------------------------------------------

    fn read_yaml(&self) -> Result<Value, ScenarioError> {
        let only_comments = self.src.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
        });
        if only_comments {
            return Err(self.err_at(
                1,
                1,
                String::new(),
                "the scenario file is empty".into(),
                Some("expected a mapping with `name`, `description` and `duration`".into()),
            ));
        }
        // libyaml spends time proportional to the flow depth on every token:
        // refuse deep `[`/`{` nesting before it sees them.
        if let Some((line, column)) = too_deep_flow(self.src) {
            return Err(self.err_at(
                line,
                column,
                String::new(),
                format!("the document is nested too deeply (more than {MAX_FLOW_DEPTH} `[`/`{{` levels)"),
                None,
            ));
        }
        // Count nodes with aliases expanded first, so that an alias bomb is
        // refused before anything big is built.
        let count = Cell::new(0usize);
        let de = serde_yaml::Deserializer::from_str(self.src);
        if let Err(e) = (Counter { count: &count }).deserialize(de) {
            return Err(self.syntax_error(e));
        }
        let mut v: Value = serde_yaml::from_str(self.src).map_err(|e| self.syntax_error(e))?;
        // `<<: *anchor` merge keys, so faults can share settings.
        v.apply_merge().map_err(|e| {
            let line = self
                .src
                .lines()
                .position(|l| l.contains("<<"))
                .map_or(1, |i| i + 1);
            let column = self
                .src
                .lines()
                .nth(line - 1)
                .and_then(|l| l.find("<<"))
                .map_or(1, |c| c + 1);
            let raw = e.to_string();
            let what = raw.split(" at line ").next().unwrap_or(&raw).to_string();
            self.err_at(
                line,
                column,
                String::new(),
                format!("bad `<<` merge: {what}"),
                Some("expected `<<: *anchor` naming a mapping, or a list of them".into()),
            )
        })?;
        Ok(v)
    }

    fn syntax_error(&self, e: serde_yaml::Error) -> ScenarioError {
        let raw = e.to_string();
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let mk = |line, column, message: &str, hint: Option<&str>| {
            self.err_at(
                line,
                column,
                String::new(),
                message.to_string(),
                hint.map(str::to_string),
            )
        };
        if raw.contains(COUNT_SENTINEL) || raw.contains("repetition limit exceeded") {
            return mk(
                line,
                column,
                &format!("the document holds more than {MAX_NODES} values"),
                Some("expected a small file (an alias `*name` counts its values each time it is used)"),
            );
        }
        if raw.contains("recursion limit exceeded") {
            return mk(
                line,
                column,
                "the document is nested too deeply (more than 128 levels)",
                None,
            );
        }
        if raw.contains("more than one document") {
            let second = self
                .src
                .lines()
                .enumerate()
                .filter(|(_, l)| l.starts_with("---"))
                .map(|(i, _)| i + 1)
                .last()
                .unwrap_or(1);
            return mk(
                second,
                1,
                "the file holds more than one YAML document",
                Some("expected one scenario per file"),
            );
        }
        if raw.contains("EOF while parsing") {
            return mk(
                1,
                1,
                "the scenario file is empty",
                Some("expected a mapping with `name`, `description` and `duration`"),
            );
        }
        // A tab in the indentation of this line or an earlier one.
        for (i, l) in self.src.lines().enumerate().take(line) {
            let indent: String = l.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
            if let Some(col) = indent.find('\t') {
                if l.trim().is_empty() {
                    continue;
                }
                return mk(
                    i + 1,
                    col + 1,
                    "tab character in indentation",
                    Some("YAML indents with spaces only"),
                );
            }
        }
        let problem = raw.split(" at line ").next().unwrap_or(&raw).trim();
        let problem = match problem.split_once(": ") {
            // serde_yaml prefixes messages with the path; keep ours.
            Some((p, m)) if !p.contains(' ') && !m.is_empty() => m,
            _ => problem,
        };
        let char_here = self
            .src
            .lines()
            .nth(line.saturating_sub(1))
            .and_then(|l| l.chars().nth(column.saturating_sub(1)));
        if let Some(k) = problem.strip_prefix("duplicate entry with key ") {
            let k = k.trim_matches('"');
            let (line, column) = second_key(self.src, line, column, k).unwrap_or((line, column));
            return mk(
                line,
                column,
                &format!("`{k}` is given twice in the same mapping"),
                Some("expected each field once"),
            );
        }
        if problem.contains("control characters are not allowed") {
            let (line, column) = first_control_char(self.src).unwrap_or((line, column));
            return mk(
                line,
                column,
                "the file contains control characters",
                Some("expected a YAML scenario; is it a binary file?"),
            );
        }
        // libyaml says what it was parsing and where that started.
        let context = raw.find(", while ").map(|i| {
            let c = &raw[i + 2..];
            let (what, pos) = c.split_once(" at line ").unwrap_or((c, ""));
            (what.to_string(), pos.replace(" column ", ":"))
        });
        if problem.contains("did not find expected ',' or ']'")
            || problem.contains("did not find expected ',' or '}'")
        {
            let (open, close) = if problem.contains(']') {
                ('[', ']')
            } else {
                ('{', '}')
            };
            let opened = context
                .as_ref()
                .and_then(|(_, pos)| pos.split_once(':'))
                .map(|(l, c)| format!(" (opened at line {l}, column {c})"))
                .unwrap_or_default();
            return mk(
                line,
                column,
                &format!("unclosed `{open}`{opened}: expected `,` or `{close}`"),
                Some("quote values that contain `,`, `[`, `]`, `{` or `}`"),
            );
        }
        let (message, hint): (String, Option<&str>) = match problem {
            p if p.contains("found character that cannot start any token") => (
                match char_here {
                    Some(c) => format!("unexpected character `{}`", c.escape_debug()),
                    None => "unexpected character".into(),
                },
                Some("quote values that start with `@`, `` ` ``, `%` or `|`"),
            ),
            p if p.contains("mapping values are not allowed in this context") => (
                "unexpected `:`".into(),
                Some("check the indentation, or quote values that contain `: `"),
            ),
            p if p.contains("did not find expected key") => (
                "bad indentation or a line that is not `key: value`".into(),
                Some("expected `key: value` aligned with the keys above"),
            ),
            p if p.contains("did not find expected '-' indicator") => (
                "bad indentation in a list".into(),
                Some("expected `- ` items aligned with the ones above"),
            ),
            p if p.contains("found unexpected end of stream") => (
                "the file ends inside a quoted string or a `[`/`{` block".into(),
                Some("expected the closing quote or bracket"),
            ),
            p if p.contains("unknown anchor") => (
                "alias to an unknown anchor".into(),
                Some("expected `&name` defined before `*name`"),
            ),
            p => match &context {
                Some((what, pos)) if !pos.is_empty() => (
                    format!(
                        "invalid YAML: {p}, {what} that starts at line {}",
                        pos.replace(':', ", column ")
                    ),
                    None,
                ),
                _ => (format!("invalid YAML: {p}"), None),
            },
        };
        mk(line, column, &message, hint)
    }

    // ---- step 2: structure and typed values --------------------------------

    fn build(&self, root: &Value) -> Result<Scenario, ScenarioError> {
        let top = YPath::root();
        let map = match root {
            Value::Mapping(m) => m,
            Value::Null => {
                return Err(self.err(
                    &top,
                    false,
                    "the scenario file is empty",
                    Some("expected a mapping with `name`, `description` and `duration`".into()),
                ))
            }
            other => {
                return Err(self.err(
                    &top,
                    false,
                    format!(
                        "expected a scenario mapping (`name: ...`), found {}",
                        describe(other)
                    ),
                    None,
                ))
            }
        };
        self.check_keys(map, &top, TOP_KEYS, "the scenario")?;
        for req in ["name", "description", "duration"] {
            if !map.contains_key(req) {
                return Err(self.err(
                    &top,
                    false,
                    format!("the scenario has no `{req}`"),
                    example(req).map(|e| format!("expected e.g. {e}")),
                ));
            }
        }
        let get = |k: &str| map.get(k).unwrap_or(&Value::Null);
        let faults = self.list(get("faults"), &top.key("faults"), "faults")?;
        let expect = self.list(get("expect"), &top.key("expect"), "expectations")?;
        let mut scenario = Scenario {
            name: self.field(&top.key("name"), get("name"))?,
            description: self.field(&top.key("description"), get("description"))?,
            duration: self.field(&top.key("duration"), get("duration"))?,
            seed: self
                .opt_field(&top.key("seed"), map.get("seed"))?
                .unwrap_or(0),
            upstream: self.opt_field(&top.key("upstream"), map.get("upstream"))?,
            extensions: self
                .opt_field(&top.key("extensions"), map.get("extensions"))?
                .unwrap_or(Extensions::Strip),
            resolution: self.opt_field::<Dur>(&top.key("resolution"), map.get("resolution"))?,
            demo_client: self
                .opt_field(&top.key("demo_client"), map.get("demo_client"))?
                .unwrap_or_default(),
            faults: Vec::new(),
            expect: Vec::new(),
        };
        for (i, f) in faults.iter().enumerate() {
            let spec = self.fault(&top.key("faults").index(i), f)?;
            scenario.faults.push(spec);
        }
        for (i, e) in expect.iter().enumerate() {
            let spec = self.expectation(&top.key("expect").index(i), e)?;
            scenario.expect.push(spec);
        }
        Ok(scenario)
    }

    fn list<'v>(
        &self,
        v: &'v Value,
        path: &YPath,
        what: &str,
    ) -> Result<&'v [Value], ScenarioError> {
        match v {
            Value::Null => Ok(&[]),
            Value::Sequence(s) => Ok(s),
            other => Err(self.err(
                path,
                false,
                format!(
                    "{path}: expected a list of {what} (`- kind: ...`), found {}",
                    describe(other)
                ),
                None,
            )),
        }
    }

    fn check_keys(
        &self,
        map: &Mapping,
        path: &YPath,
        allowed: &[&str],
        what: &str,
    ) -> Result<(), ScenarioError> {
        for k in map.keys() {
            let name = key_str(k);
            if !allowed.contains(&name.as_str()) {
                let at = path.key(&name);
                let prefix = if path.0.is_empty() {
                    String::new()
                } else {
                    format!("{path}: ")
                };
                return Err(self.err(
                    &at,
                    true,
                    format!("{prefix}unknown field `{name}` in {what}"),
                    Some(hint_for(&name, allowed)),
                ));
            }
        }
        Ok(())
    }

    /// The kind of a fault or expectation mapping, checked against `kinds`.
    fn kind<'m>(
        &self,
        map: &'m Mapping,
        path: &YPath,
        kinds: &[&str],
        what: &str,
        other_kinds: &[&str],
        other_where: &str,
    ) -> Result<&'m str, ScenarioError> {
        let Some(k) = map.get("kind") else {
            return Err(self.err(
                path,
                false,
                format!("{path}: the {what} has no `kind`"),
                Some(format!("expected `kind:` one of {}", one_of(kinds))),
            ));
        };
        let kp = path.key("kind");
        let Value::String(k) = k else {
            return Err(self.err(
                &kp,
                false,
                format!("{kp}: expected a {what} kind, found {}", describe(k)),
                Some(format!("expected one of {}", one_of(kinds))),
            ));
        };
        if kinds.contains(&k.as_str()) {
            return Ok(k);
        }
        if other_kinds.contains(&k.as_str()) {
            return Err(self.err(
                &kp,
                false,
                format!("`{k}` is not a {what} kind"),
                Some(format!("it is used under `{other_where}`")),
            ));
        }
        Err(self.err(
            &kp,
            false,
            format!("unknown {what} kind `{k}`"),
            Some(hint_for(k, kinds)),
        ))
    }

    fn fault(&self, path: &YPath, v: &Value) -> Result<FaultSpec, ScenarioError> {
        let Value::Mapping(map) = v else {
            return Err(self.err(
                path,
                false,
                format!(
                    "{path}: expected a fault (`kind: partition`, ...), found {}",
                    describe(v)
                ),
                None,
            ));
        };
        let kind = self.kind(
            map,
            path,
            FaultKind::KINDS,
            "fault",
            ExpectKind::KINDS,
            "expect",
        )?;
        let params = fault_params(kind);
        let instant = matches!(kind, "half_close" | "reset" | "close");
        for k in map.keys() {
            let name = key_str(k);
            let at = path.key(&name);
            if name == "duration" && instant {
                return Err(self.err(
                    &at,
                    true,
                    format!(
                        "{path}: `duration` makes no sense for a `{kind}` fault, which acts once"
                    ),
                    Some("remove it (`half_close`, `reset` and `close` are instant)".into()),
                ));
            }
            if FAULT_COMMON.contains(&name.as_str()) || params.contains(&name.as_str()) {
                continue;
            }
            let allowed: Vec<&str> = FAULT_COMMON.iter().chain(params).copied().collect();
            let elsewhere = FaultKind::KINDS
                .iter()
                .any(|k| fault_params(k).contains(&name.as_str()));
            let message = if elsewhere {
                format!("{path}: `{kind}` faults take no `{name}`")
            } else {
                format!("{path}: unknown field `{name}` in a `{kind}` fault")
            };
            let hint = if name == "direction" && params.contains(&"toward") {
                format!("`{kind}` acts on whole connections; choose who gets it with `toward: client|server|both`")
            } else if elsewhere && crate::scenario::error::suggest(&name, &allowed).is_none() {
                format!("`{kind}` takes {}", one_of(&allowed))
            } else {
                hint_for(&name, &allowed)
            };
            return Err(self.err(&at, true, message, Some(hint)));
        }
        if let Some(m) = map.get("match") {
            self.check_match(&path.key("match"), m)?;
        }
        // `Retry-After: 1` is a natural way to write a header: take scalars as text.
        let mut owned;
        let mut map = map;
        if let Some(Value::Mapping(h)) = map.get("headers") {
            let mut h2 = Mapping::new();
            for (hk, hv) in h {
                let hv = match hv {
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(b.to_string()),
                    other => other.clone(),
                };
                h2.insert(Value::String(key_str(hk)), hv);
            }
            owned = map.clone();
            owned.insert("headers".into(), Value::Mapping(h2));
            map = &owned;
        }
        self.typed::<FaultSpec>(path, map, kind, "fault")
    }

    fn expectation(&self, path: &YPath, v: &Value) -> Result<ExpectSpec, ScenarioError> {
        let Value::Mapping(map) = v else {
            return Err(self.err(
                path,
                false,
                format!(
                    "{path}: expected an expectation (`kind: detects`, ...), found {}",
                    describe(v)
                ),
                None,
            ));
        };
        let kind = self.kind(
            map,
            path,
            ExpectKind::KINDS,
            "expectation",
            FaultKind::KINDS,
            "faults",
        )?;
        let params = expect_params(kind);
        let allowed: Vec<&str> = EXPECT_COMMON.iter().chain(params).copied().collect();
        for k in map.keys() {
            let name = key_str(k);
            if !allowed.contains(&name.as_str()) {
                let elsewhere = ExpectKind::KINDS
                    .iter()
                    .any(|k| expect_params(k).contains(&name.as_str()));
                let message = if elsewhere {
                    format!("{path}: `{kind}` expectations take no `{name}`")
                } else {
                    format!("{path}: unknown field `{name}` in a `{kind}` expectation")
                };
                let hint =
                    if elsewhere && crate::scenario::error::suggest(&name, &allowed).is_none() {
                        format!("`{kind}` takes {}", one_of(&allowed))
                    } else {
                        hint_for(&name, &allowed)
                    };
                return Err(self.err(&path.key(&name), true, message, Some(hint)));
            }
        }
        if let Some(m) = map.get("match") {
            self.check_match(&path.key("match"), m)?;
        }
        self.typed::<ExpectSpec>(path, map, kind, "expectation")
    }

    fn check_match(&self, path: &YPath, v: &Value) -> Result<(), ScenarioError> {
        let Value::Mapping(map) = v else {
            return Err(self.err(
                path,
                false,
                format!(
                    "{path}: expected match conditions such as `{{opcode: ping}}`, found {}",
                    describe(v)
                ),
                None,
            ));
        };
        self.check_keys(map, path, MATCH_KEYS, "a `match`")?;
        if let Some(any) = map.get("any") {
            let ap = path.key("any");
            let Value::Sequence(alts) = any else {
                return Err(self.err(
                    &ap,
                    false,
                    format!(
                        "{ap}: expected a list of match conditions, found {}",
                        describe(any)
                    ),
                    Some("e.g. `any: [{opcode: ping}, {text: ping}]`".into()),
                ));
            };
            for (j, alt) in alts.iter().enumerate() {
                self.check_match(&ap.index(j), alt)?;
            }
        }
        Ok(())
    }

    /// Converts a checked fault/expectation mapping; on failure finds the field.
    fn typed<T: DeserializeOwned>(
        &self,
        path: &YPath,
        map: &Mapping,
        kind: &str,
        what: &str,
    ) -> Result<T, ScenarioError> {
        let e = match serde_yaml::from_value::<T>(Value::Mapping(map.clone())) {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        // Find the field at fault: each field alone, with the kind.
        for (k, v) in map {
            let name = key_str(k);
            if name == "kind" {
                continue;
            }
            let mut probe = Mapping::new();
            probe.insert("kind".into(), kind.into());
            probe.insert(k.clone(), v.clone());
            if let Err(pe) = serde_yaml::from_value::<T>(Value::Mapping(probe)) {
                if is_missing_field(&pe).is_some() {
                    continue;
                }
                if name == "match" {
                    return Err(self.match_error(&path.key("match"), v, pe));
                }
                let cands = variants::<T>(|bogus| {
                    let mut m = Mapping::new();
                    m.insert("kind".into(), kind.into());
                    m.insert(k.clone(), bogus);
                    Value::Mapping(m)
                });
                return Err(self.value_error_with(&path.key(&name), v, &pe, &cands));
            }
        }
        if let Some(field) = is_missing_field(&e) {
            return Err(self.err(
                path,
                false,
                format!("{path}: a `{kind}` {what} needs `{field}`"),
                example(&field).map(|e| format!("e.g. {e}")),
            ));
        }
        Err(self.value_error(path, &Value::Mapping(map.clone()), &e))
    }

    fn match_error(&self, path: &YPath, v: &Value, outer: serde_yaml::Error) -> ScenarioError {
        if let Value::Mapping(map) = v {
            for (k, kv) in map {
                let name = key_str(k);
                let mut probe = Mapping::new();
                probe.insert(k.clone(), kv.clone());
                if let Err(pe) = serde_yaml::from_value::<Match>(Value::Mapping(probe)) {
                    if let (true, Value::Sequence(alts)) = (name == "any", kv) {
                        for (j, alt) in alts.iter().enumerate() {
                            if let Err(ae) = serde_yaml::from_value::<Match>(alt.clone()) {
                                return self.match_error(&path.key("any").index(j), alt, ae);
                            }
                        }
                    }
                    return self.value_error(&path.key(&name), kv, &pe);
                }
            }
        }
        self.value_error(path, v, &outer)
    }

    fn field<T: DeserializeOwned>(&self, path: &YPath, v: &Value) -> Result<T, ScenarioError> {
        serde_yaml::from_value::<T>(v.clone()).map_err(|e| {
            let cands = variants::<T>(|bogus| bogus);
            self.value_error_with(path, v, &e, &cands)
        })
    }

    fn opt_field<T: DeserializeOwned>(
        &self,
        path: &YPath,
        v: Option<&Value>,
    ) -> Result<Option<T>, ScenarioError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => self.field(path, v).map(Some),
        }
    }

    /// Rewrites serde's message for the value at `path` into a readable one.
    fn value_error(&self, path: &YPath, v: &Value, e: &serde_yaml::Error) -> ScenarioError {
        self.value_error_with(path, v, e, &[])
    }

    /// As `value_error`, knowing the valid names when the value is a name.
    fn value_error_with(
        &self,
        path: &YPath,
        v: &Value,
        e: &serde_yaml::Error,
        cands: &[String],
    ) -> ScenarioError {
        let field = match path.0.last() {
            Some(Seg::Key(k)) => k.as_str(),
            _ => "",
        };
        let raw = e.to_string();
        let raw = raw.split(" at line ").next().unwrap_or(&raw);
        let (message, hint) = if !cands.is_empty() && raw.contains("expected string or map") {
            let c: Vec<&str> = cands.iter().map(String::as_str).collect();
            (
                format!("expected {}, found {}", one_of(&c), describe(v)),
                None,
            )
        } else {
            rewrite(raw, field, v)
        };
        self.err(path, false, format!("{path}: {message}"), hint)
    }
}

/// The variant names serde lists when given a name that is not one.
fn variants<T: DeserializeOwned>(wrap: impl Fn(Value) -> Value) -> Vec<String> {
    let bogus = Value::String("\u{1}".into());
    match serde_yaml::from_value::<T>(wrap(bogus)) {
        Err(e) => {
            let m = e.to_string();
            match m.split_once("unknown variant `\u{1}`, expected ") {
                Some((_, tail)) => tail
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect(),
                None => Vec::new(),
            }
        }
        Ok(_) => Vec::new(),
    }
}

/// serde's wording → ours.
fn rewrite(raw: &str, field: &str, v: &Value) -> (String, Option<String>) {
    if let Some(rest) = raw
        .strip_prefix("invalid type: ")
        .or_else(|| raw.strip_prefix("invalid value: "))
    {
        let (unexp, exp) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return (
            format!(
                "expected {}, found {}",
                expected_desc(exp),
                found_desc(unexp, v)
            ),
            None,
        );
    }
    if let Some(rest) = raw.strip_prefix("unknown variant `") {
        let (word, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let cands: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        return (
            format!("unknown value `{word}` for `{field}`"),
            Some(hint_for(word, &cands)),
        );
    }
    if raw.starts_with("data did not match any variant of untagged enum") {
        let (what, cands): (&str, &[&str]) = match field {
            "connections" => (
                "`all`, `open`, `new` or a list of connection numbers such as `[1, 3]`",
                CONN_WHICH,
            ),
            "opcode" => (
                "an opcode (`text`, `binary`, `ping`, `pong`, `close`, `continuation`) or a list of them",
                OPCODES,
            ),
            _ => ("a different value", &[]),
        };
        let hint = match v {
            Value::String(s) => {
                crate::scenario::error::suggest(s, cands).map(|c| format!("did you mean `{c}`?"))
            }
            _ => None,
        };
        return (format!("expected {what}, found {}", describe(v)), hint);
    }
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let (word, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let cands: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        return (
            format!("unknown field `{word}`"),
            Some(hint_for(word, &cands)),
        );
    }
    split_hint(raw)
}

/// Our value parsers put their hint inline (`…; write e.g. `3s``); move it
/// after the position.
fn split_hint(raw: &str) -> (String, Option<String>) {
    if let Some(i) = raw.rfind("; ") {
        return (raw[..i].to_string(), Some(raw[i + 2..].to_string()));
    }
    if let Some(i) = raw.rfind(", expected ") {
        return (raw[..i].to_string(), Some(raw[i + 2..].to_string()));
    }
    if let Some(i) = raw.rfind(", e.g. ") {
        return (raw[..i].to_string(), Some(raw[i + 2..].to_string()));
    }
    if raw.ends_with(')') {
        if let Some(i) = raw.rfind(" (") {
            return (
                raw[..i].to_string(),
                Some(raw[i + 2..raw.len() - 1].to_string()),
            );
        }
    }
    (raw.to_string(), None)
}

fn expected_desc(exp: &str) -> String {
    match exp {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a whole number, 0 or more".into(),
        "i64" | "i32" => "a whole number".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" => "`true` or `false`".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "struct Match" => "match conditions such as `{opcode: ping}`".into(),
        "" => "something else".into(),
        other => other.to_string(),
    }
}

fn found_desc(unexp: &str, v: &Value) -> String {
    if let Some(s) = unexp.strip_prefix("string ") {
        let s = s.trim_matches('"');
        return format!("`{}`", short(s));
    }
    for p in ["integer ", "floating point ", "boolean "] {
        if let Some(s) = unexp.strip_prefix(p) {
            return s.to_string();
        }
    }
    match unexp {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" => "an empty value".into(),
        _ => describe(v),
    }
}

/// Where `key` appears the second time in the block mapping starting at
/// (`line`, `column`).
fn second_key(src: &str, line: usize, column: usize, key: &str) -> Option<(usize, usize)> {
    let indent = column.checked_sub(1)?;
    let mut seen = 0;
    for (i, l) in src.lines().enumerate().skip(line.checked_sub(1)?) {
        let chars: Vec<char> = l.chars().collect();
        let lead = chars.iter().take_while(|c| **c == ' ').count();
        let content = l.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if i + 1 > line && lead < indent {
            break;
        }
        let head: String = chars.iter().take(indent).collect();
        let rest: String = chars.iter().skip(indent).collect();
        let bare = rest.strip_prefix(key);
        if head.chars().all(|c| c == ' ' || c == '-')
            && bare.is_some_and(|r| r.trim_start().starts_with(':'))
        {
            seen += 1;
            if seen == 2 {
                return Some((i + 1, column));
            }
        }
    }
    None
}

/// Deepest `[`/`{` nesting accepted.
const MAX_FLOW_DEPTH: usize = 64;

/// Where `[`/`{` nesting first goes beyond [`MAX_FLOW_DEPTH`], if it does.
/// A light scan: quotes count only where a quoted scalar can start, and
/// comments are skipped; brackets inside plain text may count, which only
/// matters for text with dozens of unclosed brackets.
fn too_deep_flow(src: &str) -> Option<(usize, usize)> {
    let (mut line, mut col) = (1usize, 0usize);
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    let mut prev = '\n'; // previous non-space character ('\n' at line start)
    let mut after_space = true;
    for c in src.chars() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            comment = false;
            if quote.is_none() {
                prev = '\n';
            }
            after_space = true;
            continue;
        }
        if comment {
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
                prev = c;
            }
            continue;
        }
        match c {
            '#' if after_space => comment = true,
            '\'' | '"' if matches!(prev, '\n' | ':' | '-' | '[' | '{' | ',' | '?') => {
                quote = Some(c)
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some((line, col));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        after_space = c == ' ' || c == '\t';
        if !after_space {
            prev = c;
        }
    }
    None
}

/// The 1-based position of the first control character, if any.
fn first_control_char(src: &str) -> Option<(usize, usize)> {
    for (i, line) in src.split('\n').enumerate() {
        for (j, c) in line.chars().enumerate() {
            if c.is_control() && c != '\t' && c != '\r' {
                return Some((i + 1, j + 1));
            }
        }
    }
    None
}

// ---- the node counter (alias bombs) ----------------------------------------

const COUNT_SENTINEL: &str = "\u{0}flatline-too-many-nodes\u{0}";

#[derive(Clone, Copy)]
struct Counter<'a> {
    count: &'a Cell<usize>,
}

impl Counter<'_> {
    fn bump<E: de::Error>(&self) -> Result<(), E> {
        let n = self.count.get() + 1;
        self.count.set(n);
        if n > MAX_NODES {
            return Err(E::custom(COUNT_SENTINEL));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Counter<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! count_scalar {
    ($($name:ident: $t:ty),*) => {
        $(fn $name<E: de::Error>(self, _v: $t) -> Result<(), E> { self.bump() })*
    };
}

impl<'de> Visitor<'de> for Counter<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML")
    }
    count_scalar!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.bump()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.bump()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess;
        self.bump()?;
        let (_, variant): (de::IgnoredAny, _) = data.variant()?;
        variant.newtype_variant_seed(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.bump()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.bump()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe<T: DeserializeOwned>(kind: &str, key: &str) -> String {
        let mut m = Mapping::new();
        m.insert("kind".into(), kind.into());
        m.insert(key.into(), Value::String("\u{1}".into()));
        match serde_yaml::from_value::<T>(Value::Mapping(m)) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    /// The field tables above agree with the model: every listed field is
    /// known to serde for its kind.
    #[test]
    fn field_tables_match_the_model() {
        for kind in FaultKind::KINDS {
            assert!(!fault_params(kind).is_empty(), "{kind}");
            for key in fault_params(kind).iter().chain(FAULT_COMMON) {
                let e = probe::<FaultSpec>(kind, key);
                assert!(!e.contains("unknown field"), "{kind}.{key}: {e}");
            }
        }
        for kind in ExpectKind::KINDS {
            for key in expect_params(kind).iter().chain(EXPECT_COMMON) {
                let e = probe::<ExpectSpec>(kind, key);
                assert!(!e.contains("unknown field"), "{kind}.{key}: {e}");
            }
        }
        for key in MATCH_KEYS {
            let mut m = Mapping::new();
            m.insert((*key).into(), Value::String("\u{1}".into()));
            let e = serde_yaml::from_value::<Match>(Value::Mapping(m))
                .map(|_| ())
                .err();
            assert!(!format!("{e:?}").contains("unknown field"), "{key}");
        }
    }

    #[test]
    fn long_chains_of_faults_are_fine() {
        let mut src = String::from("name: chain\ndescription: x\nduration: 1h\nfaults:\n");
        src.push_str("  - {name: f0, kind: delay, latency: 1ms, duration: 1ms}\n");
        for i in 1..8_000 {
            src.push_str(&format!(
                "  - {{name: f{i}, kind: delay, latency: 1ms, at: f{}.end, duration: 1ms}}\n",
                i - 1
            ));
        }
        let l = parse_str(&src, "chain.yaml").expect("valid");
        assert_eq!(l.scenario.faults.len(), 8_000);
        assert!(l.warnings.is_empty());
        // Close the chain into a cycle: refused, at the lowest fault in it.
        let cyc = src.replacen("duration: 1ms}", "at: f7999, duration: 1ms}", 1);
        let e = parse_str(&cyc, "chain.yaml").expect_err("cycle");
        assert_eq!(e.path(), Some("faults[0].at"), "{e}");
    }
}
