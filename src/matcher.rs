//! Frame filters (`match:`) compiled for cheap evaluation. (Stub: replaced by
//! the full matcher.)

use crate::events::{FrameInfo, Opcode};
use crate::scenario::{Match, OpcodeName};

/// A compiled `match`.
#[derive(Debug, Clone)]
pub struct Matcher {
    opcodes: Option<Vec<OpcodeName>>,
    text: Option<String>,
    regex: Option<regex::Regex>,
    min_len: Option<u64>,
    max_len: Option<u64>,
    any: Option<Vec<Matcher>>,
}

impl Matcher {
    /// Compile.
    pub fn new(m: &Match) -> Result<Matcher, String> {
        Ok(Matcher {
            opcodes: m.opcode.as_ref().map(|o| o.to_vec()),
            text: m.text.clone(),
            regex: match &m.regex {
                Some(r) => Some(regex::Regex::new(r).map_err(|e| e.to_string())?),
                None => None,
            },
            min_len: m.min_len,
            max_len: m.max_len,
            any: match &m.any {
                Some(v) => Some(v.iter().map(Matcher::new).collect::<Result<_, _>>()?),
                None => None,
            },
        })
    }

    /// Whether the frame matches.
    pub fn matches(&self, f: &FrameInfo) -> bool {
        if let Some(ops) = &self.opcodes {
            let ok = ops.iter().any(|o| {
                matches!(
                    (o, f.opcode),
                    (OpcodeName::Text, Opcode::Text)
                        | (OpcodeName::Binary, Opcode::Binary)
                        | (OpcodeName::Ping, Opcode::Ping)
                        | (OpcodeName::Pong, Opcode::Pong)
                        | (OpcodeName::Close, Opcode::Close)
                        | (OpcodeName::Continuation, Opcode::Continuation)
                )
            });
            if !ok {
                return false;
            }
        }
        let payload = f.close_reason.as_deref().unwrap_or(&f.preview);
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
        if self.min_len.is_some_and(|m| f.len < m) || self.max_len.is_some_and(|m| f.len > m) {
            return false;
        }
        if let Some(any) = &self.any {
            if !any.iter().any(|m| m.matches(f)) {
                return false;
            }
        }
        true
    }
}
