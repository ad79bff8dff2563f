//! Inference for the Inspect and Preview panels, off the UI thread. The last
//! loaded checkpoint stays cached, so more images dropped on the same run do
//! not reload it; predictions keep detections down to a low score, so the
//! score slider filters them when drawing instead of predicting again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{bail, Result};
use image::RgbImage;
use rayon::prelude::*;

use super::error_view::{truth_parts, ErrorLayer};
use super::job::{Job, Progress};
use crate::data::batch::decode_rgb;
use crate::data::truth::truth_beside;
use crate::data::ClassList;
use crate::data::Problem;
use crate::model::postprocess::{PostprocessConfig, DISPLAY_SCORE_FLOOR};
use crate::model::{Task, TaskSet};
use crate::backend::device::DeviceSpec;
use crate::predictor::{Prediction, Predictor};
use crate::train::checkpoint::{self, CheckpointKind};

/// Images per forward pass between progress reports and cancellation checks.
const CHUNK: usize = 8;

/// Display post-processing (one class per anchor, display NMS) down to [`DISPLAY_SCORE_FLOOR`].
pub fn display_postprocess() -> PostprocessConfig {
    PostprocessConfig { score_threshold: DISPLAY_SCORE_FLOOR, ..PostprocessConfig::display() }
}

/// Which checkpoint made a prediction, and the class names its indices refer to.
#[derive(Debug, Clone, PartialEq)]
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
            det_classes: predictor.det_classes().to_vec(),
            seg_classes: predictor.seg_classes().to_vec(),
            cls_classes: predictor.cls_classes().to_vec(),
        }
    }

    /// `run (last, step 600)`.
    pub fn describe(&self) -> String {
        format!("{} ({}, step {})", self.run, self.kind.name(), self.step)
    }
}

/// The checkpoint picker of Inspect and Preview: the run's training
/// checkpoints and its compressed models.
pub fn checkpoint_combo(ui: &mut eframe::egui::Ui, kind: &mut CheckpointKind, run_dir: &Path) {
    eframe::egui::ComboBox::from_label("Checkpoint").selected_text(kind.name()).show_ui(ui, |ui| {
        for choice in checkpoint::available(run_dir) {
            let label = choice.name();
            ui.selectable_value(kind, choice, label);
        }
    });
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

/// Predicts `images` a chunk at a time: after each chunk `done` grows and is
/// reported out of `total`, and a cancelled job stops with an error.
pub fn predict(
    predictor: &Predictor,
    images: &[RgbImage],
    postprocess: &PostprocessConfig,
    progress: &Progress,
    done: &mut usize,
    total: usize,
) -> Result<Vec<Prediction>> {
    let mut predictions = Vec::with_capacity(images.len());
    for chunk in images.chunks(CHUNK) {
        if progress.is_cancelled() {
            bail!("cancelled");
        }
        predictions.extend(predictor.predict_images(chunk, postprocess));
        *done += chunk.len();
        progress.set(*done, total);
    }
    Ok(predictions)
}

/// One image file with its prediction.
pub struct PredictedFile {
    pub path: PathBuf,
    pub image: RgbImage,
    pub prediction: Prediction,
    pub model: Arc<ModelInfo>,
    /// The ground truth found beside the file (an image from a dataset folder), judged.
    pub truth: Option<ErrorLayer>,
}

/// What a file-prediction job gives back: the files that decoded, predicted,
/// and a problem for each one that did not.
pub struct FilePredictions {
    pub files: Vec<PredictedFile>,
    pub failures: Vec<Problem>,
}

/// A job predicting image files with run `run` (folder `run_dir`)'s `kind` checkpoint on `device`.
pub fn spawn_file_predictions(
    cache: &PredictorCache,
    run: String,
    run_dir: PathBuf,
    kind: CheckpointKind,
    device: DeviceSpec,
    paths: Vec<PathBuf>,
    repaint: impl Fn() + Send + Sync + 'static,
) -> Job<FilePredictions> {
    let cache = cache.clone();
    Job::spawn(format!("predict {} image(s) with {run}", paths.len()), repaint, move |progress| {
        progress.set(0, paths.len());
        let predictor = cache.load(&run_dir, &kind, device)?;
        let model = Arc::new(ModelInfo::of(&run, kind, &predictor));
        let decoded: Vec<Result<RgbImage, Problem>> = paths.par_iter().map(|p| decode_rgb(p)).collect();
        let (mut failures, mut readable, mut images) = (Vec::new(), Vec::new(), Vec::new());
        for (path, image) in paths.into_iter().zip(decoded) {
            match image {
                Ok(image) => {
                    readable.push(path);
                    images.push(image);
                }
                Err(problem) => failures.push(problem),
            }
        }
        let mut done = failures.len();
        let total = done + images.len();
        let predictions = predict(&predictor, &images, &display_postprocess(), progress, &mut done, total)?;
        let det_classes = ClassList::new(model.det_classes.clone());
        let files = readable
            .into_iter()
            .zip(images)
            .zip(predictions)
            .map(|((path, image), prediction)| {
                let truth = match truth_beside(&path, &det_classes, model.seg_classes.len()) {
                    Some(Ok(truth)) => {
                        let (boxes, mask) = truth_parts(truth);
                        Some(ErrorLayer::new(boxes, mask, &prediction.detections, prediction.mask.as_ref()))
                    }
                    Some(Err(problem)) => {
                        failures.push(problem);
                        None
                    }
                    None => None,
                };
                PredictedFile { path, image, prediction, model: model.clone(), truth }
            })
            .collect();
        Ok(FilePredictions { files, failures })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_without_a_checkpoint_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let error = PredictorCache::default().load(dir.path(), &CheckpointKind::Last, DeviceSpec::Cpu).err().unwrap();
        assert!(format!("{error:#}").contains("no last checkpoint"), "{error:#}");
    }

    #[test]
    fn a_file_job_without_a_checkpoint_ends_in_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let job = spawn_file_predictions(
            &PredictorCache::default(),
            "x".into(),
            dir.path().to_path_buf(),
            CheckpointKind::BestDet,
            DeviceSpec::Cpu,
            vec![dir.path().join("a.png")],
            || {},
        );
        let error = job.wait().err().unwrap();
        assert!(format!("{error:#}").contains("no best-det checkpoint"), "{error:#}");
    }
}
