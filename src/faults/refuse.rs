//! `refuse`: new connection attempts fail while active (the listener applies
//! the [`Refusal`]): `refused` stops listening (ECONNREFUSED) and listens
//! again on the same port at the end; `reset` sends RST after accept; `close`
//! FIN after accept; `stall` accepts and never answers; `http` answers with a
//! status (default 503), headers and a short body, then FIN. Open
//! connections are untouched.

use super::{Fault, KernelEffect, Refusal};
use crate::scenario::RefuseHow;

/// The fault.
pub struct Refuse(pub Refusal);

impl Fault for Refuse {
    /// Only `refused` has a kernel rule: the RST after accept of `reset` is
    /// already a real RST on the link, and the relay must accept the attempt
    /// to count it.
    fn kernel(&self) -> Option<KernelEffect> {
        (self.0.how == RefuseHow::Refused).then_some(KernelEffect::RefuseSyn)
    }
    fn refusal(&self) -> Option<Refusal> {
        Some(self.0.clone())
    }
}
