//! Value types written as strings in scenario files: durations (`250ms`,
//! `1.5s`, `2m`), sizes (`512`, `16KiB`), rates (`64KiB/s`), size ranges
//! (`1..16`) and references (`open#2 + 3s`, `outage.end`).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written as `250ms`, `3s`, `1.5s`, `2m`, `1h`, `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{t}` has no unit; write e.g. `{t}s` or `{t}ms`"))?;
        let (num, unit) = t.split_at(split);
        let num: f64 = num
            .parse()
            .map_err(|_| format!("`{t}` is not a duration (e.g. `250ms`, `3s`, `1.5s`, `2m`)"))?;
        let secs = match unit.trim() {
            "us" | "µs" => num / 1e6,
            "ms" => num / 1e3,
            "s" | "sec" => num,
            "m" | "min" => num * 60.0,
            "h" => num * 3600.0,
            u => {
                return Err(format!(
                    "unknown duration unit `{u}` in `{t}` (use ms, s, m or h)"
                ))
            }
        };
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(format!("duration `{t}` is out of range"));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if self.0.is_zero() {
            f.write_str("0s")
        } else if !self.0.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}us", self.0.as_micros())
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else if ms > 1000 {
            write!(f, "{}s", self.0.as_secs_f64())
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// A byte count written as `512`, `16KiB`, `1MiB`, `2KB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct ByteSize(pub u64);

fn parse_bytes(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("`{t}` is not a size (e.g. `512`, `16KiB`, `1MiB`)"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" | "K" | "k" => 1024.0,
        "MiB" | "M" => 1024.0 * 1024.0,
        "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1000.0,
        "MB" => 1e6,
        "GB" => 1e9,
        u => {
            return Err(format!(
                "unknown size unit `{u}` in `{t}` (use B, KiB, MiB, GiB)"
            ))
        }
    };
    let v = num * mult;
    if !v.is_finite() || !(0.0..=1e15).contains(&v) {
        return Err(format!("size `{t}` is out of range"));
    }
    Ok(v.round() as u64)
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_bytes(s).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
            write!(f, "{}MiB", b >> 20)
        } else if b >= 1024 && b.is_multiple_of(1024) {
            write!(f, "{}KiB", b >> 10)
        } else {
            write!(f, "{b}")
        }
    }
}

/// A rate in bytes per second, written `64KiB/s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Rate {
    /// Bytes per second.
    pub bytes_per_sec: u64,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let body = t
            .strip_suffix("/s")
            .ok_or_else(|| format!("`{t}` is not a rate; write e.g. `64KiB/s`"))?;
        let b = parse_bytes(body)?;
        if b == 0 {
            return Err(format!("rate `{t}` must be above zero"));
        }
        Ok(Rate { bytes_per_sec: b })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", ByteSize(self.bytes_per_sec))
    }
}

/// A size or an inclusive range of sizes, `16` or `1..16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SizeRange {
    /// The smallest size drawn, in bytes (at least 1).
    pub min: u64,
    /// The largest size drawn, in bytes (equal to `min` for a single size).
    pub max: u64,
}

impl FromStr for SizeRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let (min, max) = match t.split_once("..") {
            Some((a, b)) => (parse_bytes(a)?, parse_bytes(b.trim_start_matches('='))?),
            None => {
                let v = parse_bytes(t)?;
                (v, v)
            }
        };
        if min == 0 || min > max {
            return Err(format!(
                "size range `{t}` must be at least 1 and its lower bound not above its upper"
            ));
        }
        Ok(SizeRange { min, max })
    }
}

impl fmt::Display for SizeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

/// The base of a reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefBase {
    /// t = 0.
    Start,
    /// Connection N was accepted.
    Accept(u32),
    /// Connection N answered 101.
    Open(u32),
    /// Connection N fully closed.
    Close(u32),
    /// Fault NAME began (`NAME` or `NAME.start`).
    FaultStart(String),
    /// Fault NAME ended.
    FaultEnd(String),
}

/// `REF [+ DURATION]`, or a bare duration meaning `start + DURATION`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// What it is relative to.
    pub base: RefBase,
    /// The `+ DURATION` part (zero when absent).
    pub offset: Duration,
}

impl Reference {
    /// `start`.
    pub fn start() -> Reference {
        Reference {
            base: RefBase::Start,
            offset: Duration::ZERO,
        }
    }
    /// The fault name it refers to, if any.
    pub fn fault(&self) -> Option<&str> {
        match &self.base {
            RefBase::FaultStart(n) | RefBase::FaultEnd(n) => Some(n),
            _ => None,
        }
    }
}

