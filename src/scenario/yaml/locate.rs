//! Positions of nodes in the YAML source.
//!
//! `serde_yaml` does not expose node positions, but it stamps every error a
//! visitor raises with the position of the node being visited. So to find
//! where `faults[2].at` is, we walk the document once more with a visitor
//! that goes down that path and fails on purpose at the node (or its key),
//! then read the position off the error. This only runs when there is
//! something to report, so its cost does not matter.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index (0-based).
    Index(usize),
}

/// A path into the document, displayed as `faults[2].match.regex`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct YPath(pub Vec<Seg>);

impl YPath {
    pub fn root() -> YPath {
        YPath(Vec::new())
    }
    pub fn key(&self, k: &str) -> YPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        YPath(v)
    }
    pub fn index(&self, i: usize) -> YPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        YPath(v)
    }
}

impl fmt::Display for YPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

const SENTINEL: &str = "\u{0}flatline-locate\u{0}";

/// The 1-based (line, column) of the node at `path` (or of its key when
/// `at_key`). Falls back to the nearest ancestor that can be found, then 1:1.
pub(crate) fn locate(src: &str, path: &YPath, at_key: bool) -> (usize, usize) {
    let mut segs: &[Seg] = &path.0;
    let mut key = at_key;
    loop {
        if let Some(p) = locate_exact(src, segs, key) {
            return p;
        }
        if segs.is_empty() {
            return (1, 1);
        }
        segs = &segs[..segs.len() - 1];
        key = false;
    }
}

fn locate_exact(src: &str, path: &[Seg], at_key: bool) -> Option<(usize, usize)> {
    if at_key && !matches!(path.last(), Some(Seg::Key(_))) {
        return None;
    }
    let de = serde_yaml::Deserializer::from_str(src);
    match (Locate { path, at_key }).deserialize(de) {
        Err(e) if e.to_string().contains(SENTINEL) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

struct Locate<'a> {
    path: &'a [Seg],
    at_key: bool,
}

impl<'de> DeserializeSeed<'de> for Locate<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! here_or_skip {
    ($($name:ident: $t:ty),*) => {
        $(fn $name<E: de::Error>(self, _v: $t) -> Result<(), E> {
            if self.path.is_empty() { Err(E::custom(SENTINEL)) } else { Ok(()) }
        })*
    };
}

impl<'de> Visitor<'de> for Locate<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }
    here_or_skip!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(SENTINEL))
        } else {
            Ok(())
        }
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`): locate the node itself.
        if self.path.is_empty() {
            Err(de::Error::custom(SENTINEL))
        } else {
            Ok(())
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(SENTINEL));
        };
        let Seg::Index(i) = first else {
            return Ok(());
        };
        for _ in 0..*i {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Locate {
            path: rest,
            at_key: self.at_key,
        })?;
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(SENTINEL));
        };
        let Seg::Key(k) = first else {
            return Ok(());
        };
        let fail_on_key = self.at_key && rest.is_empty();
        while let Some(hit) = map.next_key_seed(KeySeed {
            want: k,
            fail: fail_on_key,
        })? {
            if hit {
                map.next_value_seed(Locate {
                    path: rest,
                    at_key: self.at_key,
                })?;
                return Ok(());
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Reads a key, says whether it is `want`, and fails on it when `fail`.
struct KeySeed<'a> {
    want: &'a str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl KeySeed<'_> {
    fn check<E: de::Error>(&self, s: &str) -> Result<bool, E> {
        if s == self.want {
            if self.fail {
                return Err(E::custom(SENTINEL));
            }
            return Ok(true);
        }
        Ok(false)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.check(&serde_yaml::Value::from(v).as_f64().unwrap_or(v).to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.check("~")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_and_keys() {
        let src =
            "name: x\nfaults:\n  - kind: partition\n    at: 3s\n  - kind: delay\n    latency: 2s\n";
        let p = YPath::root().key("faults").index(1).key("latency");
        assert_eq!(locate(src, &p, false), (6, 14));
        assert_eq!(locate(src, &p, true), (6, 5));
        let missing = YPath::root().key("faults").index(1).key("nope");
        assert_eq!(locate(src, &missing, false), (5, 5));
        assert_eq!(p.to_string(), "faults[1].latency");
    }
}
