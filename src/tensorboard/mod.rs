//! TensorBoard event files (`events.out.tfevents.*`): scalars and images as
//! TensorBoard, W&B and MLflow read them, so a Twinhead run shows up beside
//! PyTorch runs without a converter.
//!
//! A file is a sequence of TFRecords ([`record`]), each holding one `Event`
//! message ([`proto`]); the first says which file version it is.

pub mod proto;
pub mod record;
mod writer;

pub use writer::{read_file, EventWriter};
