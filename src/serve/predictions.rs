//! Predictions a server computes for its clients: an uploaded image through a
//! run's checkpoint (what the workbench's Preview shows of a remote run).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::backend::device::DeviceSpec;
use crate::predictor::{display_postprocess, ModelInfo, Prediction, PredictorCache};
use crate::train::checkpoint::CheckpointKind;

/// The largest uploaded image decoded, in pixels (a 16k × 16k photograph).
const MAX_PIXELS: u64 = 1 << 28;

/// The checkpoints a server has loaded (the last one, as the workbench keeps it).
pub type Cache = PredictorCache;

/// What `POST /api/v1/runs/{name}/predict` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadPrediction {
    pub model: ModelInfo,
    pub prediction: Prediction,
}

/// The prediction of run `run_dir`'s `kind` checkpoint for the image in `bytes`.
pub fn predict_upload(cache: &Cache, run_dir: &Path, kind: &CheckpointKind, device: DeviceSpec, bytes: &[u8]) -> Result<UploadPrediction> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().context("the upload is not an image")?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4);
    reader.limits(limits);
    let image = reader.decode().context("the upload does not decode as an image")?.into_rgb8();
    let predictor = cache.load(run_dir, kind, device)?;
    let name = run_dir.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let model = ModelInfo::of(&name, kind.clone(), &predictor);
    let prediction = predictor.predict_images(std::slice::from_ref(&image), &display_postprocess()).pop().context("no prediction")?;
    Ok(UploadPrediction { model, prediction })
}
