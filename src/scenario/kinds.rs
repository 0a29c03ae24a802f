//! The fault and expectation kinds as the front end sees them: for each, its
//! name and its fields. The shape check (`shape.rs`) uses these tables for
//! "unknown field" and "did you mean", `plan.rs` to list parameters. Fault
//! kinds come from the fault registry (`faults/mod.rs`), expectation kinds
//! from the expectation registry (`expect/registry.rs`).

use super::model::{ExpectKind, FaultKind};

/// One family of kinds (faults, or expectations).
pub(crate) struct KindTable {
    /// `fault` or `expectation`, for messages.
    pub what: &'static str,
    /// `a` or `an`, before `what`.
    pub article: &'static str,
    /// The top-level list its kinds are written under.
    pub section: &'static str,
    /// Fields every kind takes.
    pub common: &'static [&'static str],
    /// Every kind name, in documentation order.
    pub kinds: &'static [&'static str],
    /// The fields of one kind, besides the common ones.
    pub fields: fn(&str) -> &'static [&'static str],
    /// Whether a kind acts once (and so takes no `duration`).
    pub instant: fn(&str) -> bool,
}

/// The fault kinds.
pub(crate) const FAULTS: KindTable = KindTable {
    what: "fault",
    article: "a",
    section: "faults",
    common: &["name", "kind", "at", "duration", "connections"],
    kinds: FaultKind::KINDS,
    fields: fault_params,
    instant: |kind| FaultKind::info(kind).is_some_and(|k| k.instant),
};

/// The expectation kinds.
pub(crate) const EXPECTATIONS: KindTable = KindTable {
    what: "expectation",
    article: "an",
    section: "expect",
    common: &["name", "kind", "clients"],
    kinds: ExpectKind::KINDS,
    fields: expect_params,
    instant: |_| false,
};

impl KindTable {
    /// Whether some kind of this family takes `field`.
    pub fn any_takes(&self, field: &str) -> bool {
        self.kinds.iter().any(|k| (self.fields)(k).contains(&field))
    }

    /// The kinds that act once.
    pub fn instant_kinds(&self) -> Vec<&'static str> {
        self.kinds
            .iter()
            .copied()
            .filter(|k| (self.instant)(k))
            .collect()
    }
}

/// The kind-specific fields of each fault kind (from the fault registry).
pub(crate) fn fault_params(kind: &str) -> &'static [&'static str] {
    FaultKind::fields(kind)
}

/// The kind-specific fields of each expectation kind (declared once, by
/// each kind's struct: see [`crate::expect::registry`]).
pub(crate) fn expect_params(kind: &str) -> &'static [&'static str] {
    crate::expect::registry::fields(kind)
}
