//! What a pipe's state says: whether it holds, intercepts, may read or
//! write, when to ask again, whether it is quiet, plain or finished.

use super::{Dst, Flow, Phase, Pipe, Src, QUEUE_CAP};
use std::sync::Arc;
use std::time::Instant;

impl Pipe {
    pub(super) fn holder(&self) -> Option<&Arc<str>> {
        self.stuck.as_ref().or_else(|| {
            self.stages
                .iter()
                .find(|(_, s)| s.flow() == Flow::Hold)
                .map(|(n, _)| n)
        })
    }

    pub(super) fn holds(&self) -> bool {
        self.holder().is_some()
    }

    pub(super) fn frame_stages(&self) -> bool {
        self.stages.iter().any(|(_, s)| s.decides_frames())
    }

    /// Whether output must go through the queue.
    pub(super) fn intercepts(&self) -> bool {
        !self.stages.is_empty()
            || self.stuck.is_some()
            || !self.queue.is_empty()
            || !self.deferred.is_empty()
    }

    /// Whether the source may be read now. With no stage, queued data is
    /// only what the destination did not take yet: reading stops until it
    /// is written, as a copying relay's would (the bytes wait in the
    /// kernel's buffers, not copied into ours). Stages that delay or hold
    /// queue up to [`QUEUE_CAP`].
    pub fn wants_read(&self) -> bool {
        let cap = if self.stages.is_empty() && self.stuck.is_none() {
            1
        } else {
            QUEUE_CAP
        };
        self.src == Src::Open && self.queued_bytes < cap
    }

    /// Whether the queue's front may be written now.
    pub fn wants_write(&self, now: Instant) -> bool {
        self.dst != Dst::Closed
            && !self.holds()
            && self
                .queue
                .front()
                .is_some_and(|o| o.at.is_none_or(|at| at <= now))
    }

    /// When to ask again: the next release time, or a stage's next injection.
    pub fn next_timer(&self) -> Option<Instant> {
        if self.dst == Dst::Closed {
            return None;
        }
        let release = if self.holds() {
            None
        } else {
            self.queue.front().and_then(|o| o.at)
        };
        let wake = if self.injecting() {
            self.stages.iter().filter_map(|(_, s)| s.wake()).min()
        } else {
            None
        };
        release.into_iter().chain(wake).min()
    }

    /// Both ends are done with: nothing more will pass.
    pub fn finished(&self) -> bool {
        self.src != Src::Open
            && (self.dst == Dst::Closed || (self.queue.is_empty() && self.deferred.is_empty()))
    }

    /// Nothing to do but forward what is read: no stage, nothing queued or
    /// deferred (and the queue's memory given back), both ends open. The
    /// connection then skips its per-turn bookkeeping ([`Pipe::tick`],
    /// [`Pipe::next`], timers) for this pipe.
    pub fn quiet(&self) -> bool {
        self.forwards() && self.queue.capacity() == 0
    }

    /// Only forwards, as when [`Pipe::quiet`], though data may wait in the
    /// queue for a full destination (plain data: no release time, no FIN),
    /// and no observer of the link shares its place (`--netns`): what the
    /// express lane drives.
    pub fn plain(&self) -> bool {
        self.forwards() && self.mark.is_none()
    }

    fn forwards(&self) -> bool {
        self.stages.is_empty()
            && self.stuck.is_none()
            && self.cut.is_none()
            && self.deferred.is_empty()
            && self.last_release.is_none()
            && self.src == Src::Open
            && self.dst == Dst::Open
            && !matches!(self.phase, Phase::Head(_))
    }

    /// The source reset (as opposed to FIN or gone).
    pub fn src_reset(&self) -> bool {
        self.src == Src::Reset
    }

    /// The source has ended (FIN, RST, or gone).
    pub fn src_ended(&self) -> bool {
        self.src != Src::Open
    }
}
