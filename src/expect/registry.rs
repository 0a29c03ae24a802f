//! The expectation kinds, registered once. Adding a kind is one file in
//! `src/expect/` (a serde struct implementing [`Kind`], and its [`Judge`])
//! plus one line in the `registry!` list below: the scenario model's
//! [`ExpectKind`], the kind names, the field names that "did you mean"
//! suggests, validation and building all derive from it.

use super::kind::{Checks, Invalid, Judge, Kind, Timing};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

macro_rules! registry {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// Kind-specific expectation parameters, tagged by `kind`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum ExpectKind {
            $(
                #[allow(missing_docs)]
                $variant($ty),
            )*
        }

        impl ExpectKind {
            /// Every expectation kind name, in registry order.
            pub const KINDS: &'static [&'static str] = &[$(<$ty as Kind>::NAME),*];

            /// The `kind` string.
            pub fn name(&self) -> &'static str {
                match self {
                    $(ExpectKind::$variant(_) => <$ty as Kind>::NAME,)*
                }
            }

            /// Check the parameters beyond their types.
            pub fn validate(&self, v: &mut dyn Checks) -> Result<(), Invalid> {
                match self {
                    $(ExpectKind::$variant(k) => <$ty as Kind>::validate(k, v),)*
                }
            }

            /// The judge for one run.
            pub fn judge(&self) -> Result<Box<dyn Judge>, String> {
                match self {
                    $(ExpectKind::$variant(k) => <$ty as Kind>::judge(k),)*
                }
            }

            /// Reference and window length (see [`Kind::timing`]).
            pub fn timing(&self) -> Timing<'_> {
                match self {
                    $(ExpectKind::$variant(k) => <$ty as Kind>::timing(k),)*
                }
            }
        }

        /// The kind-specific field names of kind `kind` (as written in
        /// scenarios, in declaration order); empty for an unknown kind.
        pub fn fields(kind: &str) -> &'static [&'static str] {
            $(
                if kind == <$ty as Kind>::NAME {
                    return fields_of::<$ty>();
                }
            )*
            &[]
        }
    };
}

registry! {
    Detects(super::detects::Detects),
    Reconnects(super::reconnects::Reconnects),
    NoReconnect(super::no_reconnect::NoReconnect),
    StaysConnected(super::stays_connected::StaysConnected),
    Heartbeat(super::heartbeat::Heartbeat),
    Backoff(super::backoff::Backoff),
    Sends(super::sends::Sends),
    ClosesWith(super::closes_with::ClosesWith),
    Herd(super::herd::Herd),
}

/// The field names serde's derive declared for `T` (read by asking `T` to
/// deserialise itself from a probe that records them).
fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut seen: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut seen));
    seen
}

struct Probe<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Probed;

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probed")
    }
}
impl std::error::Error for Probed {}
impl de::Error for Probed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Probed
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Probed;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        Err(Probed)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Probed> {
        *self.0 = fields;
        Err(Probed)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_tags_are_the_kind_names() {
        for kind in ExpectKind::KINDS {
            assert!(!fields(kind).is_empty(), "{kind} declares no fields");
            // The serde tag of the variant must be the kind's NAME.
            let yaml = format!("{{kind: {kind}}}");
            let err = serde_yaml::from_str::<ExpectKind>(&yaml)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.contains("unknown variant"), "{kind}: {err}");
        }
    }

    #[test]
    fn fields_follow_the_declarations() {
        assert_eq!(
            fields("heartbeat"),
            ["from", "match", "every", "tolerance", "after", "for"]
        );
        assert_eq!(fields("closes_with"), ["side", "code", "connections"]);
        assert!(fields("nope").is_empty());
    }
}
