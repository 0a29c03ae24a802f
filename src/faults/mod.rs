//! Fault kinds: one module each, all behind one trait.
