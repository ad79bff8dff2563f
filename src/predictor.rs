//! Inference from a trained run: load a checkpoint, letterbox arbitrary images,
//! and return detections and semantic masks in each image's own coordinates.
//! Used by `twinhead predict` and the workbench's Inspect and Preview panels,
//! on the device the user picked (the CPU by default).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use image::RgbImage;
use rayon::prelude::*;

use crate::backend::device::{DeviceSpec, OnBackend};
use crate::backend::TwinBackend;
use crate::data::preprocess::{letterbox_input, Letterbox};
use crate::data::batch::decode_rgb;
use crate::data::Problem;
use crate::model::postprocess::{PostprocessConfig, DISPLAY_SCORE_FLOOR};
use crate::model::predict::{classify_batch, predict_batch};
pub use crate::model::predict::Prediction;
use crate::model::task::PerTask;
use crate::model::{Task, TaskSet, TwinNet};
use crate::train::checkpoint::{self, CheckpointKind, TrainerState};
use crate::train::config::TrainConfig;
use crate::train::evaluate::{validate, OnValidationBatch, Validation, ValidationSets, ValidationSettings, ValidationSplits};

/// The CPU inference backend (compression measures and edits networks on it).
pub type InferenceBackend = Flex;

pub struct Predictor {
    net: Box<dyn DeviceNet>,
    pub state: TrainerState,
    pub checkpoint: PathBuf,
    pub device: DeviceSpec,
}

/// Images per forward pass.
const BATCH: usize = 8;

impl Predictor {
    /// Loads a checkpoint for inference on the CPU.
    pub fn load(run_dir: &Path, kind: &CheckpointKind) -> Result<Self> {
        Self::load_on(run_dir, kind, DeviceSpec::Cpu)
    }

    /// Loads a checkpoint for inference on `device`.
    pub fn load_on(run_dir: &Path, kind: &CheckpointKind, device: DeviceSpec) -> Result<Self> {
        let dir = checkpoint::find(run_dir, kind)?;
        device.probe()?;
        let (net, state) = device.with_backend(LoadNet { dir: &dir })??;
        Ok(Self { net, state, checkpoint: dir, device })
    }

    /// The network, when it was loaded on the CPU.
    pub fn cpu_net(&self) -> Result<&TwinNet<InferenceBackend>> {
        let net = self.net.as_any().downcast_ref::<NetOn<InferenceBackend>>();
        net.map(|n| &n.net).with_context(|| format!("{}: loaded on {}, not the CPU", self.checkpoint.display(), self.device))
    }

    /// The tasks the network has heads for.
    pub fn tasks(&self) -> TaskSet {
        self.state.model.tasks()
    }

    /// `task`'s class names: empty for a task the network has no head for.
    pub fn classes(&self, task: Task) -> &[String] {
        &self.state.classes[task]
    }

    /// Class probabilities of each image, from the classification head.
    pub fn classify_images(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if self.state.classes[Task::Cls].is_empty() {
            anyhow::bail!("{}: the network has no classification head (its run had no data.cls)", self.checkpoint.display());
        }
        Ok(self.input_batches(images).flat_map(|(pixels, _)| self.net.classify(pixels)).collect())
    }

    pub fn predict_images(&self, images: &[RgbImage], postprocess: &PostprocessConfig) -> Vec<Prediction> {
        let mut predictions = Vec::with_capacity(images.len());
        for (pixels, letterboxes) in self.input_batches(images) {
            predictions.extend(
                self.net
                    .predict(pixels, &letterboxes, postprocess),
            );
        }
        predictions
    }

