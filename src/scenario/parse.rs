//! Loading a scenario, layer by layer:
//!
//! 1. `yaml/`: the text becomes a [`Node`] tree (size, depth, aliases,
//!    duplicate keys and syntax checked; the only code that knows the YAML
//!    library);
//! 2. `shape.rs`: known fields and kinds, required fields, lists;
//! 3. `convert/`: the typed model, each failure pinned to its field;
//! 4. `validate/`: what needs the whole scenario (names, references, cycles,
//!    ranges), and the warnings.
//!
//! Every error is a [`ScenarioError`] naming file, line and column.

use super::error::{ScenarioError, MAX_FILE_BYTES};
use super::kinds::{EXPECTATIONS, FAULTS};
use super::model::{ExpectSpec, Extensions, FaultSpec, Scenario};
use super::node::Node;
use super::values::Dur;
use super::yaml::{self, locate, YPath, YamlError};
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
    let root = yaml::read(src).map_err(|e| cx.yaml_error(e))?;
    let scenario = cx.build(&root)?;
    let warnings = super::validate::validate(&scenario, &cx)?;
    Ok(Loaded { scenario, warnings })
}

/// The source and its name, for positions in messages.
pub(crate) struct Cx<'a> {
    pub src: &'a str,
    pub file: &'a str,
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
        ScenarioError::Invalid {
            file: self.file.to_string(),
            line,
            column,
            path: path.to_string(),
            message: message.into(),
            hint,
        }
    }

    /// A warning line about the node `path`.
    pub(crate) fn warn(&self, path: &YPath, message: impl fmt::Display) -> String {
        let (line, column) = locate(self.src, path, false);
        format!("{message} at {}:{line}:{column}", self.file)
    }

    fn yaml_error(&self, e: YamlError) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.file.to_string(),
            line: e.line,
            column: e.column,
            path: String::new(),
            message: e.kind.message(),
            hint: e.kind.hint().map(str::to_string),
        }
    }

    /// Shape and conversion, part by part: the scenario's fields, then each
    /// fault, then each expectation (the first error found is reported).
    fn build(&self, root: &Node) -> Result<Scenario, ScenarioError> {
        let top = YPath::root();
        self.root_shape(root)?;
        let get = |k: &str| root.get(k).unwrap_or(&Node::Null);
        let faults = self.list(root.get("faults"), &top.key("faults"), "faults")?;
        let expect = self.list(root.get("expect"), &top.key("expect"), "expectations")?;
        let mut scenario = Scenario {
            name: self.field(&top.key("name"), get("name"))?,
            description: self.field(&top.key("description"), get("description"))?,
            duration: self.field(&top.key("duration"), get("duration"))?,
            seed: self
                .opt_field(&top.key("seed"), root.get("seed"))?
                .unwrap_or(0),
            upstream: self.opt_field(&top.key("upstream"), root.get("upstream"))?,
            extensions: self
                .opt_field(&top.key("extensions"), root.get("extensions"))?
                .unwrap_or(Extensions::Strip),
            network: self
                .opt_field(&top.key("network"), root.get("network"))?
                .unwrap_or_default(),
            resolution: self.opt_field::<Dur>(&top.key("resolution"), root.get("resolution"))?,
            demo_client: self
                .opt_field(&top.key("demo_client"), root.get("demo_client"))?
                .unwrap_or_default(),
            clients: self.opt_field(&top.key("clients"), root.get("clients"))?,
            faults: Vec::new(),
            expect: Vec::new(),
        };
        for (i, f) in faults.iter().enumerate() {
            let path = top.key("faults").index(i);
            let kind = self.item_shape(&path, f, &FAULTS, &EXPECTATIONS)?;
            let spec: FaultSpec = self.typed(&path, f, kind, FAULTS.what)?;
            scenario.faults.push(spec);
        }
        for (i, e) in expect.iter().enumerate() {
            let path = top.key("expect").index(i);
            let kind = self.item_shape(&path, e, &EXPECTATIONS, &FAULTS)?;
            let spec: ExpectSpec = self.typed(&path, e, kind, EXPECTATIONS.what)?;
            scenario.expect.push(spec);
        }
        Ok(scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::convert::{from_node, DeError};
    use crate::scenario::kinds::KindTable;
    use crate::scenario::model::Match;
    use crate::scenario::shape::MATCH_KEYS;
    use serde::de::DeserializeOwned;

    /// Converting `{kind, key: <not a valid value>}` does not complain
    /// that `key` is unknown.
    fn known<T: DeserializeOwned>(kind: Option<&str>, key: &str) -> bool {
        let mut m = Vec::new();
        if let Some(kind) = kind {
            m.push((Node::Str("kind".into()), Node::Str(kind.into())));
        }
        m.push((Node::Str(key.into()), Node::Str("\u{1}".into())));
        !matches!(
            from_node::<T>(&Node::Map(m)),
            Err(DeError::UnknownField { .. })
        )
    }

    fn table_matches<T: DeserializeOwned>(table: &KindTable) {
        for kind in table.kinds {
            for key in (table.fields)(kind).iter().chain(table.common) {
                assert!(known::<T>(Some(kind), key), "{kind}.{key}");
            }
        }
    }

    /// The field tables agree with the model: every listed field is known
    /// to serde for its kind.
    #[test]
    fn field_tables_match_the_model() {
        for kind in FAULTS.kinds {
            assert!(!(FAULTS.fields)(kind).is_empty(), "{kind}");
        }
        table_matches::<FaultSpec>(&FAULTS);
        table_matches::<ExpectSpec>(&EXPECTATIONS);
        for key in MATCH_KEYS {
            assert!(known::<Match>(None, key), "{key}");
        }
        // And the probe can fail: an unknown field is reported as one.
        assert!(!known::<Match>(None, "opcdoe"));
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
