//! Datasets: readers for the real formats, the synthetic twin datasets,
//! augmentation and the parallel loader.

pub mod ade;
pub mod check;
pub mod classes;
pub mod problem;
pub mod voc;

pub use classes::ClassList;
pub use problem::Problem;
