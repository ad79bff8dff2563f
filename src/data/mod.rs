//! Datasets: readers for the real formats, the synthetic twin datasets,
//! augmentation and the parallel loader.

pub mod ade;
pub mod augment;
pub mod batch;
pub mod check;
pub mod classes;
pub mod loader;
pub mod problem;
pub mod synth;
pub mod truth;
pub mod voc;

pub use classes::ClassList;
pub use problem::Problem;
