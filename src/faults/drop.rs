//! `drop`: whole WebSocket frames that match are removed; the stream stays
//! valid because a frame is removed from its first header byte to its last
//! payload byte. Each matching frame is dropped with `probability`, drawn
//! from the pipe's seeded RNG.

use super::{Fault, FrameAction, Kind, Stage, StageCtx};
use crate::events::{Direction, EventKind, FrameInfo};
use crate::matcher::Matcher;
use crate::scenario::{Directions, FaultCheck, Match, ScenarioError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `kind: drop`: matching frames vanish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drop {
    /// Which frames.
    #[serde(rename = "match", default)]
    pub matches: Match,
    /// Chance per matching frame.
    #[serde(default = "one")]
    pub probability: f64,
    /// Direction(s).
    #[serde(default)]
    pub direction: Directions,
}

pub(super) fn one() -> f64 {
    1.0
}

/// Checks shared by the frame filters (`drop`, `corrupt`).
pub(super) fn check_filter(
    c: &mut FaultCheck<'_>,
    probability: f64,
    m: &Match,
) -> Result<(), ScenarioError> {
    if !(0.0..=1.0).contains(&probability) {
        let msg = format!("{}.probability: {probability} is not a probability", c.label());
        return Err(c.error(
            &["probability"],
            false,
            msg,
            Some("expected a number from 0 to 1".into()),
        ));
    }
    c.check_match("match", m)
}

/// A frame filter: matching frames get `act` with `probability`.
pub(super) struct FrameFilter {
    pub(super) matcher: Arc<Matcher>,
    pub(super) probability: f64,
    pub(super) act: fn(&FrameInfo, &StageCtx<'_>) -> FrameAction,
}

impl Stage for FrameFilter {
    fn decides_frames(&self) -> bool {
        true
    }
    fn on_frame(&mut self, frame: &FrameInfo, ctx: &mut StageCtx<'_>) -> FrameAction {
        if !self.matcher.matches(frame) {
            return FrameAction::Pass;
        }
        // Always draw for a matching frame, so decisions depend only on the
        // sequence of matching frames, not on the probability's value path.
        let draw: f64 = ctx.rng.gen();
        if draw < self.probability {
            (self.act)(frame, ctx)
        } else {
            FrameAction::Pass
        }
    }
}

/// The running `drop`.
struct Dropping {
    matcher: Arc<Matcher>,
    probability: f64,
    direction: Directions,
}

fn drop_frame(frame: &FrameInfo, ctx: &StageCtx<'_>) -> FrameAction {
    FrameAction::Drop(EventKind::Dropped {
        fault: ctx.fault.to_string(),
        dir: ctx.dir,
        opcode: frame.opcode,
        len: frame.len,
    })
}

impl Fault for Dropping {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(FrameFilter {
                matcher: self.matcher.clone(),
                probability: self.probability,
                act: drop_frame,
            }) as Box<dyn Stage>
        })
    }
}

impl Kind for Drop {
    fn check(&self, c: &mut FaultCheck<'_>) -> Result<(), ScenarioError> {
        check_filter(c, self.probability, &self.matches)
    }
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        Ok(Box::new(Dropping {
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
    use crate::scenario::{OneOrMany, OpcodeName};

    fn pongs(probability: f64) -> Box<dyn Fault> {
        Drop {
            matches: Match {
                opcode: Some(OneOrMany::One(OpcodeName::Pong)),
                ..Match::default()
            },
            probability,
            direction: Directions::ToServer,
        }
        .build()
        .unwrap()
    }

    #[test]
    fn drops_matching_frames_in_its_direction() {
        let f = pongs(1.0);
        assert!(f.stage(Direction::ToClient).is_none());
        let mut s = f.stage(Direction::ToServer).unwrap();
        assert!(s.decides_frames());
        let mut rng = rng(1, Direction::ToServer);
        let mut c = ctx(&mut rng, Direction::ToServer);
        let pong = frame(Direction::ToServer, Opcode::Pong, "");
        let text = frame(Direction::ToServer, Opcode::Text, "hi");
        assert!(matches!(
            s.on_frame(&pong, &mut c),
            FrameAction::Drop(EventKind::Dropped { .. })
        ));
        assert!(matches!(s.on_frame(&text, &mut c), FrameAction::Pass));
    }

    #[test]
    fn probability_is_drawn_from_the_seed() {
        let f = pongs(0.5);
        let run = |seed| {
            let mut s = f.stage(Direction::ToServer).unwrap();
            let mut rng = rng(seed, Direction::ToServer);
            let mut c = ctx(&mut rng, Direction::ToServer);
            let pong = frame(Direction::ToServer, Opcode::Pong, "");
            (0..64)
                .map(|_| matches!(s.on_frame(&pong, &mut c), FrameAction::Drop(_)))
                .collect::<Vec<_>>()
        };
        let a = run(3);
        assert_eq!(a, run(3));
        assert!(a.iter().any(|d| *d) && a.iter().any(|d| !*d));
    }
}
