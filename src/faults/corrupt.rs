//! `corrupt`: matching frames get payload bits flipped (the first payload
//! byte XOR 0x80: in a text frame this makes invalid UTF-8 at once, so a
//! correct receiver fails the connection). Masked bytes are flipped as they
//! are: XOR commutes with the mask.

use super::drop::{check_filter, one, FrameFilter};
use super::{Fault, FrameAction, Kind, Stage, StageCtx};
use crate::events::{Direction, EventKind, FrameInfo};
use crate::matcher::Matcher;
use crate::scenario::{Directions, FaultCheck, Match, ScenarioError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `kind: corrupt`: matching frames arrive damaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corrupt {
    /// Which frames (default: all).
    #[serde(rename = "match", default)]
    pub matches: Match,
    /// Chance per matching frame.
    #[serde(default = "one")]
    pub probability: f64,
    /// Direction(s).
    #[serde(default)]
    pub direction: Directions,
}

/// The damage: the first payload byte's top bit flipped.
fn flip(payload: &mut [u8]) {
    if let Some(b) = payload.first_mut() {
        *b ^= 0x80;
    }
}

fn corrupt_frame(frame: &FrameInfo, ctx: &StageCtx<'_>) -> FrameAction {
    FrameAction::Patch(
        flip,
        EventKind::Corrupted {
            fault: ctx.fault.to_string(),
            dir: ctx.dir,
            opcode: frame.opcode,
        },
    )
}

/// The running `corrupt`.
struct Corrupting {
    matcher: Arc<Matcher>,
    probability: f64,
    direction: Directions,
}

impl Fault for Corrupting {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(FrameFilter {
                matcher: self.matcher.clone(),
                probability: self.probability,
                act: corrupt_frame,
            }) as Box<dyn Stage>
        })
    }
}

impl Kind for Corrupt {
    fn check(&self, c: &mut FaultCheck<'_>) -> Result<(), ScenarioError> {
        check_filter(c, self.probability, &self.matches)
    }
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(Corrupting {
            matcher: Arc::new(Matcher::new(&self.matches)?),
            probability: self.probability.clamp(0.0, 1.0),
            direction: self.direction,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Opcode;
    use crate::faults::testing::{ctx, frame, rng};

    #[test]
    fn flips_the_first_payload_byte() {
        let f = Corrupt {
            matches: Match::default(),
            probability: 1.0,
            direction: Directions::ToClient,
        }
        .build()
        .unwrap();
        assert!(f.stage(Direction::ToServer).is_none());
        let mut s = f.stage(Direction::ToClient).unwrap();
        let mut rng = rng(1, Direction::ToClient);
        let mut c = ctx(&mut rng, Direction::ToClient);
        let FrameAction::Patch(patch, EventKind::Corrupted { opcode, .. }) =
            s.on_frame(&frame(Direction::ToClient, Opcode::Text, "hi"), &mut c)
        else {
            panic!("not patched")
        };
        assert_eq!(opcode, Opcode::Text);
        let mut p = *b"hi";
        patch(&mut p);
        assert_eq!(p, [b'h' ^ 0x80, b'i']);
        let mut empty: [u8; 0] = [];
        patch(&mut empty);
    }
}
