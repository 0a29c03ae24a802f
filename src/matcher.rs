//! Frame filters compiled from a scenario's `match:` block.
//!
//! A [`Matcher`] is built once (the regex compiled, opcode names resolved)
//! and then asked [`Matcher::matches`] for every frame the relay sees, both by
//! the `drop`/`corrupt` faults on the data path and by the expectations, so
//! matching allocates nothing.
//!
//! Semantics: every given condition must hold; `opcode` is one name or a
//! list; `text` is a substring of the payload read as UTF-8 and `regex` is
//! searched in it (the frame's [`FrameInfo::preview`], or for close frames its
//! [`FrameInfo::close_reason`]); `min_len`/`max_len` bound the payload length;
//! `any` holds when one of its alternatives holds. An empty match holds for
//! every frame.

use crate::events::{FrameInfo, Opcode};
use crate::scenario::{Match, OneOrMany, OpcodeName};
use regex::Regex;

/// A compiled `match:` filter.
#[derive(Debug, Clone)]
pub struct Matcher {
    opcodes: Option<Vec<Opcode>>,
    text: Option<String>,
    regex: Option<Regex>,
    min_len: Option<u64>,
    max_len: Option<u64>,
    any: Option<Vec<Matcher>>,
}

fn opcode_of(name: OpcodeName) -> Opcode {
    match name {
        OpcodeName::Text => Opcode::Text,
        OpcodeName::Binary => Opcode::Binary,
        OpcodeName::Ping => Opcode::Ping,
        OpcodeName::Pong => Opcode::Pong,
        OpcodeName::Close => Opcode::Close,
        OpcodeName::Continuation => Opcode::Continuation,
    }
}

