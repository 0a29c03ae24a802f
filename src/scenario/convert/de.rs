//! A serde `Deserializer` over [`Node`] whose error is typed: serde's derive
//! reports a missing field, an unknown variant or a value of the wrong type
//! through the `de::Error` constructors, and [`DeError`] keeps each as data
//! (the field, the valid names, what was found), so messages are built from
//! facts rather than from serde's wording.

use super::super::node::Node;
use serde::de::{self, value::MapDeserializer, value::SeqDeserializer, IntoDeserializer, Visitor};
use std::fmt;

/// What was found where something else was expected.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found {
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str(String),
    Unit,
    Seq,
    Map,
    /// Anything else serde names (a tagged value, a newtype...).
    Other(String),
}

impl From<de::Unexpected<'_>> for Found {
    fn from(u: de::Unexpected<'_>) -> Found {
        use de::Unexpected as U;
        match u {
            U::Bool(b) => Found::Bool(b),
            U::Unsigned(n) => Found::Unsigned(n),
            U::Signed(n) => Found::Signed(n),
            U::Float(f) => Found::Float(f),
            U::Char(c) => Found::Str(c.to_string()),
            U::Str(s) => Found::Str(s.to_string()),
            U::Bytes(_) => Found::Other("bytes".into()),
            U::Unit | U::Option => Found::Unit,
            U::Seq => Found::Seq,
            U::Map => Found::Map,
            other => Found::Other(other.to_string()),
        }
    }
}

/// Why a node did not convert.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DeError {
    /// A value of the wrong type or out of range; `expected` is serde's name
    /// for the type (`u16`, `a boolean`, `struct Match`).
    Invalid {
        found: Found,
        expected: String,
    },
    /// A name that is not one of `expected`.
    UnknownVariant {
        variant: String,
        expected: &'static [&'static str],
    },
    /// Not a name at all (a list, a number) where one of `expected` belongs.
    NotAName {
        found: Found,
        expected: &'static [&'static str],
    },
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    /// A message from a value parser (`3 parsecs`), or an untagged enum that
    /// matched no variant.
    Custom(String),
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeError::Invalid { found, expected } => {
                write!(f, "expected {expected}, found {found:?}")
            }
            DeError::UnknownVariant { variant, .. } => write!(f, "unknown value `{variant}`"),
            DeError::NotAName { found, .. } => write!(f, "expected a name, found {found:?}"),
            DeError::UnknownField { field, .. } => write!(f, "unknown field `{field}`"),
            DeError::MissingField(field) => write!(f, "missing `{field}`"),
            DeError::Custom(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::Custom(msg.to_string())
    }
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::Invalid {
            found: unexp.into(),
            expected: exp.to_string(),
        }
    }
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::UnknownVariant {
            variant: variant.to_string(),
            expected,
        }
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::UnknownField {
            field: field.to_string(),
            expected,
        }
    }
    fn missing_field(field: &'static str) -> Self {
        DeError::MissingField(field)
    }
}

/// Converts `node` into `T`.
pub(crate) fn from_node<T: de::DeserializeOwned>(node: &Node) -> Result<T, DeError> {
    T::deserialize(node)
}

impl<'de> IntoDeserializer<'de, DeError> for &Node {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for &Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self {
            Node::Null => v.visit_unit(),
            Node::Bool(b) => v.visit_bool(*b),
            Node::UInt(n) => v.visit_u64(*n),
            Node::Int(n) => v.visit_i64(*n),
            Node::Float(f) => v.visit_f64(*f),
            Node::Str(s) => v.visit_str(s),
            Node::Seq(items) => {
                let mut seq = SeqDeserializer::new(items.iter());
                let out = v.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Node::Map(entries) => {
                let mut map = MapDeserializer::new(entries.iter().map(|(k, v)| (k, v)));
                let out = v.visit_map(&mut map)?;
                map.end()?;
                Ok(out)
            }
            // Tags are not part of the scenario format: read what they tag.
            Node::Tagged(_, inner) => de::Deserializer::deserialize_any(inner.as_ref(), v),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self {
            Node::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match self {
            Node::Str(s) => v.visit_enum(s.as_str().into_deserializer()),
            Node::Tagged(_, inner) => {
                de::Deserializer::deserialize_enum(inner.as_ref(), name, variants, v)
            }
            other => Err(DeError::NotAName {
                found: found_of(other),
                expected: variants,
            }),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// What `node` is, as serde would name it.
pub(crate) fn found_of(node: &Node) -> Found {
    match node {
        Node::Null => Found::Unit,
        Node::Bool(b) => Found::Bool(*b),
        Node::UInt(n) => Found::Unsigned(*n),
        Node::Int(n) => Found::Signed(*n),
        Node::Float(f) => Found::Float(*f),
        Node::Str(s) => Found::Str(s.clone()),
        Node::Seq(_) => Found::Seq,
        Node::Map(_) => Found::Map,
        Node::Tagged(tag, _) => Found::Other(format!("a value tagged `!{tag}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::model::{Extensions, FaultSpec, Scenario};

    fn map(pairs: &[(&str, Node)]) -> Node {
        Node::Map(
            pairs
                .iter()
                .map(|(k, v)| (Node::Str(k.to_string()), v.clone()))
                .collect(),
        )
    }

    fn s(v: &str) -> Node {
        Node::Str(v.into())
    }

    #[test]
    fn errors_arrive_typed() {
        let e = from_node::<FaultSpec>(&map(&[("kind", s("delay"))])).expect_err("latency");
        assert_eq!(e, DeError::MissingField("latency"));
        let e = from_node::<Extensions>(&s("kep")).expect_err("variant");
        assert_eq!(
            e,
            DeError::UnknownVariant {
                variant: "kep".into(),
                expected: &["strip", "keep"]
            }
        );
        let e = from_node::<Extensions>(&Node::Seq(vec![])).expect_err("not a name");
        assert!(
            matches!(
                e,
                DeError::NotAName {
                    found: Found::Seq,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = from_node::<u64>(&Node::Int(-1)).expect_err("negative");
        assert!(
            matches!(&e, DeError::Invalid { found: Found::Signed(-1), expected } if expected == "u64"),
            "{e:?}"
        );
        let e = from_node::<FaultSpec>(&map(&[("kind", s("delay")), ("latency", s("3 parsecs"))]))
            .expect_err("bad duration");
        assert!(
            matches!(e, DeError::Custom(ref m) if m.contains("parsecs")),
            "{e:?}"
        );
    }

    #[test]
    fn a_whole_scenario_converts() {
        let node = map(&[
            ("name", s("x")),
            ("description", s("y")),
            ("duration", s("10s")),
            ("seed", Node::UInt(7)),
            (
                "faults",
                Node::Seq(vec![map(&[
                    ("kind", s("partition")),
                    ("at", s("open#1 + 3s")),
                    ("connections", Node::Seq(vec![Node::UInt(1)])),
                ])]),
            ),
        ]);
        let sc = from_node::<Scenario>(&node).expect("converts");
        assert_eq!(sc.seed, 7);
        assert_eq!(sc.faults.len(), 1);
        assert_eq!(sc.faults[0].kind.name(), "partition");
    }
}
