//! Conversion of checked nodes into the typed model (serde does the work,
//! over the typed deserializer in `de.rs`). When a conversion fails, each
//! field is converted alone to find the one at fault, so the message can
//! name it and point at it; the message is built from the typed
//! [`DeError`], never from serde's wording.

mod de;

use super::error::{hint_for, one_of, suggest, ScenarioError};
use super::model::Match;
use super::node::{describe, float_text, key_str, short, Node};
use super::parse::Cx;
use super::shape::example;
use super::yaml::{Seg, YPath};
use de::Found;
pub(crate) use de::{from_node, DeError};
use serde::de::DeserializeOwned;

const OPCODES: &[&str] = &["text", "binary", "ping", "pong", "close", "continuation"];
const CONN_WHICH: &[&str] = &["all", "open", "new"];

impl Cx<'_> {
    /// Converts the value of one field.
    pub(crate) fn field<T: DeserializeOwned>(
        &self,
        path: &YPath,
        v: &Node,
    ) -> Result<T, ScenarioError> {
        from_node::<T>(v).map_err(|e| {
            let cands = variants::<T>(|bogus| bogus);
            self.value_error(path, v, &e, &cands)
        })
    }

    /// Converts an optional field (absent or empty: `None`).
    pub(crate) fn opt_field<T: DeserializeOwned>(
        &self,
        path: &YPath,
        v: Option<&Node>,
    ) -> Result<Option<T>, ScenarioError> {
        match v {
            None | Some(Node::Null) => Ok(None),
            Some(v) => self.field(path, v).map(Some),
        }
    }

    /// Converts a checked fault or expectation mapping of kind `kind`; on
    /// failure finds the field at fault.
    pub(crate) fn typed<T: DeserializeOwned>(
        &self,
        path: &YPath,
        map: &Node,
        kind: &str,
        what: &str,
    ) -> Result<T, ScenarioError> {
        let e = match from_node::<T>(map) {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        // Find the field at fault: each field alone, with the kind.
        let with_kind = |k: &Node, v: Node| {
            Node::Map(vec![
                (Node::Str("kind".into()), Node::Str(kind.into())),
                (k.clone(), v),
            ])
        };
        for (k, v) in map.as_map().unwrap_or_default() {
            let name = key_str(k);
            if name == "kind" {
                continue;
            }
            match from_node::<T>(&with_kind(k, v.clone())) {
                Ok(_) | Err(DeError::MissingField(_)) => continue,
                Err(pe) if name == "match" => {
                    return Err(self.match_error(&path.key("match"), v, pe))
                }
                Err(pe) => {
                    let cands = variants::<T>(|bogus| with_kind(k, bogus));
                    return Err(self.value_error(&path.key(&name), v, &pe, &cands));
                }
            }
        }
        if let DeError::MissingField(field) = e {
            return Err(self.err(
                path,
                false,
                format!("{path}: a `{kind}` {what} needs `{field}`"),
                example(field).map(|e| format!("e.g. {e}")),
            ));
        }
        Err(self.value_error(path, map, &e, &[]))
    }

    /// The condition of a `match` at fault (inside `any` too).
    fn match_error(&self, path: &YPath, v: &Node, outer: DeError) -> ScenarioError {
        for (k, kv) in v.as_map().unwrap_or_default() {
            let name = key_str(k);
            let Err(pe) = from_node::<Match>(&Node::Map(vec![(k.clone(), kv.clone())])) else {
                continue;
            };
            if let (true, Node::Seq(alts)) = (name == "any", kv) {
                for (j, alt) in alts.iter().enumerate() {
                    if let Err(ae) = from_node::<Match>(alt) {
                        return self.match_error(&path.key("any").index(j), alt, ae);
                    }
                }
            }
            return self.value_error(&path.key(&name), kv, &pe, &[]);
        }
        self.value_error(path, v, &outer, &[])
    }

    /// The message for `e` about the value `v` at `path`; `cands` are the
    /// valid names when the value is a name.
    fn value_error(&self, path: &YPath, v: &Node, e: &DeError, cands: &[String]) -> ScenarioError {
        let field = match path.0.last() {
            Some(Seg::Key(k)) => k.as_str(),
            _ => "",
        };
        let (message, hint) = message(e, field, v, cands);
        self.err(path, false, format!("{path}: {message}"), hint)
    }
}

/// The message and hint for `e`, about the value `v` of `field`.
fn message(e: &DeError, field: &str, v: &Node, cands: &[String]) -> (String, Option<String>) {
    match e {
        DeError::Invalid { .. } | DeError::NotAName { .. } if !cands.is_empty() => {
            let c: Vec<&str> = cands.iter().map(String::as_str).collect();
            (
                format!("expected {}, found {}", one_of(&c), describe(v)),
                None,
            )
        }
        DeError::NotAName { expected, .. } => (
            format!("expected {}, found {}", one_of(expected), describe(v)),
            None,
        ),
        DeError::Invalid { found, expected } => (
            format!(
                "expected {}, found {}",
                expected_desc(expected),
                found_desc(found, v)
            ),
            None,
        ),
        DeError::UnknownVariant { variant, expected } => (
            format!("unknown value `{variant}` for `{field}`"),
            Some(hint_for(variant, expected)),
        ),
        DeError::UnknownField { field, expected } => (
            format!("unknown field `{field}`"),
            Some(hint_for(field, expected)),
        ),
        DeError::MissingField(f) => (format!("`{f}` is missing"), None),
        // The untagged selectors fail as a whole: say what they take.
        DeError::Custom(_) if matches!(field, "connections" | "opcode") => untagged(field, v),
        DeError::Custom(m) => split_hint(m),
    }
}

/// `connections` and `opcode` take a name or a list.
fn untagged(field: &str, v: &Node) -> (String, Option<String>) {
    let (what, cands): (&str, &[&str]) = if field == "connections" {
        (
            "`all`, `open`, `new` or a list of connection numbers such as `[1, 3]`",
            CONN_WHICH,
        )
    } else {
        (
            "an opcode (`text`, `binary`, `ping`, `pong`, `close`, `continuation`) or a list of them",
            OPCODES,
        )
    };
    let hint = match v {
        Node::Str(s) => suggest(s, cands).map(|c| format!("did you mean `{c}`?")),
        _ => None,
    };
    (format!("expected {what}, found {}", describe(v)), hint)
}

/// The names serde accepts for the enum field that `wrap` puts a value in,
/// learnt by giving it a name that is none of them.
fn variants<T: DeserializeOwned>(wrap: impl Fn(Node) -> Node) -> Vec<String> {
    let bogus = Node::Str("\u{1}".into());
    match from_node::<T>(&wrap(bogus)) {
        Err(DeError::UnknownVariant { expected, .. }) => {
            expected.iter().map(|s| s.to_string()).collect()
        }
        _ => Vec::new(),
    }
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

/// serde's name for a type → ours.
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

fn found_desc(found: &Found, v: &Node) -> String {
    match found {
        Found::Str(s) => format!("`{}`", short(s)),
        Found::Unsigned(n) => format!("`{n}`"),
        Found::Signed(n) => format!("`{n}`"),
        Found::Float(f) => format!("`{}`", float_text(*f)),
        Found::Bool(b) => format!("`{b}`"),
        Found::Seq => "a list".into(),
        Found::Map => "a mapping".into(),
        Found::Unit => "an empty value".into(),
        Found::Other(_) => describe(v),
    }
}
