//! `drop`: whole WebSocket frames that match are removed; the stream stays
//! valid because a frame is removed from its first header byte to its last
//! payload byte. Each matching frame is dropped with `probability`, drawn
//! from the pipe's seeded RNG.

use super::{Fault, FrameAction, Stage, StageCtx};
use crate::events::{Direction, FrameInfo};
use crate::matcher::Matcher;
use crate::scenario::{Directions, Match};
use rand::Rng;
use std::sync::Arc;

/// The fault.
pub struct DropFrames {
    matcher: Arc<Matcher>,
    probability: f64,
    direction: Directions,
}

impl DropFrames {
    /// From scenario parameters.
    pub fn new(m: &Match, probability: f64, direction: Directions) -> Result<Self, String> {
        Ok(DropFrames {
            matcher: Arc::new(Matcher::new(m)?),
            probability: probability.clamp(0.0, 1.0),
            direction,
        })
    }
}

pub(super) struct FrameFilter {
    pub(super) matcher: Arc<Matcher>,
    pub(super) probability: f64,
    pub(super) action: FrameAction,
}

impl Stage for FrameFilter {
    fn wants_frames(&self) -> bool {
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
            self.action
        } else {
            FrameAction::Pass
        }
    }
}

impl Fault for DropFrames {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(FrameFilter {
                matcher: self.matcher.clone(),
                probability: self.probability,
                action: FrameAction::Drop,
            }) as Box<dyn Stage>
        })
    }
}
