//! What an expectation kind is: [`Kind`] (its parameters, as written in a
//! scenario, with their validation) and [`Judge`] (the judging, fed event by
//! event). The runner ([`super::Expect`]) owns what every kind shares: the
//! name, locating the reference or window, cutting the log at `Stopping`,
//! deciding early, and wording the verdict.

use super::common::{Span, Window};
use super::refs::At;
use crate::events::Event;
use crate::scenario::{Connections, Dur, Match, Reference};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// One expectation kind's parameters: a serde struct in its own file,
/// registered once in [`super::registry`].
pub trait Kind: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug {
    /// The `kind:` value.
    const NAME: &'static str;
    /// Check the parameters beyond their types (references exist, durations
    /// above zero…), through the scenario validator.
    fn validate(&self, v: &mut dyn Checks) -> Result<(), Invalid>;
    /// The judge for one run (regexes compiled, incremental state empty).
    fn judge(&self) -> Result<Box<dyn Judge>, String>;
    /// When the expectation starts counting (for timing warnings and reports):
    /// its reference, the length of its window, and whether that length is a
    /// deadline (`within`) rather than a span to watch (`for`).
    fn timing(&self) -> Timing<'_> {
        Timing::default()
    }
}

/// See [`Kind::timing`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing<'a> {
    /// The reference (`after`).
    pub after: Option<&'a Reference>,
    /// The window's length.
    pub len: Option<Duration>,
    /// Whether `len` is a deadline.
    pub deadline: bool,
}

/// A validation failure; the validator built the error (it knows the file
/// position), so a kind only passes it on.
#[derive(Debug)]
pub struct Invalid(pub(crate) Box<crate::scenario::ScenarioError>);

/// What the scenario validator offers a kind's [`Kind::validate`]. Field
/// names are as written in the file (`for`, `match`).
pub trait Checks {
    /// `field` refers to something that exists.
    fn reference(&mut self, field: &str, r: &Reference) -> Result<(), Invalid>;
    /// `field` is above zero.
    fn positive(&mut self, field: &str, d: Dur) -> Result<(), Invalid>;
    /// A window given as `during` / `after` [+ `for`] (`during` only where allowed).
    fn window(
        &mut self,
        during: &Option<String>,
        after: &Option<Reference>,
        for_: &Option<Dur>,
        during_allowed: bool,
    ) -> Result<(), Invalid>;
    /// A `match:` block.
    fn matcher(&mut self, field: &str, m: &Match) -> Result<(), Invalid>;
    /// A close code a close frame can carry.
    fn close_code(&mut self, field: &str, code: u16) -> Result<(), Invalid>;
    /// A `connections:` selector.
    fn connections(&mut self, field: &str, c: &Connections) -> Result<(), Invalid>;
    /// Fail on `field` with a message and an optional hint.
    fn fail(&mut self, field: &str, message: String, hint: Option<String>) -> Invalid;
    /// `expect[i]`, for messages.
    fn path(&self) -> String;
}

/// Where a kind starts judging; the runner locates it.
#[derive(Debug, Clone)]
pub enum Anchor<'a> {
    /// The whole log (cut at `Stopping` by the kind itself).
    Whole,
    /// A reference; until it happens the verdict waits, and at the end it
    /// fails: "REF never happened, so `consequence`". The log is cut at
    /// `Stopping` for the kind.
    After(&'a Reference, std::borrow::Cow<'a, str>),
    /// A window (`during`, `after` [+ `for`], or the run).
    Span(&'a Span),
}

/// What a kind sees when it judges.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The kept events so far, in order (cut at `Stopping` for
    /// [`Anchor::After`]).
    pub events: &'a [Event],
    /// The run's clock now.
    pub now: Duration,
    /// True once the run is over: the kind must decide.
    pub finished: bool,
    /// The located reference ([`Anchor::After`]).
    pub at: Option<At>,
    /// The located window ([`Anchor::Span`]).
    pub window: Option<&'a Window>,
}

impl Ctx<'_> {
    /// The located reference; the runner sets it for [`Anchor::After`].
    pub fn at(&self) -> At {
        self.at.unwrap_or(At {
            t: Duration::ZERO,
            pos: 0,
        })
    }
}

/// A kind's finding, which the runner turns into a [`super::Verdict`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Whether it passed.
    pub passed: bool,
    /// The measured value, if any.
    pub observed: Option<Duration>,
    /// One sentence naming connections and times.
    pub detail: String,
}

impl Outcome {
    /// A pass.
    pub fn pass(observed: Option<Duration>, detail: String) -> Option<Outcome> {
        Some(Outcome {
            passed: true,
            observed,
            detail,
        })
    }
    /// A failure.
    pub fn fail(observed: Option<Duration>, detail: String) -> Option<Outcome> {
        Some(Outcome {
            passed: false,
            observed,
            detail,
        })
    }
}

/// The judging of one expectation in one run.
pub trait Judge: Send {
    /// Where judging starts.
    fn anchor(&self) -> Anchor<'_> {
        Anchor::Whole
    }
    /// Every event as it is logged, frames that the log does not keep
    /// included, in each connection's order; kinds that judge frames keep
    /// what they need here (bounded), since the log folds frames.
    fn observe(&mut self, _e: &Event) {}
    /// True when the kind judges all the clients of a run together (`herd`):
    /// the runner then judges it on the whole log and ignores its
    /// `clients:` scope. Other kinds are judged on each client's own
    /// connections when there are several clients.
    fn across_clients(&self) -> bool {
        false
    }
    /// The outcome if decided, `None` while later events could change it;
    /// must decide when `cx.finished`.
    fn judge(&self, cx: &Ctx<'_>) -> Option<Outcome>;
}
