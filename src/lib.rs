//! Twinhead: one network for object detection, semantic segmentation and
//! classification, each task learned from its own dataset.

pub mod backend;
pub mod cli;
pub mod compress;
pub mod data;
pub mod eval;
pub mod export;
pub mod gui;
pub mod image_comparison;
pub mod inspection;
pub mod model;
pub mod onnx;
pub mod overlay;
pub mod predictor;
pub mod serve;
pub mod session;
pub mod tensorboard;
pub mod train;
