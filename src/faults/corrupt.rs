//! `corrupt`: matching frames get payload bits flipped (the first payload
//! byte XOR 0x80: in a text frame this makes invalid UTF-8 at once, so a
//! correct receiver fails the connection). Masked bytes are flipped as they
//! are: XOR commutes with the mask.

use super::drop::FrameFilter;
use super::{Fault, FrameAction, Stage};
use crate::events::Direction;
use crate::matcher::Matcher;
use crate::scenario::{Directions, Match};
use std::sync::Arc;

/// The fault.
pub struct Corrupt {
    matcher: Arc<Matcher>,
    probability: f64,
    direction: Directions,
}

impl Corrupt {
    /// From scenario parameters.
    pub fn new(m: &Match, probability: f64, direction: Directions) -> Result<Self, String> {
        Ok(Corrupt {
            matcher: Arc::new(Matcher::new(m)?),
            probability: probability.clamp(0.0, 1.0),
            direction,
        })
    }
}

impl Fault for Corrupt {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        self.direction.covers(dir).then(|| {
            Box::new(FrameFilter {
                matcher: self.matcher.clone(),
                probability: self.probability,
                action: FrameAction::Corrupt,
            }) as Box<dyn Stage>
        })
    }
}
