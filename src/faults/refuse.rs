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
    fn kernel(&self) -> Option<KernelEffect> {
        match self.0.how {
            RefuseHow::Refused => Some(KernelEffect::RefuseSyn),
            RefuseHow::Reset => Some(KernelEffect::RefuseReset),
            _ => None,
        }
    }
    fn refusal(&self) -> Option<Refusal> {
        Some(self.0.clone())
    }
}
