//! Fault kinds: one file each, declared once in the registry at the bottom of
//! this file.
//!
//! A fault kind is one struct in `src/faults/<kind>.rs`: its scenario
//! parameters (serde), its validation and its behaviour ([`Kind`]). The
//! registry line `kind => Struct` makes it part of [`FaultKind`] (the `kind:`
//! tag in scenario files), the kind list, "is it instant", and the field
//! tables used for "did you mean" hints ([`FaultKind::fields`]): nothing
//! else lists kinds.
//!
//! At run time a kind builds a [`Fault`], which says which [`Stage`] to put
//! on a pipe (one direction of one connection), which instant [`Action`]s to
//! take on a connection, and how the listener refuses new attempts
//! ([`Refusal`]). A [`Stage`] decides what happens to its pipe's bytes from
//! its inputs and a [`StageCtx`] with the clock and the pipe's seeded RNG; the
//! pipe (`relay::pipe`) applies the decisions and the connection does the
//! I/O, so every stage is unit-tested without sockets.
//!
//! Adding a fault: see "Adding a fault" in the README (one new file plus one
//! registry line).

use crate::events::{Direction, EventKind, FrameInfo, Side};
use crate::scenario::{FaultCheck, ScenarioError};
use rand_chacha::ChaCha8Rng;

use std::time::{Duration, Instant};

#[macro_use]
mod registry;
pub use registry::KindInfo;

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

/// What a stage decides for one frame, and the event that says so.
#[derive(Debug)]
pub enum FrameAction {
    /// Forward it.
    Pass,
    /// Remove the whole frame from the stream.
    Drop(EventKind),
    /// Edit the payload bytes held so far (at least the preview's worth),
    /// then forward the frame.
    Patch(fn(&mut [u8]), EventKind),
    /// Remove the frame and put these bytes (whole frames) in its place.
    Replace(Vec<u8>, EventKind),
}

/// Whether a pipe's output passes, is held, or the connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Output passes.
    Pass,
    /// Output is held back (read and kept, not delivered).
    Hold,
    /// Cut the connection both ways, now.
    Cut(CutHow),
}

/// How a connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutHow {
    /// FIN both ways.
    Fin,
    /// RST both ways.
    Reset,
}

/// What happens to held output when a stage goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndAction {
    /// Deliver it in order (a healed link).
    Release,
    /// Throw it away and reset both sides (a NAT that forgot the flow).
    Reset,
    /// Keep holding it until the connection ends (what was lost stays lost).
    HoldForever,
}

/// Something a stage observes on its pipe.
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a> {
    /// The sender sent this frame (every frame, before any decision).
    Frame(&'a FrameInfo),
    /// The sender half-closed.
    Fin,
    /// This many bytes were delivered to the destination.
    Delivered(u64),
}

/// What a stage sees besides its own state.
pub struct StageCtx<'a> {
    /// Now.
    pub now: Instant,
    /// The pipe's seeded RNG.
    pub rng: &'a mut PipeRng,
    /// The fault's name (for the events a stage returns).
    pub fault: &'a str,
    /// The pipe's direction.
    pub dir: Direction,
}

/// Bytes a stage injects into its pipe at the next frame boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    /// Whole frames.
    pub bytes: Vec<u8>,
    /// For the log.
    pub what: String,
}

