//! The registry machinery: `fault_kinds!` turns the list of `module =>
//! Struct` lines in `faults/mod.rs` into the [`super::FaultKind`] enum and
//! everything derived from it (names, the kind list, "is it instant", field
//! tables, checking and building). Field tables come from the structs' own
//! serde declarations ([`fields_of`]), so they cannot drift from the model.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;

/// What the parser may ask about one fault kind.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// The `kind:` name.
    pub name: &'static str,
    /// Whether it acts once (no `duration`).
    pub instant: bool,
    /// Its kind-specific fields, in declaration order.
    pub fields: &'static [&'static str],
}

/// The serde field names of struct `T`, in declaration order (as `rename`d),
/// read from what its derived `Deserialize` passes to `deserialize_struct`.
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Grab(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("field introspection")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &mut Grab {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut g = Grab(None);
    let _ = T::deserialize(&mut g);
    g.0.unwrap_or(&[])
}

/// Declares the fault kinds; see `faults/mod.rs`.
macro_rules! fault_kinds {
    ($($m:ident => $T:ident),* $(,)?) => {
        $(pub mod $m;)*

        /// A fault kind and its parameters, tagged by `kind` in scenario
        /// files: one variant per registered kind.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum FaultKind {
            $(
                #[doc = concat!("`kind: ", stringify!($m), "`")]
                $T($m::$T),
            )*
        }

        impl FaultKind {
            /// Every fault kind name, in registry order.
            pub const KINDS: &'static [&'static str] = &[$(stringify!($m)),*];

            /// The `kind` string.
            pub fn name(&self) -> &'static str {
                match self { $(FaultKind::$T(_) => stringify!($m),)* }
            }

            /// Instant kinds act once and take no `duration`.
            pub fn is_instant(&self) -> bool {
                match self { $(FaultKind::$T(_) => <$m::$T as $crate::faults::Kind>::INSTANT,)* }
            }

            /// What the parser may ask about every kind.
            pub fn registry() -> Vec<$crate::faults::KindInfo> {
                vec![$($crate::faults::KindInfo {
                    name: stringify!($m),
                    instant: <$m::$T as $crate::faults::Kind>::INSTANT,
                    fields: $crate::faults::registry::fields_of::<$m::$T>(),
                },)*]
            }

            /// One kind by name.
            pub fn info(kind: &str) -> Option<$crate::faults::KindInfo> {
                Self::registry().into_iter().find(|k| k.name == kind)
            }

            /// The kind-specific fields of `kind` (empty for an unknown kind).
            pub fn fields(kind: &str) -> &'static [&'static str] {
                match kind {
                    $(stringify!($m) => $crate::faults::registry::fields_of::<$m::$T>(),)*
                    _ => &[],
                }
            }

            /// The kind's own checks.
            pub fn check(
                &self,
                c: &mut $crate::scenario::FaultCheck<'_>,
            ) -> Result<(), $crate::scenario::ScenarioError> {
                match self { $(FaultKind::$T(k) => $crate::faults::Kind::check(k, c),)* }
            }

            /// The running fault.
            pub fn build(&self) -> Result<Box<dyn $crate::faults::Fault>, String> {
                match self { $(FaultKind::$T(k) => $crate::faults::Kind::build(k),)* }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::super::FaultKind;

    /// The `kind:` tag serde uses is the registry name, and every kind has
    /// its own field table.
    #[test]
    fn names_and_fields_come_from_the_declarations() {
        for info in FaultKind::registry() {
            assert!(!info.fields.is_empty(), "{}", info.name);
            assert_eq!(FaultKind::fields(info.name), info.fields);
            let mut m = serde_yaml::Mapping::new();
            m.insert("kind".into(), info.name.into());
            // Unknown fields are refused per kind: the tag was understood.
            m.insert("no_such_field".into(), 1.into());
            let e = serde_yaml::from_value::<FaultKind>(serde_yaml::Value::Mapping(m))
                .expect_err(info.name)
                .to_string();
            assert!(!e.contains("unknown variant"), "{}: {e}", info.name);
        }
        assert_eq!(
            FaultKind::registry()
                .iter()
                .filter(|k| k.instant)
                .map(|k| k.name)
                .collect::<Vec<_>>(),
            ["half_close", "reset", "close"]
        );
    }
}
