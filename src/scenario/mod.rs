//! Scenario files: the typed model, value parsing, loading with positions,
//! validation, and the normalised plan.
//!
//! [`load_file`] and [`parse_str`] are the only ways in; `serde_yaml` stays
//! behind the `yaml` module inside it. Every error is a [`ScenarioError`] whose message is
//! one line naming file, line and column.

mod convert;
mod error;
mod kinds;
pub mod model;
mod node;
mod parse;
mod plan;
mod shape;
mod validate;
pub mod values;
mod yaml;

pub(crate) use error::hint_for;
pub use error::{ScenarioError, MAX_FILE_BYTES};
pub use model::*;
pub use parse::{load_file, parse_str, Loaded};
pub use plan::plan;
pub use validate::{FaultCheck, MAX_CLIENTS};
pub use values::*;