fn parse_conn_ref(s: &str, prefix: &str) -> Option<Result<u32, String>> {
    let rest = s.strip_prefix(prefix)?.strip_prefix('#')?;
    Some(
        rest.parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("`{s}`: connection numbers start at 1, e.g. `{prefix}#1`")),
    )
}

impl FromStr for Reference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(
                "empty reference; expected e.g. `start`, `open#1 + 3s` or `outage.end`".into(),
            );
        }
        let (head, offset) = match t.split_once('+') {
            Some((h, d)) => (h.trim(), d.trim().parse::<Dur>()?.0),
            None => (t, Duration::ZERO),
        };
        // A bare duration means start + duration.
        if head.starts_with(|c: char| c.is_ascii_digit()) {
            if offset != Duration::ZERO {
                return Err(format!(
                    "`{t}` is not a reference; expected `REF + DURATION`, e.g. `open#1 + 3s`"
                ));
            }
            let d = head.parse::<Dur>()?;
            return Ok(Reference {
                base: RefBase::Start,
                offset: d.0,
            });
        }
        let base = if head == "start" {
            RefBase::Start
        } else if let Some(r) = parse_conn_ref(head, "accept") {
            RefBase::Accept(r?)
        } else if let Some(r) = parse_conn_ref(head, "open") {
            RefBase::Open(r?)
        } else if let Some(r) = parse_conn_ref(head, "close") {
            RefBase::Close(r?)
        } else {
            let (name, which) = match head.rsplit_once('.') {
                Some((n, "start")) => (n, false),
                Some((n, "end")) => (n, true),
                Some((_, other)) => {
                    return Err(format!(
                        "unknown suffix `.{other}` in `{head}`, expected `.start` or `.end`"
                    ))
                }
                None => (head, false),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "`{head}` is not a reference; expected `start`, `accept#N`, `open#N`, `close#N`, `NAME`, `NAME.start` or `NAME.end`"
                ));
            }
            if which {
                RefBase::FaultEnd(name.to_string())
            } else {
                RefBase::FaultStart(name.to_string())
            }
        };
        Ok(Reference { base, offset })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.base {
            RefBase::Start => f.write_str("start")?,
            RefBase::Accept(n) => write!(f, "accept#{n}")?,
            RefBase::Open(n) => write!(f, "open#{n}")?,
            RefBase::Close(n) => write!(f, "close#{n}")?,
            RefBase::FaultStart(n) => write!(f, "{n}")?,
            RefBase::FaultEnd(n) => write!(f, "{n}.end")?,
        }
        if !self.offset.is_zero() {
            write!(f, " + {}", Dur(self.offset))?;
        }
        Ok(())
    }
}

macro_rules! string_serde {
    ($t:ty, $what:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> de::Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$t, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$t, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$t, E> {
                        self.visit_str(&v.to_string())
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

string_serde!(Dur, "a duration such as `250ms`, `3s` or `1.5s`");
string_serde!(ByteSize, "a size such as `512`, `16KiB` or `1MiB`");
string_serde!(Rate, "a rate such as `64KiB/s`");
string_serde!(SizeRange, "a size or range such as `16` or `1..16`");
string_serde!(
    Reference,
    "a reference such as `start`, `3s`, `open#1 + 3s` or `outage.end`"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            "250ms".parse::<Dur>().unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            "1.5s".parse::<Dur>().unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!("2m".parse::<Dur>().unwrap().0, Duration::from_secs(120));
        assert!("3".parse::<Dur>().is_err());
        assert!("3x".parse::<Dur>().is_err());
    }

    #[test]
    fn references() {
        let r: Reference = "open#2 + 3s".parse().unwrap();
        assert_eq!(r.base, RefBase::Open(2));
        assert_eq!(r.offset, Duration::from_secs(3));
        let r: Reference = "outage.end".parse().unwrap();
        assert_eq!(r.base, RefBase::FaultEnd("outage".into()));
        let r: Reference = "3s".parse().unwrap();
        assert_eq!(r.base, RefBase::Start);
        assert!("open#0".parse::<Reference>().is_err());
        assert_eq!(r.to_string(), "start + 3s");
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!("16KiB".parse::<ByteSize>().unwrap().0, 16384);
        assert_eq!("64KiB/s".parse::<Rate>().unwrap().bytes_per_sec, 65536);
        let r: SizeRange = "1..16".parse().unwrap();
        assert_eq!((r.min, r.max), (1, 16));
    }
}
