//! `refuse`: new connection attempts fail while active (the listener applies
//! the [`Refusal`]): `refused` stops listening (ECONNREFUSED) and listens
//! again on the same port at the end; `reset` sends RST after accept; `close`
//! FIN after accept; `stall` accepts and never answers; `http` answers with a
//! status (default 503), headers and a short body, then FIN. Open
//! connections are untouched.

use super::{Fault, KernelEffect, Kind, Refusal};
use crate::scenario::{FaultCheck, ScenarioError};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::collections::BTreeMap;

/// `kind: refuse`: new connections fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refuse {
    /// How.
    #[serde(default)]
    pub how: RefuseHow,
    /// HTTP status for `how: http` (default 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// HTTP headers for `how: http` (`Retry-After: 1` is taken as text).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "headers_as_text"
    )]
    pub headers: BTreeMap<String, String>,
}

/// How `refuse` refuses new connection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseHow {
    /// Stop listening: ECONNREFUSED.
    Refused,
    /// RST right after accept.
    #[default]
    Reset,
    /// FIN right after accept.
    Close,
    /// Accept and never answer.
    Stall,
    /// Answer with an HTTP status.
    Http,
}

/// A header name or value: text, or a number or boolean taken as text.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

fn headers_as_text<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let m = BTreeMap::<Text, Text>::deserialize(d)?;
    Ok(m.into_iter().map(|(k, v)| (k.0, v.0)).collect())
}

impl RefuseHow {
    fn name(self) -> &'static str {
        match self {
            RefuseHow::Refused => "refused",
            RefuseHow::Reset => "reset",
            RefuseHow::Close => "close",
            RefuseHow::Stall => "stall",
            RefuseHow::Http => "http",
        }
    }
}

impl Fault for Refuse {
    /// Only `refused` has a kernel rule: the RST after accept of `reset` is
    /// already a real RST on the link, and the relay must accept the attempt
    /// to count it.
    fn kernel(&self) -> Option<KernelEffect> {
        (self.how == RefuseHow::Refused).then_some(KernelEffect::RefuseSyn)
    }
    fn refusal(&self) -> Option<Refusal> {
        Some(match self.how {
            RefuseHow::Refused => Refusal::StopListening,
            RefuseHow::Reset => Refusal::Reset,
            RefuseHow::Close => Refusal::Close,
            RefuseHow::Stall => Refusal::Stall,
            RefuseHow::Http => Refusal::Answer {
                status: self.status.unwrap_or(503),
                headers: self
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
        })
    }
}

impl Kind for Refuse {
    fn check(&self, c: &mut FaultCheck<'_>) -> Result<(), ScenarioError> {
        let i = c.label();
        if self.how != RefuseHow::Http {
            let which = if self.status.is_some() {
                Some("status")
            } else if !self.headers.is_empty() {
                Some("headers")
            } else {
                None
            };
            if let Some(w) = which {
                let msg = format!(
                    "{i}.{w} only applies to `how: http`, and this fault has `how: {}`",
                    self.how.name()
                );
                return Err(c.error(&[w], true, msg, Some("set `how: http` or remove it".into())));
            }
        }
        if let Some(st) = self.status {
            if !(100..=599).contains(&st) || (101..200).contains(&st) {
                let msg =
                    format!("{i}.status: {st} is not an HTTP status that refuses a connection");
                let hint = Some("expected 100 or 200-599, e.g. 503".into());
                return Err(c.error(&["status"], false, msg, hint));
            }
        }
        for (hk, hv) in &self.headers {
            let bad_name = hk.is_empty()
                || !hk
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            let bad_value = hv.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
            if bad_name || bad_value {
                let what = if bad_name {
                    "name"
                } else {
                    "value (line breaks)"
                };
                let msg = format!(
                    "{i}.headers: `{}` is not a valid HTTP header {what}",
                    hk.escape_debug()
                );
                let hint = Some("expected e.g. `Retry-After: \"1\"`".into());
                return Err(c.error(&["headers", hk], bad_name, msg, hint));
            }
        }
        Ok(())
    }
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_is_a_listener_mechanism() {
        let r = |how, status| Refuse {
            how,
            status,
            headers: BTreeMap::from([("Retry-After".to_string(), "1".to_string())]),
        };
        assert_eq!(
            r(RefuseHow::Refused, None).refusal(),
            Some(Refusal::StopListening)
        );
        assert_eq!(r(RefuseHow::Stall, None).refusal(), Some(Refusal::Stall));
        assert_eq!(
            r(RefuseHow::Http, None).refusal(),
            Some(Refusal::Answer {
                status: 503,
                headers: vec![("Retry-After".into(), "1".into())]
            })
        );
        assert!(r(RefuseHow::Http, Some(429)).stage(crate::events::Direction::ToServer).is_none());
    }
}
