//! Helpers for socket-free stage tests.

use super::{pipe_rng, PipeRng, StageCtx};
use crate::events::{Direction, FrameInfo, Opcode};
use std::time::Instant;

/// A context for a stage of fault `f` on the pipe `dir`.
pub(crate) fn ctx<'a>(rng: &'a mut PipeRng, dir: Direction) -> StageCtx<'a> {
    StageCtx {
        now: Instant::now(),
        rng,
        fault: "f",
        dir,
    }
}

/// The RNG of pipe `dir` of connection 1 with `seed`.
pub(crate) fn rng(seed: u64, dir: Direction) -> PipeRng {
    pipe_rng(seed, 1, dir)
}

/// A frame as the scanner reports it.
pub(crate) fn frame(dir: Direction, opcode: Opcode, preview: &str) -> FrameInfo {
    FrameInfo {
        dir,
        opcode,
        fin: true,
        rsv: 0,
        masked: dir == Direction::ToServer,
        len: preview.len() as u64,
        preview: preview.to_string(),
        close_code: None,
        close_reason: None,
        dropped: false,
    }
}
