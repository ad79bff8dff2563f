//! Model compression: int8 weights, structured channel pruning, low-rank
//! factorization, chained and optionally fine-tuned, each measured for size,
//! speed and accuracy against the checkpoint it came from.

pub mod int8;
pub mod job;
pub mod lowrank;
pub mod measure;
pub mod method;
pub mod prune;
pub mod report;

pub use method::{Method, Recipe};
