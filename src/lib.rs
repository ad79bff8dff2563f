//! Twinhead: one network for object detection (PASCAL VOC) and semantic
//! segmentation (ADE20K), trained from two datasets.

pub mod backend;
pub mod cli;
pub mod compress;
pub mod data;
pub mod eval;
pub mod export;
pub mod gui;
pub mod model;
pub mod onnx;
pub mod overlay;
pub mod predictor;
pub mod tensorboard;
pub mod train;