    /// `images` letterboxed to the network's input size and normalised, in
    /// batches of at most [`BATCH`] `[N, 3, size, size]` made as they are
    /// taken, with their letterboxes.
    pub fn input_batches<'a>(&self, images: &'a [RgbImage]) -> impl Iterator<Item = (TensorData, Vec<Letterbox>)> + 'a {
        let size = self.state.image_size;
        let batch = move |chunk: &[RgbImage]| {
            let prepared: Vec<(Vec<f32>, Letterbox)> = chunk.par_iter().map(|image| letterbox_input(image, size)).collect();
            let mut pixels = Vec::with_capacity(chunk.len() * 3 * (size * size) as usize);
            let mut letterboxes = Vec::with_capacity(chunk.len());
            for (p, l) in prepared {
                pixels.extend(p);
                letterboxes.push(l);
            }
            (TensorData::new(pixels, [chunk.len(), 3, size as usize, size as usize]), letterboxes)
        };
        images.chunks(BATCH).map(batch)
    }

    /// Decodes and predicts image files; a file that does not decode is a [`Problem`].
    pub fn predict_files(&self, paths: &[PathBuf], postprocess: &PostprocessConfig) -> Vec<Result<(RgbImage, Prediction), Problem>> {
        let decoded: Vec<Result<RgbImage, Problem>> = paths.par_iter().map(|p| decode_rgb(p)).collect();
        let images: Vec<RgbImage> = decoded.iter().filter_map(|d| d.as_ref().ok().cloned()).collect();
        let mut predictions = self.predict_images(&images, postprocess).into_iter();
        let mut images = images.into_iter();
        decoded
            .into_iter()
            .map(|d| d.map(|_| (images.next().expect("one per decoded"), predictions.next().expect("one per image"))))
            .collect()
    }

    /// Scores this checkpoint on the whole validation splits `config` names, with
    /// the post-processing the run's evaluations use (what `eval --run` prints).
    pub fn validate_full(&self, config: &TrainConfig, on_batch: OnValidationBatch) -> Result<FullValidation> {
        let splits = ValidationSplits::open(&config.data)?;
        let sets = splits.subsets(PerTask::from([usize::MAX; 3]))?;
        let settings = ValidationSettings {
            image_size: self.state.image_size,
            batch_size: config.data.batch_size,
            threads: config.data.threads,
            postprocess: PostprocessConfig::default(),
            keep_predictions: 0,
        };
        let validation = self.net.validate(&sets, &settings, on_batch)?;
        Ok(FullValidation {
            validation,
            images: splits.image_counts(),
            det_classes: self.classes(Task::Det).to_vec(),
            seg_classes: self.classes(Task::Seg).to_vec(),
            cls_classes: self.classes(Task::Cls).to_vec(),
        })
    }
}

/// Display post-processing (one class per anchor, display NMS) down to [`DISPLAY_SCORE_FLOOR`].
pub fn display_postprocess() -> PostprocessConfig {
    PostprocessConfig { score_threshold: DISPLAY_SCORE_FLOOR, ..PostprocessConfig::display() }
}

/// Which checkpoint made a prediction, and the class names its indices refer to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelInfo {
    pub run: String,
    pub kind: CheckpointKind,
    /// Training steps the checkpoint had done.
    pub step: usize,
    pub det_classes: Vec<String>,
    pub seg_classes: Vec<String>,
    /// Each list empty for a task the network has no head for.
    pub cls_classes: Vec<String>,
}

impl ModelInfo {
    /// The tasks the network has heads for.
    pub fn tasks(&self) -> TaskSet {
        let classes = [&self.det_classes, &self.seg_classes, &self.cls_classes];
        Task::ALL.into_iter().filter(|&task| !classes[task as usize].is_empty()).collect()
    }

    pub fn of(run: &str, kind: CheckpointKind, predictor: &Predictor) -> Self {
        Self {
            run: run.to_string(),
            kind,
            step: predictor.state.step,
            det_classes: predictor.classes(Task::Det).to_vec(),
            seg_classes: predictor.classes(Task::Seg).to_vec(),
            cls_classes: predictor.classes(Task::Cls).to_vec(),
        }
    }

    /// `run (last, step 600)`.
    pub fn describe(&self) -> String {
        format!("{} ({}, step {})", self.run, self.kind.name(), self.step)
    }
}

/// A checkpoint as found on disk: a run still training rewrites `last`, and a
/// newer file must be loaded again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CacheKey {
    dir: PathBuf,
    modified: Option<SystemTime>,
    device: DeviceSpec,
}

impl CacheKey {
    fn of(run_dir: &Path, kind: &CheckpointKind, device: DeviceSpec) -> Result<Self> {
        let dir = checkpoint::find(run_dir, kind)?;
        // The state file is written last in a checkpoint, so its time dates the whole.
        let modified = std::fs::metadata(dir.join("state.json")).and_then(|m| m.modified()).ok();
        Ok(Self { dir, modified, device })
    }
}

/// The last loaded predictor; clones share it (a panel hands one to each job).
#[derive(Clone, Default)]
pub struct PredictorCache(Arc<Mutex<Option<(CacheKey, Arc<Predictor>)>>>);

impl PredictorCache {
    /// The predictor of `run_dir`'s `kind` checkpoint on `device`, loaded unless it is the cached one.
    pub fn load(&self, run_dir: &Path, kind: &CheckpointKind, device: DeviceSpec) -> Result<Arc<Predictor>> {
        let key = CacheKey::of(run_dir, kind, device)?;
        // Held while loading: a second job for the same checkpoint waits, then finds it cached.
        let mut slot = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((cached, predictor)) = slot.as_ref() {
            if *cached == key {
                return Ok(predictor.clone());
            }
        }
        let predictor = Arc::new(Predictor::load_on(run_dir, kind, device)?);
        *slot = Some((key, predictor.clone()));
        Ok(predictor)
    }
}

