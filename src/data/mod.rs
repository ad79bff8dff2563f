//! Datasets: readers for the real formats, the synthetic twin datasets,
//! augmentation and the parallel loader.

pub mod ade;
pub mod augment;
pub mod batch;
pub mod check;
pub mod classify;
pub mod classes;
pub mod coco;
pub mod coco_ids;
pub mod encoded;
pub mod format;
pub mod loader;
pub mod mask_encoding;
pub mod masks;
pub mod path_text;
pub mod preprocess;
pub mod problem;
pub mod split;
pub mod synth;
pub mod truth;
pub mod voc;
pub mod yolo;

pub use classes::ClassList;
pub use problem::Problem;