/// A fault's effect on one pipe (one direction of one connection). Every
/// verb has a neutral default, so a stage implements only what it does.
pub trait Stage: Send {
    /// Whether frames are decided before their bytes are forwarded (the pipe
    /// then holds a frame's first bytes until its header and preview are
    /// known, and asks [`Stage::on_frame`]).
    fn decides_frames(&self) -> bool {
        false
    }
    /// What to do with a frame (only if [`Stage::decides_frames`]).
    fn on_frame(&mut self, _frame: &FrameInfo, _ctx: &mut StageCtx<'_>) -> FrameAction {
        FrameAction::Pass
    }
    /// Something happened on the pipe.
    fn observe(&mut self, _seen: Seen<'_>) {}
    /// When may `len` bytes that became ready at `ready` leave? Called in
    /// order; the pipe keeps release times non-decreasing.
    fn release(&mut self, ready: Instant, _len: usize, _ctx: &mut StageCtx<'_>) -> Instant {
        ready
    }
    /// Largest single write now and the pause after a full one.
    fn piece(&mut self, _ctx: &mut StageCtx<'_>) -> Option<(usize, Duration)> {
        None
    }
    /// Whether the pipe passes, holds, or the connection is cut.
    fn flow(&self) -> Flow {
        Flow::Pass
    }
    /// What happens to held output when the fault ends.
    fn on_end(&self) -> EndAction {
        EndAction::Release
    }
    /// When the stage next wants to inject (see [`Stage::inject`]).
    fn wake(&self) -> Option<Instant> {
        None
    }
    /// Bytes to inject now (called when [`Stage::wake`] is due).
    fn inject(&mut self, _ctx: &mut StageCtx<'_>) -> Option<Injection> {
        None
    }
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
        /// The bytes (complete frames).
        bytes: Vec<u8>,
        /// For the log.
        what: String,
    },
}

/// What the listener does with new connection attempts while a fault says so.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Close the listening socket (ECONNREFUSED) and listen again afterwards.
    StopListening,
    /// RST right after accept.
    Reset,
    /// FIN right after accept.
    Close,
    /// Accept and never answer.
    Stall,
    /// Read the request head and answer with this status and headers, then FIN.
    Answer {
        /// HTTP status.
        status: u16,
        /// Headers.
        headers: Vec<(String, String)>,
    },
}

/// What a fault becomes in the kernel in `--netns` mode: nftables rules on
/// the links between the peers' namespaces and the relay's (see
/// `crate::netns`). Faults without a kernel equivalent (frame-level ones,
/// delay, throttle, slice) stay in the relay in that mode too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelEffect {
    /// Packets travelling in `direction` are dropped, so the senders' kernels
    /// retransmit and the bytes arrive after the heal; with `then_reset`
    /// the flows are answered with TCP RST from the heal on (a NAT that
    /// forgot them).
    Drop {
        /// Which way packets are lost.
        direction: crate::scenario::Directions,
        /// `on_end: reset`.
        then_reset: bool,
    },
    /// From now on the flow is answered with TCP RST toward `toward`
    /// (`reject with tcp reset` on every packet it sends or is sent).
    Reset {
        /// Whose packets are answered with RST.
        toward: crate::scenario::Toward,
    },
    /// While active, SYNs are answered with RST: ECONNREFUSED (`refuse how:
    /// refused`).
    RefuseSyn,
}

/// A fault as the controller holds it while a run goes.
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

/// A fault kind's declaration: the struct holding its scenario parameters.
pub trait Kind {
    /// Instant kinds act once and take no `duration`.
    const INSTANT: bool = false;
    /// Checks beyond the types (ranges, combinations); may add warnings.
    fn check(&self, _c: &mut FaultCheck<'_>) -> Result<(), ScenarioError> {
        Ok(())
    }
    /// The running fault.
    fn build(&self) -> Result<Box<dyn Fault>, String>;
}

// The registry: one line per fault kind, `module => Struct` (the struct
// `src/faults/<module>.rs` declares; its snake_case name is the `kind:`).
fault_kinds! {
    partition => Partition,
    delay => Delay,
    drop => Drop,
    throttle => Throttle,
    slice => Slice,
    corrupt => Corrupt,
    half_close => HalfClose,
    lose_fin => LoseFin,
    reset => Reset,
    close => Close,
    refuse => Refuse,
    limit => Limit,
    inject => Inject,
    replace => Replace,
    slow_close => SlowClose,
}

/// The running fault of a scenario fault kind (same as [`FaultKind::build`]).
pub fn build(kind: &FaultKind) -> Result<Box<dyn Fault>, String> {
    kind.build()
}

#[cfg(test)]
pub(crate) mod testing;
