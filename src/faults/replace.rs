//! `replace`: frames that `match` arrive with their payload replaced by
//! `with:` (its UTF-8 bytes): same opcode and FIN bit, the length rewritten,
//! masked with a fresh seeded mask if the original was masked (toward the
//! server), unmasked otherwise. The frame is replaced whole, from its first
//! header byte to its last payload byte, so the stream stays valid; in a
//! fragmented message only the matching fragment changes. Control frames
//! (ping, pong, close) carry at most 125 bytes: a longer `with` is cut there.

use super::{Fault, FrameAction, Kind, Stage, StageCtx};
use crate::events::{Direction, EventKind, FrameInfo, Opcode};
use crate::frame::encode_frame;
use crate::matcher::Matcher;
use crate::scenario::{Directions, FaultCheck, Match, ScenarioError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `kind: replace`: matching frames carry another payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    /// Which frames.
    #[serde(rename = "match", default)]
    pub matches: Match,
    /// The new payload (as UTF-8 bytes).
    pub with: String,
    /// Direction(s).
    #[serde(default)]
    pub direction: Directions,
}

fn opcode_byte(op: Opcode) -> u8 {
    match op {
        Opcode::Continuation => 0x0,
        Opcode::Text => 0x1,
        Opcode::Binary => 0x2,
        Opcode::Close => 0x8,
        Opcode::Ping => 0x9,
        Opcode::Pong => 0xA,
        Opcode::Reserved(n) => n,
    }
}

struct Replacer {
    matcher: Arc<Matcher>,
    with: Arc<[u8]>,
}

impl Stage for Replacer {
    fn decides_frames(&self) -> bool {
        true
    }
    fn on_frame(&mut self, frame: &FrameInfo, ctx: &mut StageCtx<'_>) -> FrameAction {
        if !self.matcher.matches(frame) {
            return FrameAction::Pass;
        }
        let limit = if frame.opcode.is_control() {
            125
        } else {
            usize::MAX
        };
        let payload = &self.with[..self.with.len().min(limit)];
        let mask = frame.masked.then(|| ctx.rng.gen::<[u8; 4]>());
        let bytes = encode_frame(opcode_byte(frame.opcode), frame.fin, payload, mask);
        let what = format!(
            "{} frame payload replaced ({} bytes for {})",
            frame.opcode.name(),
            payload.len(),
            frame.len
        );
        let event = EventKind::Injected {
            fault: ctx.fault.to_string(),
            to: ctx.dir.to_side(),
            what,
        };
        FrameAction::Replace(bytes, event)
    }
}

/// The running `replace`.
struct Replacing {
    matcher: Arc<Matcher>,
    with: Arc<[u8]>,
    direction: Directions,
}

impl Fault for Replacing {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(Replacer {
                matcher: self.matcher.clone(),
                with: self.with.clone(),
            }) as Box<dyn Stage>
        })
    }
}

impl Kind for Replace {
    fn check(&self, c: &mut FaultCheck<'_>) -> Result<(), ScenarioError> {
        c.check_match("match", &self.matches)
    }
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(Replacing {
            matcher: Arc::new(Matcher::new(&self.matches)?),
            with: self.with.as_bytes().into(),
            direction: self.direction,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::testing::{ctx, frame, rng};

    fn stage(dir: Direction) -> Box<dyn Stage> {
        let k: Replace =
            serde_yaml::from_str("match: {text: price}\nwith: '{\"price\":\"NaN\"}'").unwrap();
        k.build().unwrap().stage(dir).unwrap()
    }

    #[test]
    fn matching_frames_get_the_new_payload_same_opcode() {
        let mut s = stage(Direction::ToClient);
        let mut rng = rng(1, Direction::ToClient);
        let mut c = ctx(&mut rng, Direction::ToClient);
        let f = frame(Direction::ToClient, Opcode::Text, "{\"price\":1}");
        let FrameAction::Replace(bytes, EventKind::Injected { what, .. }) = s.on_frame(&f, &mut c)
        else {
            panic!("not replaced")
        };
        assert_eq!(bytes, encode_frame(0x1, true, b"{\"price\":\"NaN\"}", None));
        assert!(what.starts_with("text frame payload replaced"), "{what}");
        let other = frame(Direction::ToClient, Opcode::Text, "hello");
        assert!(matches!(s.on_frame(&other, &mut c), FrameAction::Pass));
    }

    #[test]
    fn masked_frames_get_a_seeded_mask() {
        let draw = |seed| {
            let mut s = stage(Direction::ToServer);
            let mut rng = rng(seed, Direction::ToServer);
            let mut c = ctx(&mut rng, Direction::ToServer);
            let f = frame(Direction::ToServer, Opcode::Binary, "price");
            match s.on_frame(&f, &mut c) {
                FrameAction::Replace(b, _) => b,
                other => panic!("{other:?}"),
            }
        };
        let a = draw(2);
        assert_eq!(a, draw(2));
        assert_eq!(a[0], 0x82);
        assert_eq!(a[1], 0x80 | 15);
    }
}
