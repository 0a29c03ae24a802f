//! Fault kinds: one module each, all behind one trait.
//!
//! A fault is data (its parameters from the scenario) plus small per-pipe
//! state machines. [`Fault`] is what the timeline controller holds: it says
//! which [`Stage`] to put on a pipe (one direction of one connection), which
//! instant [`Action`]s to take on a connection, and whether new connection
//! attempts are refused. A [`Stage`] decides what happens to the bytes of its
//! pipe from its inputs and a context with the clock and the pipe's seeded
//! RNG; the pipe does the I/O. Stages are pure enough to unit-test without
//! sockets.
//!
//! Adding a fault: write a module with a type implementing [`Fault`] (and a
//! [`Stage`] if it acts on the data path), add a variant to
//! `scenario::FaultKind`, and one arm in [`build`].

use crate::events::{Direction, FrameInfo, Side};
use crate::scenario::{Directions, FaultKind, RefuseHow, Toward};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod close;
mod corrupt;
mod delay;
mod drop;
mod half_close;
mod limit;
mod lose_fin;
mod partition;
mod refuse;
mod reset;
mod slice;
mod throttle;

/// The per-pipe RNG: seeded from the scenario seed, the connection number and
/// the direction, so one connection's traffic never changes another's draws.
pub type PipeRng = ChaCha8Rng;

/// Make the RNG of one pipe.
pub fn pipe_rng(seed: u64, conn: u32, dir: Direction) -> PipeRng {
    use rand::SeedableRng;
    // SplitMix-style mixing so nearby seeds give unrelated streams.
    let mut x =
        seed ^ ((conn as u64) << 1 | dir.index() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    ChaCha8Rng::seed_from_u64(x)
}

/// What a stage decides for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAction {
    /// Forward it.
    Pass,
    /// Remove the whole frame from the stream.
    Drop,
    /// Flip payload bits.
    Corrupt,
}

/// What a stage sees besides its own state.
pub struct StageCtx<'a> {
    /// Now.
    pub now: Instant,
    /// The pipe's seeded RNG.
    pub rng: &'a mut PipeRng,
}

/// A fault's effect on one pipe (one direction of one connection). Every
/// method has a neutral default, so a stage implements only what it does.
pub trait Stage: Send {
    /// Whether this stage needs to see frames before their bytes are
    /// forwarded (drop, corrupt): the pipe then holds a frame's first bytes
    /// until its header and preview are known.
    fn wants_frames(&self) -> bool {
        false
    }
    /// Decide for one frame (only called if [`Stage::wants_frames`]).
    fn on_frame(&mut self, _frame: &FrameInfo, _ctx: &mut StageCtx<'_>) -> FrameAction {
        FrameAction::Pass
    }
    /// The sender of this pipe sent a frame (observed, before any decision).
    /// `lose_fin` uses this to start holding at a close frame.
    fn observe_frame(&mut self, _frame: &FrameInfo) {}
    /// The sender half-closed. `lose_fin` starts holding here.
    fn observe_fin(&mut self) {}
    /// Whether output is held back now (partition, lose_fin once triggered).
    fn holds(&self) -> bool {
        false
    }
    /// Whether this stage schedules output in time (delay, throttle, slice):
    /// output then goes through the pipe's queue.
    fn timed(&self) -> bool {
        false
    }
    /// When may `len` bytes that became ready at `ready` leave? Called in
    /// order; the pipe keeps release times non-decreasing.
    fn release(&mut self, ready: Instant, _len: usize, _ctx: &mut StageCtx<'_>) -> Instant {
        ready
    }
    /// Largest single write and the pause after it (slice).
    fn write_size(&mut self, _ctx: &mut StageCtx<'_>) -> Option<(usize, Duration)> {
        None
    }
    /// How many more bytes may pass before the connection is cut (limit).
    fn budget(&self) -> Option<u64> {
        None
    }
    /// `n` bytes were delivered through this pipe.
    fn delivered(&mut self, _n: u64) {}
    /// The TCP action when the budget is spent.
    fn on_budget_spent(&self) -> Option<CutHow> {
        None
    }
    /// What to do with held output when the stage is removed.
    fn on_remove(&self) -> EndAction {
        EndAction::Release
    }
}

/// How `limit` cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutHow {
    /// FIN both ways.
    Fin,
    /// RST both ways.
    Reset,
}

/// What happens to held output when a holding stage goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndAction {
    /// Deliver it in order (a healed link).
    Release,
    /// Throw it away and reset both sides (a NAT that forgot the flow).
    Reset,
    /// Keep holding it until the connection ends (a lost FIN stays lost).
    KeepHolding,
}

