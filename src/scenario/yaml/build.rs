//! Building the [`Node`] tree from the YAML parser's events, with the limits
//! checked as it goes: at most [`MAX_NODES`] values with aliases expanded
//! (so an alias bomb is refused before anything big is built), at most
//! [`MAX_DEPTH`] levels, and each key once per mapping. Then `<<` merges.

use super::super::node::{key_str, Node};
use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use std::cell::{Cell, RefCell};
use std::fmt;

/// Most values (after expanding aliases) a scenario file may hold.
pub(crate) const MAX_NODES: usize = 100_000;
/// Deepest nesting accepted (the YAML parser's own limit is 128).
pub(crate) const MAX_DEPTH: usize = 128;

/// Why building stopped, when it was the builder's decision (the position
/// comes with the parser's error that carried it out).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    TooManyNodes,
    TooDeep,
    DuplicateKey(String),
}

/// The builder's state, shared by the nested visitors.
#[derive(Default)]
pub(crate) struct Limits {
    count: Cell<usize>,
    depth: Cell<usize>,
    /// Set when the builder (not the parser) refused the document.
    pub refusal: RefCell<Option<Refusal>>,
    /// Keep the last of duplicate keys instead of refusing them.
    pub duplicates_allowed: bool,
}

impl Limits {
    pub fn new(duplicates_allowed: bool) -> Limits {
        Limits {
            duplicates_allowed,
            ..Limits::default()
        }
    }

    fn refuse<E: de::Error>(&self, why: Refusal) -> E {
        *self.refusal.borrow_mut() = Some(why);
        E::custom("refused by the scenario reader")
    }

    fn bump<E: de::Error>(&self) -> Result<(), E> {
        let n = self.count.get() + 1;
        self.count.set(n);
        if n > MAX_NODES {
            return Err(self.refuse(Refusal::TooManyNodes));
        }
        Ok(())
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        let d = self.depth.get() + 1;
        self.depth.set(d);
        if d > MAX_DEPTH {
            return Err(self.refuse(Refusal::TooDeep));
        }
        Ok(())
    }

    fn leave(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }
}

/// Builds one node (and everything under it).
#[derive(Clone, Copy)]
pub(crate) struct Builder<'a> {
    pub limits: &'a Limits,
}

impl<'de> DeserializeSeed<'de> for Builder<'_> {
    type Value = Node;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Builder<'_> {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        self.limits.bump()?;
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        self.limits.bump()?;
        Ok(if v >= 0 {
            Node::UInt(v as u64)
        } else {
            Node::Int(v)
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        self.limits.bump()?;
        Ok(Node::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        self.limits.bump()?;
        Ok(Node::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        self.limits.bump()?;
        Ok(Node::Str(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        self.limits.bump()?;
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        self.limits.bump()?;
        let (tag, variant): (String, _) = data.variant()?;
        let value = variant.newtype_variant_seed(self)?;
        Ok(Node::Tagged(tag, Box::new(value)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        self.limits.bump()?;
        self.limits.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        self.limits.leave();
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        self.limits.bump()?;
        self.limits.enter()?;
        let mut entries: Vec<(Node, Node)> = Vec::new();
        while let Some(k) = map.next_key_seed(self)? {
            let v = map.next_value_seed(self)?;
            match entries.iter().position(|(seen, _)| *seen == k) {
                Some(i) if self.limits.duplicates_allowed => entries[i].1 = v,
                Some(_) => return Err(self.limits.refuse(Refusal::DuplicateKey(key_str(&k)))),
                None => entries.push((k, v)),
            }
        }
        self.limits.leave();
        Ok(Node::Map(entries))
    }
}

/// Applies `<<: *anchor` merge keys (a mapping or a list of mappings) in
/// every mapping, depth first: keys already present win. The error says
/// what the `<<` was given instead.
pub(crate) fn apply_merge(node: &mut Node) -> Result<(), &'static str> {
    match node {
        Node::Seq(items) => items.iter_mut().try_for_each(apply_merge),
        Node::Tagged(_, inner) => apply_merge(inner),
        Node::Map(entries) => {
            for (_, v) in entries.iter_mut() {
                apply_merge(v)?;
            }
            let Some(i) = entries
                .iter()
                .position(|(k, _)| matches!(k, Node::Str(s) if s == "<<"))
            else {
                return Ok(());
            };
            let (_, merged) = entries.remove(i);
            let sources = match merged {
                Node::Map(m) => vec![m],
                Node::Seq(items) => items
                    .into_iter()
                    .map(|n| match n {
                        Node::Map(m) => Ok(m),
                        Node::Seq(_) => Err("expected a mapping for merging, but found sequence"),
                        _ => Err("expected a mapping for merging, but found scalar"),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(
                        "expected a mapping or list of mappings for merging, but found scalar",
                    )
                }
            };
            for source in sources {
                for (k, v) in source {
                    if !entries.iter().any(|(seen, _)| *seen == k) {
                        entries.push((k, v));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
