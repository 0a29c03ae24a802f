//! Scenario files: the typed model, value parsing, and validation.

pub mod model;
pub mod values;

pub use model::*;
pub use values::*;
