//! The shape of a scenario: which fields each part may hold, which are
//! required, which are lists, and the kinds of faults and expectations (from
//! the tables in `kinds.rs`), with "did you mean" suggestions. It reads the
//! [`Node`] tree only; the values themselves are converted in `convert/`.

use super::error::{hint_for, one_of, suggest, ScenarioError};
use super::kinds::KindTable;
use super::node::{describe, key_str, Node};
use super::parse::Cx;
use super::yaml::YPath;

type Res<T> = Result<T, ScenarioError>;

/// The fields of the scenario itself.
const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "duration",
    "seed",
    "upstream",
    "extensions",
    "network",
    "resolution",
    "demo_client",
    "clients",
    "faults",
    "expect",
];
const REQUIRED: &[&str] = &["name", "description", "duration"];
/// The conditions of a `match`.
pub(crate) const MATCH_KEYS: &[&str] = &["opcode", "text", "regex", "min_len", "max_len", "any"];

impl Cx<'_> {
    /// The root is a mapping with known fields and the required ones.
    pub(crate) fn root_shape<'n>(&self, root: &'n Node) -> Res<&'n [(Node, Node)]> {
        let top = YPath::root();
        let map = match root {
            Node::Map(m) => m,
            Node::Null => {
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
        for req in REQUIRED {
            if root.get(req).is_none() {
                return Err(self.err(
                    &top,
                    false,
                    format!("the scenario has no `{req}`"),
                    example(req).map(|e| format!("expected e.g. {e}")),
                ));
            }
        }
        Ok(map)
    }

    /// A top-level list (absent or empty: no items).
    pub(crate) fn list<'v>(
        &self,
        v: Option<&'v Node>,
        path: &YPath,
        what: &str,
    ) -> Res<&'v [Node]> {
        match v {
            None | Some(Node::Null) => Ok(&[]),
            Some(Node::Seq(s)) => Ok(s),
            Some(other) => Err(self.err(
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

    /// Only `allowed` keys in `map`.
    fn check_keys(
        &self,
        map: &[(Node, Node)],
        path: &YPath,
        allowed: &[&str],
        what: &str,
    ) -> Res<()> {
        for (k, _) in map {
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

    /// A fault or expectation item: a mapping of a known kind (from
    /// `table`; `other` is the other family, for a kind under the wrong
    /// list) with only that kind's fields. Returns the kind.
    pub(crate) fn item_shape<'n>(
        &self,
        path: &YPath,
        v: &'n Node,
        table: &KindTable,
        other: &KindTable,
    ) -> Res<&'n str> {
        let Node::Map(map) = v else {
            let example = table.kinds.first().copied().unwrap_or_default();
            return Err(self.err(
                path,
                false,
                format!(
                    "{path}: expected {} {} (`kind: {example}`, ...), found {}",
                    table.article,
                    table.what,
                    describe(v)
                ),
                None,
            ));
        };
        let kind = self.kind(v, path, table, other)?;
        for (k, _) in map {
            self.item_field(path, &key_str(k), kind, table)?;
        }
        if let Some(m) = v.get("match") {
            self.match_shape(&path.key("match"), m)?;
        }
        Ok(kind)
    }

    /// The `kind` of an item, checked against `table`.
    fn kind<'n>(
        &self,
        v: &'n Node,
        path: &YPath,
        table: &KindTable,
        other: &KindTable,
    ) -> Res<&'n str> {
        let what = table.what;
        let Some(k) = v.get("kind") else {
            return Err(self.err(
                path,
                false,
                format!("{path}: the {what} has no `kind`"),
                Some(format!("expected `kind:` one of {}", one_of(table.kinds))),
            ));
        };
        let kp = path.key("kind");
        let Node::Str(k) = k else {
            return Err(self.err(
                &kp,
                false,
                format!("{kp}: expected a {what} kind, found {}", describe(k)),
                Some(format!("expected one of {}", one_of(table.kinds))),
            ));
        };
        if table.kinds.contains(&k.as_str()) {
            return Ok(k);
        }
        if other.kinds.contains(&k.as_str()) {
            return Err(self.err(
                &kp,
                false,
                format!("`{k}` is not a {what} kind"),
                Some(format!("it is used under `{}`", other.section)),
            ));
        }
        Err(self.err(
            &kp,
            false,
            format!("unknown {what} kind `{k}`"),
            Some(hint_for(k, table.kinds)),
        ))
    }

    /// Field `name` of a `kind` item is one it takes.
    fn item_field(&self, path: &YPath, name: &str, kind: &str, table: &KindTable) -> Res<()> {
        let what = table.what;
        let params = (table.fields)(kind);
        let at = path.key(name);
        if name == "duration" && (table.instant)(kind) {
            return Err(self.err(
                &at,
                true,
                format!("{path}: `duration` makes no sense for a `{kind}` {what}, which acts once"),
                Some(format!(
                    "remove it ({} are instant)",
                    all_of(&table.instant_kinds())
                )),
            ));
        }
        if table.common.contains(&name) || params.contains(&name) {
            return Ok(());
        }
        let allowed: Vec<&str> = table.common.iter().chain(params).copied().collect();
        let elsewhere = table.any_takes(name);
        let message = if elsewhere {
            format!("{path}: `{kind}` {what}s take no `{name}`")
        } else {
            format!("{path}: unknown field `{name}` in a `{kind}` {what}")
        };
        let hint = if name == "direction" && params.contains(&"toward") {
            format!("`{kind}` acts on whole connections; choose who gets it with `toward: client|server|both`")
        } else if elsewhere && suggest(name, &allowed).is_none() {
            format!("`{kind}` takes {}", one_of(&allowed))
        } else {
            hint_for(name, &allowed)
        };
        Err(self.err(&at, true, message, Some(hint)))
    }

    /// A `match`: a mapping of known conditions; `any` a list of matches.
    fn match_shape(&self, path: &YPath, v: &Node) -> Res<()> {
        let Node::Map(map) = v else {
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
        if let Some(any) = v.get("any") {
            let ap = path.key("any");
            let Node::Seq(alts) = any else {
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
                self.match_shape(&ap.index(j), alt)?;
            }
        }
        Ok(())
    }
}

/// `` `a`, `b` and `c` ``
fn all_of(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

/// An example of a field, for "needs `x`" messages.
pub(crate) fn example(field: &str) -> Option<&'static str> {
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