impl Matcher {
    /// Compile a `match:` block; the error names the bad regex.
    pub fn new(m: &Match) -> Result<Matcher, String> {
        let opcodes = m.opcode.as_ref().map(|o| match o {
            OneOrMany::One(n) => vec![opcode_of(*n)],
            OneOrMany::Many(v) => v.iter().map(|n| opcode_of(*n)).collect(),
        });
        let regex = match &m.regex {
            Some(p) => Some(Regex::new(p).map_err(|e| format!("invalid regex `{p}`: {e}"))?),
            None => None,
        };
        let any = match &m.any {
            Some(alts) => Some(
                alts.iter()
                    .map(Matcher::new)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        Ok(Matcher {
            opcodes,
            text: m.text.clone(),
            regex,
            min_len: m.min_len,
            max_len: m.max_len,
            any,
        })
    }

    /// A matcher that holds for every frame.
    pub fn everything() -> Matcher {
        Matcher {
            opcodes: None,
            text: None,
            regex: None,
            min_len: None,
            max_len: None,
            any: None,
        }
    }

    /// Whether the frame satisfies every condition.
    pub fn matches(&self, f: &FrameInfo) -> bool {
        if let Some(ops) = &self.opcodes {
            if !ops.contains(&f.opcode) {
                return false;
            }
        }
        if self.min_len.is_some_and(|min| f.len < min) {
            return false;
        }
        if self.max_len.is_some_and(|max| f.len > max) {
            return false;
        }
        if self.text.is_some() || self.regex.is_some() {
            let payload = if f.opcode == Opcode::Close {
                f.close_reason.as_deref().unwrap_or("")
            } else {
                f.preview.as_str()
            };
            if let Some(t) = &self.text {
                if !payload.contains(t.as_str()) {
                    return false;
                }
            }
            if let Some(r) = &self.regex {
                if !r.is_match(payload) {
                    return false;
                }
            }
        }
        if let Some(alts) = &self.any {
            if !alts.iter().any(|a| a.matches(f)) {
                return false;
            }
        }
        true
    }

    /// Whether matching looks at payload bytes (`text` or `regex`, here or in
    /// an `any` alternative): then the payload must be readable (extensions
    /// stripped) and the relay must keep a preview.
    pub fn inspects_payload(&self) -> bool {
        self.text.is_some()
            || self.regex.is_some()
            || self
                .any
                .as_ref()
                .is_some_and(|alts| alts.iter().any(Matcher::inspects_payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Direction;

    fn frame(opcode: Opcode, preview: &str) -> FrameInfo {
        FrameInfo {
            dir: Direction::ToServer,
            opcode,
            fin: true,
            rsv: 0,
            masked: true,
            len: preview.len() as u64,
            preview: preview.to_string(),
            close_code: None,
            close_reason: None,
            dropped: false,
        }
    }

    fn m(yaml: &str) -> Matcher {
        let spec: Match = serde_yaml::from_str(yaml).unwrap();
        Matcher::new(&spec).unwrap()
    }

    #[test]
    fn empty_match_matches_everything() {
        let e = m("{}");
        assert!(e.matches(&frame(Opcode::Text, "x")));
        assert!(e.matches(&frame(Opcode::Reserved(3), "")));
        assert!(!e.inspects_payload());
        assert!(Matcher::everything().matches(&frame(Opcode::Binary, "")));
    }

    #[test]
    fn opcode_one_or_list() {
        let one = m("opcode: ping");
        assert!(one.matches(&frame(Opcode::Ping, "")));
        assert!(!one.matches(&frame(Opcode::Pong, "")));
        let list = m("opcode: [ping, pong]");
        assert!(list.matches(&frame(Opcode::Pong, "")));
        assert!(!list.matches(&frame(Opcode::Text, "ping")));
        assert!(!list.matches(&frame(Opcode::Reserved(0xb), "")));
    }

    #[test]
    fn text_and_regex_all_must_hold() {
        let t = m(r#"{opcode: text, text: '"type":"pong"'}"#);
        assert!(t.matches(&frame(Opcode::Text, r#"{"type":"pong","n":1}"#)));
        assert!(!t.matches(&frame(Opcode::Text, r#"{"type":"ping"}"#)));
        assert!(!t.matches(&frame(Opcode::Binary, r#"{"type":"pong"}"#)));
        assert!(t.inspects_payload());
        let r = m("regex: '^ping$'");
        assert!(r.matches(&frame(Opcode::Text, "ping")));
        assert!(!r.matches(&frame(Opcode::Text, "ping!")));
        let both = m("{text: ping, regex: '\\d$'}");
        assert!(both.matches(&frame(Opcode::Text, "ping 3")));
        assert!(!both.matches(&frame(Opcode::Text, "ping")));
    }

    #[test]
    fn length_bounds_are_inclusive() {
        let b = m("{min_len: 2, max_len: 4}");
        assert!(!b.matches(&frame(Opcode::Text, "a")));
        assert!(b.matches(&frame(Opcode::Text, "ab")));
        assert!(b.matches(&frame(Opcode::Text, "abcd")));
        assert!(!b.matches(&frame(Opcode::Text, "abcde")));
    }

    #[test]
    fn any_holds_when_one_alternative_holds() {
        let a = m("any: [{opcode: ping}, {opcode: text, regex: '^ping$'}]");
        assert!(a.matches(&frame(Opcode::Ping, "")));
        assert!(a.matches(&frame(Opcode::Text, "ping")));
        assert!(!a.matches(&frame(Opcode::Text, "pong")));
        assert!(!a.matches(&frame(Opcode::Pong, "")));
        assert!(a.inspects_payload());
        // `any` combined with an outer condition: both must hold.
        let outer = m("{max_len: 3, any: [{opcode: ping}, {opcode: text}]}");
        assert!(outer.matches(&frame(Opcode::Text, "abc")));
        assert!(!outer.matches(&frame(Opcode::Text, "abcd")));
    }

    #[test]
    fn close_frames_match_on_their_reason() {
        let mut f = frame(Opcode::Close, "\u{3}\u{e8}bye now");
        f.close_code = Some(1000);
        f.close_reason = Some("bye now".into());
        assert!(m("{opcode: close, regex: '^bye'}").matches(&f));
        assert!(m("text: now").matches(&f));
        f.close_reason = None;
        assert!(!m("text: now").matches(&f));
    }

    #[test]
    fn bad_regex_is_an_error_naming_it() {
        let spec: Match = serde_yaml::from_str("any: [{regex: '(unclosed'}]").unwrap();
        let e = Matcher::new(&spec).unwrap_err();
        assert!(e.contains("`(unclosed`"), "{e}");
    }
}