/// An instant action on one connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send FIN toward a side (after what is already queued toward it).
    Fin(Side),
    /// Send RST toward a side, now.
    Reset(Side),
    /// Inject bytes toward a side at the next frame boundary.
    Inject {
        /// Toward whom.
        to: Side,
        /// The bytes (a complete frame).
        bytes: Vec<u8>,
        /// For the log.
        what: String,
    },
}

/// How new connection attempts are refused while a `refuse` fault is active.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The mode.
    pub how: RefuseHow,
    /// HTTP status for `http`.
    pub status: u16,
    /// HTTP headers for `http`.
    pub headers: BTreeMap<String, String>,
}

/// What a fault becomes in the kernel in `--netns` mode: nftables rules on
/// the links between the peers' namespaces and the relay's. Faults without a
/// kernel equivalent (frame-level ones, delay, throttle, slice) stay in the
/// relay in that mode too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelEffect {
    /// Packets travelling in `direction` are dropped, so the senders' kernels
    /// retransmit and the bytes arrive after the heal; with `then_reset`
    /// the flows are answered with TCP RST from the heal on (a NAT that
    /// forgot them).
    Drop {
        /// Which way packets are lost.
        direction: Directions,
        /// `on_end: reset`.
        then_reset: bool,
    },
    /// From now on the flow is answered with TCP RST toward `toward`
    /// (`reject with tcp reset` on every packet it sends or is sent).
    Reset {
        /// Whose packets are answered with RST.
        toward: Toward,
    },
    /// While active, SYNs are answered with RST: ECONNREFUSED (`refuse how:
    /// refused`).
    RefuseSyn,
}

/// A fault kind, as the controller holds it.
pub trait Fault: Send + Sync {
    /// Its kernel equivalent, if it has one (used in `--netns` mode).
    fn kernel(&self) -> Option<KernelEffect> {
        None
    }
    /// Whether it acts on new connection attempts only (open connections are
    /// not listed as affected).
    fn new_attempts_only(&self) -> bool {
        self.refusal().is_some()
    }
    /// The stage this fault puts on the pipe in `dir`, if it acts there.
    fn stage(&self, _dir: Direction) -> Option<Box<dyn Stage>> {
        None
    }
    /// Instant actions on each selected connection (instant kinds).
    fn actions(&self) -> Vec<Action> {
        Vec::new()
    }
    /// Refusal of new connections while active.
    fn refusal(&self) -> Option<Refusal> {
        None
    }
}

/// Build the fault for a scenario fault kind.
pub fn build(kind: &FaultKind) -> Result<Box<dyn Fault>, String> {
    Ok(match kind {
        FaultKind::Partition { direction, on_end } => {
            Box::new(partition::Partition::new(*direction, *on_end))
        }
        FaultKind::Delay {
            latency,
            jitter,
            direction,
        } => Box::new(delay::Delay::new(latency.0, jitter.0, *direction)),
        FaultKind::Drop {
            matches,
            probability,
            direction,
        } => Box::new(drop::DropFrames::new(matches, *probability, *direction)?),
        FaultKind::Throttle { rate, direction } => {
            Box::new(throttle::Throttle::new(rate.bytes_per_sec, *direction))
        }
        FaultKind::Slice {
            size,
            gap,
            direction,
        } => Box::new(slice::Slice::new(size.min, size.max, gap.0, *direction)),
        FaultKind::Corrupt {
            matches,
            probability,
            direction,
        } => Box::new(corrupt::Corrupt::new(matches, *probability, *direction)?),
        FaultKind::HalfClose { toward } => Box::new(half_close::HalfClose { toward: *toward }),
        FaultKind::LoseFin { from } => Box::new(lose_fin::LoseFin { from: *from }),
        FaultKind::Reset { toward } => Box::new(reset::Reset { toward: *toward }),
        FaultKind::Close {
            toward,
            code,
            reason,
            then,
        } => Box::new(close::Close::new(*toward, *code, reason, *then)),
        FaultKind::Refuse {
            how,
            status,
            headers,
        } => Box::new(refuse::Refuse(Refusal {
            how: *how,
            status: status.unwrap_or(503),
            headers: headers.clone(),
        })),
        FaultKind::Limit {
            bytes,
            direction,
            then,
        } => Box::new(limit::Limit::new(bytes.0, *direction, *then)),
    })
}

#[cfg(test)]
pub(crate) fn test_ctx(rng: &mut PipeRng) -> StageCtx<'_> {
    StageCtx {
        now: Instant::now(),
        rng,
    }
}