/// Every task of the run scored on its full validation split, with the class
/// names its numbers refer to (what a server sends for Inspect's metrics).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct FullValidation {
    pub validation: Validation,
    /// Images per split (0 for a task the run does not have).
    pub images: PerTask<usize>,
    pub det_classes: Vec<String>,
    pub seg_classes: Vec<String>,
    /// Empty without a classification head.
    pub cls_classes: Vec<String>,
}

impl FullValidation {
    /// Whether scores received from elsewhere hold together: every per-class
    /// list and matrix as long as its task's classes (the matrices check
    /// themselves as they are read), so that no view indexes past one.
    pub fn check_received(&self) -> Result<()> {
        let v = &self.validation;
        let agree = |what: &str, len: usize, classes: &[String]| {
            anyhow::ensure!(len == classes.len(), "{what} has {len} entries for {} classes", classes.len());
            Ok(())
        };
        if let Some(det) = &v.det {
            agree("the detection AP", det.ap.per_class.len(), &self.det_classes)?;
            agree("the precision–recall curves", det.curves.len(), &self.det_classes)?;
            agree("the detection confusion matrix", det.confusion.num_classes(), &self.det_classes)?;
            for curve in det.curves.iter().flatten() {
                anyhow::ensure!(
                    curve.recall.len() == curve.precision.len() && curve.score.len() == curve.recall.len(),
                    "a precision–recall curve's recall, precision and scores differ in length"
                );
            }
        }
        if let Some(seg) = &v.seg {
            agree("the pixel confusion matrix", seg.num_classes(), &self.seg_classes)?;
        }
        if let Some(cls) = &v.cls {
            agree("the classification confusion matrix", cls.num_classes(), &self.cls_classes)?;
        }
        Ok(())
    }
}

/// A network on the device of its backend, behind one interface for every device.
trait DeviceNet: Send + Sync {
    fn predict(&self, pixels: TensorData, letterboxes: &[Letterbox], postprocess: &PostprocessConfig) -> Vec<Prediction>;
    fn validate(&self, sets: &ValidationSets, settings: &ValidationSettings, on_batch: OnValidationBatch) -> Result<Validation>;
    fn classify(&self, pixels: TensorData) -> Vec<Vec<f32>>;
    fn as_any(&self) -> &dyn std::any::Any;
}

struct NetOn<B: TwinBackend> {
    net: TwinNet<B>,
    device: B::Device,
}

impl<B: TwinBackend> DeviceNet for NetOn<B> {
    fn predict(&self, pixels: TensorData, letterboxes: &[Letterbox], postprocess: &PostprocessConfig) -> Vec<Prediction> {
        let _turn = B::device_turn(&self.device);
        predict_batch(&self.net, Tensor::<B, 4>::from_data(pixels, &self.device), letterboxes, postprocess)
    }

    fn validate(&self, sets: &ValidationSets, settings: &ValidationSettings, on_batch: OnValidationBatch) -> Result<Validation> {
        validate(&self.net, sets, settings, &self.device, on_batch)
    }

    fn classify(&self, pixels: TensorData) -> Vec<Vec<f32>> {
        let _turn = B::device_turn(&self.device);
        classify_batch(&self.net, Tensor::<B, 4>::from_data(pixels, &self.device))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Loads a checkpoint's inference weights onto the device's backend.
struct LoadNet<'a> {
    dir: &'a Path,
}

impl OnBackend for LoadNet<'_> {
    type Output = Result<(Box<dyn DeviceNet>, TrainerState)>;
    fn run<B: TwinBackend>(self, device: B::Device) -> Self::Output {
        let turn = B::device_turn(&device);
        let (net, state) = checkpoint::load_inference_net::<B>(self.dir, &device)?;
        drop(turn);
        Ok((Box::new(NetOn { net, device }), state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::ConfusionMatrix;

    #[test]
    fn received_scores_must_match_their_class_lists() {
        let classes = |n: usize| (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>();
        let scores = |matrix_classes: usize| FullValidation {
            validation: Validation { det: None, seg: Some(ConfusionMatrix::new(matrix_classes)), cls: None, kept: Default::default() },
            images: PerTask::from([0, 4, 0]),
            det_classes: Vec::new(),
            seg_classes: classes(3),
            cls_classes: Vec::new(),
        };
        scores(3).check_received().unwrap();
        let error = format!("{:#}", scores(5).check_received().unwrap_err());
        assert_eq!(error, "the pixel confusion matrix has 5 entries for 3 classes");
    }
}
